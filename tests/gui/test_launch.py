"""Starting the inspector: the command line, startup errors, and a clean shutdown of the peer."""

import asyncio
import gc
import logging
import os
import subprocess
import sys

import pytest
from PySide6.QtCore import QSettings

import inspector.__main__ as entry
from inspector import __version__
from inspector.gui import app as gui_app
from inspector.gui.app import Options, StartupError, display_problem, open_peer, serve


def inspector_cli(*args, env=None, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "inspector", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_version():
    result = inspector_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"small-peer-inspector {__version__}"


def test_help_names_every_option_and_the_token_variable():
    result = inspector_cli("--help")
    assert result.returncode == 0
    for option in ("--dir PATH", "--interval S", "--big-peer URL", "--device-name NAME", "--version"):
        assert option in result.stdout
    assert "INSPECTOR_BIG_PEER_TOKEN" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "0"], "must be at least 0.1 seconds"),
        (["--interval", "soon"], "not a number of seconds"),
        (["--big-peer", "ftp://x"], "must be an http:// or https:// URL"),
        (["--device-name", " "], "must not be empty"),
    ],
)
def test_bad_arguments_are_usage_errors(capsys, args, message):
    with pytest.raises(SystemExit) as exit_info:
        entry.main(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_locked_directory_is_a_message_and_exit_status_1(ditto, peer_dir):
    result = inspector_cli("--dir", str(peer_dir))  # `ditto` holds the directory

    assert result.returncode == 1
    assert "The peer's directory is in use" in result.stderr
    assert str(peer_dir) in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unusable_directory_is_a_message_and_exit_status_1(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("not a directory")

    result = inspector_cli("--dir", str(not_a_directory))

    assert result.returncode == 1
    assert "Cannot open the peer's directory" in result.stderr
    assert f"The persistence directory {not_a_directory} is a file, not a directory." in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland displays are a Linux matter")
def test_no_display_is_a_message_and_exit_status_1(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "--dir", str(tmp_path / "peer")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )

    assert result.returncode == 1
    assert "no display" in result.stderr
    assert "Traceback" not in result.stderr


def test_display_problem_only_without_a_display(monkeypatch):
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display_problem() is None
    monkeypatch.delenv("QT_QPA_PLATFORM")
    monkeypatch.setenv("DISPLAY", ":99")
    assert display_problem() is None


def test_command_line_options_reach_the_peer(monkeypatch, tmp_path):
    seen = []
    monkeypatch.setattr(gui_app, "run", lambda options: seen.append(options) or 0)
    monkeypatch.setenv("INSPECTOR_BIG_PEER_TOKEN", "s3cret")

    status = entry.main(
        [
            "--dir",
            str(tmp_path),
            "--interval",
            "2",
            "--big-peer",
            "http://big:8080/",
            "--device-name",
            "bench",
        ]
    )

    assert status == 0
    assert seen == [
        Options(
            directory=tmp_path,
            interval=2.0,
            big_peer_url="http://big:8080",
            big_peer_token="s3cret",
            device_name="bench",
        )
    ]


def test_open_peer_names_the_locked_directory(ditto, peer_dir):
    with pytest.raises(StartupError) as error:
        open_peer(Options(directory=peer_dir))
    assert error.value.title == "The peer's directory is in use"
    assert str(peer_dir) in error.value.message


def test_closing_the_window_closes_the_peer_cleanly(
    make_ditto, tmp_path, settings_path, qtbot, qloop, caplog
):
    from PySide6.QtWidgets import QApplication

    peer = make_ditto(tmp_path / "served")
    peer.small_peer_info.is_enabled = True  # background collection running while it closes
    settings = QSettings(str(settings_path), QSettings.Format.IniFormat)
    caplog.set_level(logging.WARNING, logger="asyncio")
    task = qloop.create_task(serve(peer, settings))
    qtbot.waitUntil(
        lambda: any(w.objectName() == "mainWindow" and w.isVisible() for w in QApplication.topLevelWidgets())
    )
    window = next(w for w in QApplication.topLevelWidgets() if w.objectName() == "mainWindow")
    qtbot.waitUntil(lambda: window.timeline_model.rowCount() == 1)

    window.close()

    qtbot.waitUntil(task.done)
    assert task.result() == 0
    assert peer.is_closed
    gc.collect()
    assert "Task was destroyed but it is pending" not in caplog.text
    assert not [t for t in asyncio.all_tasks(qloop) if not t.done()]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Qt's xcb plugin is a Linux matter")
def test_missing_x11_libraries_are_one_line_that_fixes_them(tmp_path):
    # A library nobody has stands in for a missing libxcb-cursor0: the launcher must say
    # what to install instead of letting Qt abort the process.
    code = (
        "import sys; import inspector.desktop as d; "
        "d.XCB_LIBRARIES['libno-such-xcb-library.so.9'] = 'libno-such-xcb-library9'; "
        "import inspector.__main__ as m; sys.exit(m.main(['--dir', sys.argv[1]]))"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "DISPLAY": ":99"}
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "peer")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )

    assert result.returncode == 1
    assert "sudo apt-get install libno-such-xcb-library9" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "peer").exists()  # nothing was opened


def test_the_desktop_entry_is_installed_valid_and_starts_this_installation(tmp_path):
    import shutil

    result = inspector_cli("--install-desktop-entry", env={"XDG_DATA_HOME": str(tmp_path)})

    assert result.returncode == 0, result.stderr
    desktop = tmp_path / "applications" / "small-peer-inspector.desktop"
    icon = tmp_path / "icons" / "hicolor" / "scalable" / "apps" / "small-peer-inspector.svg"
    assert f"wrote {desktop}" in result.stdout
    assert icon.read_bytes().startswith(b"<")
    exec_line = next(line for line in desktop.read_text().splitlines() if line.startswith("Exec="))
    assert exec_line.endswith("small-peer-inspector")
    validate = shutil.which("desktop-file-validate")
    if validate is None:
        assert os.environ.get("CI") != "true", "CI installs desktop-file-utils: the entry must be validated"
        pytest.skip("desktop-file-validate is not installed (apt-get install desktop-file-utils)")
    checked = subprocess.run([validate, str(desktop)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
