"""Test setup shared by every suite: headless Qt, and no test touches the user's real directories."""

import os
import sys
from pathlib import Path

# The real Big Peer harness serves the Big Peer, replication and window suites alike.
sys.path.insert(0, str(Path(__file__).resolve().parent / "big_peer"))

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
