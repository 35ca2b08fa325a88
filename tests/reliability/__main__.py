"""The reliability suite: ``python -m tests.reliability [--full] [pytest args...]``.

The normal test run (``python -m pytest``) runs it with small counts (a few kills,
short fuzzing); ``--full`` sets ``INSPECTOR_RELIABILITY_FULL=1`` so every test runs its
full count (100 kills of a replicating peer, 20 of the Big Peer, long fuzzing...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.suite_runner import run_suite

if __name__ == "__main__":
    sys.exit(run_suite(Path(__file__).resolve().parent, "--full", "INSPECTOR_RELIABILITY_FULL"))
