"""Running one test suite with its long form switched on (``python -m tests.reliability --full``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_suite(directory: Path, flag: str, variable: str) -> int:
    """``pytest directory``, with ``variable=1`` in the environment when ``flag`` is among the arguments."""
    args = sys.argv[1:]
    env = dict(os.environ)
    if flag in args:
        args.remove(flag)
        env[variable] = "1"
    command = [sys.executable, "-m", "pytest", str(directory), *args]
    return subprocess.call(command, cwd=directory.parent.parent, env=env)
