"""The reliability suite: ``python -m tests.reliability [--full] [pytest args...]``.

The normal test run (``python -m pytest``) runs it with small counts (a few kills,
short fuzzing); ``--full`` sets ``INSPECTOR_RELIABILITY_FULL=1`` so every test runs its
full count (100 kills of a replicating peer, 20 of the Big Peer, long fuzzing...).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    args = sys.argv[1:]
    env = dict(os.environ)
    if "--full" in args:
        args.remove("--full")
        env["INSPECTOR_RELIABILITY_FULL"] = "1"
    command = [sys.executable, "-m", "pytest", str(HERE), "-p", "no:randomly", *args]
    return subprocess.call(command, cwd=HERE.parent.parent, env=env)


if __name__ == "__main__":
    sys.exit(main())
