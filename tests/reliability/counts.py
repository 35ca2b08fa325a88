"""Counts of the reliability suite (imported by its tests and its conftest).

Small in the normal run; full with ``python -m tests.reliability --full``.
"""

from __future__ import annotations

import os

FULL = os.environ.get("INSPECTOR_RELIABILITY_FULL") == "1"


def count(ci: int, full: int) -> int:
    """How many times to do something: ``ci`` in the normal run, ``full`` in the full run."""
    return full if FULL else ci
