"""The soak suite: ``python -m tests.soak [--long] [pytest args...]``.

The normal test run (``python -m pytest``) runs it with short counts; ``--long`` sets
``INSPECTOR_SOAK_LONG=1`` so every soak runs its long form (10,000 collections with
127 KiB metadata, 1,000,000 documents ingested by the Big Peer...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.suite_runner import run_suite

if __name__ == "__main__":
    sys.exit(run_suite(Path(__file__).resolve().parent, "--long", "INSPECTOR_SOAK_LONG"))
