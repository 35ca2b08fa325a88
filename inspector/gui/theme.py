"""View → Theme: System, Light or Dark, kept in `QSettings`; System follows the desktop live.

The whole application follows one palette: every widget that draws its own colours
(the JSON highlighting and its diff colours, the history plot) re-picks them on
Qt's palette-change events, so switching the theme is switching the palette.

* **Light / Dark** ask the platform for that colour scheme (Qt 6.8+
  ``QStyleHints.setColorScheme``: native title bars and styles follow where the
  platform supports it). Where the palette does not follow — Linux without a
  desktop portal, Windows' classic style, offscreen — the application switches to
  the Fusion style with an explicit light or dark palette.
* **System** hands the scheme back to the platform and drops any palette set here,
  then follows ``QStyleHints.colorSchemeChanged``: a dark scheme whose platform
  palette stays light gets the dark palette, as above.

Nothing is touched at start-up in System mode while the desktop is light (or says
nothing), so the application looks exactly as it did before it had themes.
"""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtGui import QAction, QActionGroup, QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

from inspector.gui.highlighting import is_dark_palette

__all__ = ["SETTINGS_KEY", "Theme", "ThemeController", "dark_palette", "light_palette"]

SETTINGS_KEY = "view/theme"
_EXPLICIT_STYLE = "Fusion"  # draws entirely from the palette, on every platform


class Theme(str, Enum):
    """The choices of View → Theme (their values are what the settings keep)."""

    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


_LABELS = {Theme.SYSTEM: "&System", Theme.LIGHT: "&Light", Theme.DARK: "&Dark"}

# A neutral dark palette (grounds near #1e1f22, text near #e6e6e6) with a blue accent.
_DARK = {
    QPalette.ColorRole.Window: "#202124",
    QPalette.ColorRole.WindowText: "#e6e7e9",
    QPalette.ColorRole.Base: "#17181a",
    QPalette.ColorRole.AlternateBase: "#232528",
    QPalette.ColorRole.ToolTipBase: "#2b2d31",
    QPalette.ColorRole.ToolTipText: "#e6e7e9",
    QPalette.ColorRole.PlaceholderText: "#8b8f96",
    QPalette.ColorRole.Text: "#e6e7e9",
    QPalette.ColorRole.Button: "#2b2d31",
    QPalette.ColorRole.ButtonText: "#e6e7e9",
    QPalette.ColorRole.BrightText: "#ff6b6b",
    QPalette.ColorRole.Light: "#3b3e43",
    QPalette.ColorRole.Midlight: "#32353a",
    QPalette.ColorRole.Mid: "#4a4e55",
    QPalette.ColorRole.Dark: "#141517",
    QPalette.ColorRole.Shadow: "#000000",
    QPalette.ColorRole.Highlight: "#3d7bd9",
    QPalette.ColorRole.HighlightedText: "#ffffff",
    QPalette.ColorRole.Link: "#6ea8fe",
    QPalette.ColorRole.LinkVisited: "#b594f5",
    QPalette.ColorRole.Accent: "#3d7bd9",
}
_DARK_DISABLED = {
    QPalette.ColorRole.WindowText: "#6c7077",
    QPalette.ColorRole.Text: "#6c7077",
    QPalette.ColorRole.ButtonText: "#6c7077",
    QPalette.ColorRole.Highlight: "#3a3d42",
    QPalette.ColorRole.HighlightedText: "#9a9ea5",
}


def dark_palette() -> QPalette:
    """The application's dark palette."""
    palette = QPalette()
    for role, colour in _DARK.items():
        palette.setColor(role, QColor(colour))
    for role, colour in _DARK_DISABLED.items():
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(colour))
    return palette


def light_palette() -> QPalette:
    """The Fusion style's own light palette."""
    style = QStyleFactory.create(_EXPLICIT_STYLE)
    palette = style.standardPalette()
    style.deleteLater()
    return palette


class ThemeController(QObject):
    """Applies the chosen `Theme` to the application and keeps it in ``settings``.

    ``actions`` are the checkable menu entries (System, Light, Dark), in one
    exclusive group; `set_theme` is what choosing one does.
    """

    themeChanged = Signal(str)

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        self._app = app
        self._settings = settings
        self._hints = QGuiApplication.styleHints()
        self._style = app.style().name()  # what System goes back to
        self._overridden = False  # whether the palette (and style) are ours rather than the platform's
        self._scheme_requested = False
        self._system_scheme = self._hints.colorScheme()
        saved = settings.value(SETTINGS_KEY, Theme.SYSTEM.value)
        self._theme = Theme(saved) if saved in {t.value for t in Theme} else Theme.SYSTEM
        self.group = QActionGroup(self)
        self.group.setExclusive(True)
        self.actions: dict[Theme, QAction] = {}
        for theme in Theme:
            action = QAction(_LABELS[theme], self.group)
            action.setCheckable(True)
            action.setChecked(theme == self._theme)
            action.setData(theme.value)
            action.toggled.connect(lambda checked, chosen=theme: self._on_action(checked, chosen))
            self.actions[theme] = action
        self._hints.colorSchemeChanged.connect(self._on_scheme_changed)
        self._apply()

    @property
    def theme(self) -> Theme:
        return self._theme

    def set_theme(self, theme: Theme | str) -> None:
        """Use ``theme`` from now on (and at the next start)."""
        theme = Theme(theme)
        if theme != self._theme:
            self._theme = theme
            self._settings.setValue(SETTINGS_KEY, theme.value)
            self._apply()
            self.themeChanged.emit(theme.value)
        self.actions[theme].setChecked(True)

    def _on_action(self, checked: bool, theme: Theme) -> None:
        if checked:
            self.set_theme(theme)

    def _on_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        if not self._scheme_requested:  # our own request echoing back is not the desktop's choice
            self._system_scheme = scheme
        if self._theme == Theme.SYSTEM:
            self._apply()

    def _apply(self) -> None:
        if self._theme == Theme.SYSTEM:
            if self._scheme_requested:
                self._scheme_requested = False
                self._hints.unsetColorScheme()
                self._system_scheme = self._hints.colorScheme()
            self._restore_platform_look()
            if self._system_scheme == Qt.ColorScheme.Dark and not is_dark_palette(self._app.palette()):
                self._override(dark=True)
            return
        dark = self._theme == Theme.DARK
        self._scheme_requested = True
        self._hints.setColorScheme(Qt.ColorScheme.Dark if dark else Qt.ColorScheme.Light)
        # Once the platform did not follow, it will not now either: switch palettes directly.
        if self._overridden or is_dark_palette(self._app.palette()) != dark:
            self._override(dark=dark)

    def _override(self, *, dark: bool) -> None:
        if self._app.style().name().lower() != _EXPLICIT_STYLE.lower():
            self._app.setStyle(_EXPLICIT_STYLE)
        self._set_palette(dark_palette() if dark else light_palette())
        self._overridden = True

    def _restore_platform_look(self) -> None:
        if not self._overridden:
            return
        self._overridden = False
        if self._app.style().name().lower() != self._style.lower():
            self._app.setStyle(self._style)
        self._set_palette(QPalette())  # an empty palette: the platform's colours again

    def _set_palette(self, palette: QPalette) -> None:
        self._app.setPalette(palette)
        # Under an application style sheet Qt does not pass a new application palette on to the
        # widgets; setting the sheet again re-polishes them with it (at once).
        if sheet := self._app.styleSheet():
            self._app.setStyleSheet(sheet)
