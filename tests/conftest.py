"""Test setup shared by every suite: headless Qt, and no test touches the user's real directories."""

import os
import subprocess
import sys
from pathlib import Path

# The real Big Peer harness serves the Big Peer, replication and window suites alike, and
# waiting.py (awaiting a condition without fixed sleeps) every async suite.
sys.path.insert(0, str(Path(__file__).resolve().parent / "big_peer"))
sys.path.insert(0, str(Path(__file__).resolve().parent / "core"))

# Before anything imports Qt: the suite runs headless everywhere, CI included.
os.environ["QT_QPA_PLATFORM"] = "offscreen"
os.environ.setdefault("QT_QUICK_BACKEND", "software")

import pytest


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path_factory, monkeypatch):
    """Point the platform's user data/config dirs at a temporary place for every test."""
    home = tmp_path_factory.mktemp("home")
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.setenv(var, str(home / var.lower()))
    monkeypatch.setenv("HOME", str(home))


class SmallDisks:
    """Real tmpfs mounts of a chosen size (see the `small_disk` fixture)."""

    def __init__(self, root):
        self._root = root
        self._mounted = []

    def __call__(self, size_bytes, *, readonly=False):
        target = self._root / f"disk{len(self._mounted)}"
        target.mkdir()
        options = f"size={size_bytes}" + (",ro" if readonly else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
        self._mounted.append(target)
        return target

    def remount(self, target, *, readonly):
        """Make a mounted disk read-only, or writable again."""
        subprocess.run(["mount", "-o", f"remount,{'ro' if readonly else 'rw'}", str(target)], check=True)

    def unmount_all(self):
        for target in reversed(self._mounted):
            subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size_bytes, readonly=False)``: a real tmpfs of that size, unmounted after the test.

    Full and read-only disks are tested on real filesystems, not mocks. Mounting
    needs root (CAP_SYS_ADMIN), as on this project's machines and CI; elsewhere the
    test is skipped with that reason. ``small_disk.remount(path, readonly=...)``.
    """
    disks = SmallDisks(tmp_path)
    yield disks
    disks.unmount_all()
