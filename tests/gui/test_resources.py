"""The application's resources: icon, style sheet, desktop file, found with importlib.resources."""

import configparser

from PySide6.QtWidgets import QApplication

from inspector.gui import resources


def test_resources_are_found():
    for name in (resources.APP_ICON, resources.STYLE_SHEET, resources.DESKTOP_FILE):
        assert resources.resource(name).is_file()


def test_icon_is_drawn_from_its_svg(qapp):
    icon = resources.app_icon()
    assert not icon.isNull()
    assert not icon.pixmap(64, 64).isNull()


def test_desktop_file_starts_the_inspector():
    entry = configparser.ConfigParser(interpolation=None)
    entry.read_string(resources.resource(resources.DESKTOP_FILE).read_text(encoding="utf-8"))
    desktop = entry["Desktop Entry"]
    assert desktop["Type"] == "Application"
    assert desktop["Exec"] == "small-peer-inspector"
    assert desktop["Icon"] == "small-peer-inspector"


def test_style_sheet_applies_without_warnings(window, qtbot):
    # qt_log_level_fail = WARNING: a style sheet Qt cannot parse fails this test.
    app = QApplication.instance()
    previous = app.styleSheet()
    app.setStyleSheet(resources.style_sheet())
    try:
        window.metadata_panel.editor.setPlainText("{")
        window.metadata_panel.validate_now()
        window.repaint()
        assert window.metadata_panel.status.property("state") == "error"
    finally:
        app.setStyleSheet(previous)


def test_style_sheet_uses_palette_roles_not_fixed_grounds():
    sheet = resources.style_sheet()
    assert "palette(" in sheet
    # Fixed light or dark backgrounds would break the other palette.
    for fixed in ("background-color: #fff", "background-color: white", "background-color: #000"):
        assert fixed not in sheet
