"""View → Theme: System, Light, Dark; kept in the settings; what follows the palette follows the theme."""

import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from inspector.gui.highlighting import is_dark_palette
from inspector.gui.resources import style_sheet
from inspector.gui.theme import SETTINGS_KEY, Theme


@pytest.fixture(autouse=True)
def _as_the_app_looks(qapp):
    """The app's style sheet, as `small-peer-inspector` sets it; afterwards, the suite's own look again."""
    style = qapp.style().name()
    qapp.setStyleSheet(style_sheet())
    yield
    QGuiApplication.styleHints().unsetColorScheme()
    qapp.setStyleSheet("")
    qapp.setStyle(style)
    qapp.setPalette(QPalette())


def colours(window):
    """What a user sees change with the theme: JSON colours, diff colours, the plot's ground and curves."""
    highlighter = window.document_panel.highlighter
    panel = window.plot_panel
    return {
        "key": highlighter.format_for("key").foreground().color().name(),
        "added": highlighter.format_for("added").background().color().name(),
        "plot": panel.plot.backgroundBrush().color().name(),
        "curve": panel.curve("device_disk_usage.device_available").opts["pen"].color().name(),
        "axis": panel.left_axis.textPen().color().name(),
    }


def test_dark_and_light_switch_the_palette_and_everything_that_follows_it(window, settings_path):
    light = colours(window)
    assert not is_dark_palette()

    window.theme.set_theme(Theme.DARK)

    assert is_dark_palette(QApplication.palette())
    dark = colours(window)
    assert all(dark[name] != light[name] for name in light), (light, dark)
    assert QColor(dark["plot"]).lightness() < 60 and QColor(dark["axis"]).lightness() > 180

    window.theme.set_theme(Theme.LIGHT)

    assert not is_dark_palette(QApplication.palette())
    assert colours(window) == light
    assert QSettings(str(settings_path), QSettings.Format.IniFormat).value(SETTINGS_KEY) == "light"


def test_the_view_menu_offers_system_light_and_dark(window):
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&View")
    theme_menu = next(a.menu() for a in menu.actions() if a.text() == "&Theme")
    actions = theme_menu.actions()
    assert [a.text() for a in actions] == ["&System", "&Light", "&Dark"]
    assert [a.isChecked() for a in actions] == [True, False, False]

    actions[2].trigger()

    assert window.theme.theme == Theme.DARK
    assert [a.isChecked() for a in actions] == [False, False, True]
    assert is_dark_palette(QApplication.palette())


def test_system_follows_the_desktop_colour_scheme_live(window):
    assert window.theme.theme == Theme.SYSTEM
    hints = QGuiApplication.styleHints()

    hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # what the desktop says when it turns dark

    assert is_dark_palette(QApplication.palette())
    assert QColor(window.plot_panel.plot.backgroundBrush().color()).lightness() < 60

    hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)

    assert not is_dark_palette(QApplication.palette())


def test_an_explicit_theme_ignores_the_desktop(window):
    window.theme.set_theme(Theme.LIGHT)

    QGuiApplication.styleHints().colorSchemeChanged.emit(Qt.ColorScheme.Dark)

    assert not is_dark_palette(QApplication.palette())


def test_the_theme_is_kept_for_the_next_window(make_window):
    first = make_window()
    first.theme.set_theme(Theme.DARK)
    first.close()
    QApplication.setPalette(QPalette())  # as a restarted application starts

    second = make_window()

    assert second.theme.theme == Theme.DARK
    assert is_dark_palette(QApplication.palette())
    assert second.theme.actions[Theme.DARK].isChecked()
