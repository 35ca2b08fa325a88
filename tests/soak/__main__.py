"""The soak suite: ``python -m tests.soak [--long] [pytest args...]``.

The normal test run (``python -m pytest``) runs it with short counts; ``--long`` sets
``INSPECTOR_SOAK_LONG=1`` so every soak runs its long form (10,000 collections with
127 KiB metadata, 1,000,000 documents ingested by the Big Peer...).
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
    if "--long" in args:
        args.remove("--long")
        env["INSPECTOR_SOAK_LONG"] = "1"
    command = [sys.executable, "-m", "pytest", str(HERE), "-p", "no:randomly", *args]
    return subprocess.call(command, cwd=HERE.parent.parent, env=env)


if __name__ == "__main__":
    sys.exit(main())
