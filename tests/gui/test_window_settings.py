"""Window geometry, splitter positions and the diff toggle are remembered with QSettings."""

from PySide6.QtCore import QSettings


def test_remembers_size_and_splitters_across_windows(make_window, settings_path, qtbot):
    first = make_window()
    first.resize(700, 500)  # within the offscreen platform's 800x600 screen
    first.main_splitter.setSizes([250, 400])
    first.timeline_splitter.setSizes([200, 150])
    qtbot.waitUntil(lambda: first.size().width() == 700)
    main_sizes, timeline_sizes = first.main_splitter.sizes(), first.timeline_splitter.sizes()
    first.close()

    second = make_window()

    assert (second.width(), second.height()) == (700, 500)
    assert second.main_splitter.sizes() == main_sizes
    assert second.timeline_splitter.sizes() == timeline_sizes


def test_remembers_whether_the_diff_was_shown(make_window):
    first = make_window()
    first.document_panel.diff_toggle.setChecked(True)
    first.close()

    assert make_window().document_panel.diff_toggle.isChecked()


def test_settings_go_to_the_given_file(make_window, settings_path):
    make_window().close()

    saved = QSettings(str(settings_path), QSettings.Format.IniFormat)
    assert {"window/geometry", "window/mainSplitter", "window/timelineSplitter"} <= set(saved.allKeys())


def test_a_first_start_fits_the_screen(window):
    screen = window.screen().availableGeometry()
    assert 0.8 * screen.width() <= window.width() <= screen.width()
    assert 0.8 * screen.height() <= window.height() <= screen.height()
    assert all(size > 0 for size in window.main_splitter.sizes())
