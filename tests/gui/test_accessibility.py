"""Every control can be found by assistive technology and by keyboard: names, and shortcuts."""

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractButton, QAbstractScrollArea, QComboBox, QLabel, QWidget


def name_of(widget: QWidget) -> str:
    """What a screen reader announces: the accessible name, else a button's own text."""
    if widget.accessibleName():
        return widget.accessibleName()
    if isinstance(widget, QAbstractButton):
        return widget.text().replace("&", "")
    return ""


def controls(window):
    """Widgets that take the focus, but for a scroll area's viewport (the area itself is the control)."""
    viewports = {shiboken6.getCppPointer(a.viewport())[0] for a in window.findChildren(QAbstractScrollArea)}
    return [
        w
        for w in window.findChildren(QWidget)
        if ((w.focusPolicy() != Qt.FocusPolicy.NoFocus and w.isVisibleTo(window)) or isinstance(w, QComboBox))
        and shiboken6.getCppPointer(w)[0] not in viewports
    ]


def test_every_control_has_a_name_that_is_not_its_value(window):
    unnamed = [
        f"{type(w).__name__}/{w.objectName()} in {type(w.parent()).__name__}/{w.parent().objectName()}"
        for w in controls(window)
        if not name_of(w)
    ]
    assert unnamed == []
    assert window.findChild(QWidget, "historyPlot").accessibleName()
    combo = window.scope_combo
    assert combo.accessibleName() == "Sync scope"
    assert combo.accessibleName() != combo.currentText()


def test_no_two_buttons_share_a_name(window):
    buttons = [w for w in window.findChildren(QAbstractButton) if w.isVisibleTo(window)]
    names = [name_of(w) for w in buttons]
    assert len(names) == len(set(names)), sorted(names)


def test_labelled_fields_have_mnemonics_that_reach_them(window):
    buddies = {
        label.buddy().objectName(): label.text()
        for label in window.findChildren(QLabel)
        if label.buddy() is not None
    }
    assert buddies["metadataEditor"] == "M&etadata"
    assert buddies["syncScopeCombo"] == "Sync &scope:"
    assert buddies["timelineView"] == "&Timeline"
