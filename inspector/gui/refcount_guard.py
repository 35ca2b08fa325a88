"""A guard against a reference-counting bug of PySide6/shiboken6 6.12.0 on CPython < 3.12.

That build returns ``None`` from every void call (``label.setText``, ``processEvents``,
``QTimer.start``...) and ``True`` from every signal emitted from Python without taking
a reference. CPython 3.12+ makes these singletons immortal, so nothing happens there;
on 3.11 their reference counts fall by one per call until the interpreter aborts with
"Fatal Python error: none_dealloc" (or ``bool_dealloc``), within minutes of use.
PySide6 6.11.3 does not have the bug; the dependency should exclude 6.12.0 on 3.11.

Until it does, `guard()` checks whether the running binding drops references (it
measures one harmless void call) and only then raises the three singletons'
reference counts far out of reach, which is what PEP 683 does for them on 3.12.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject

__all__ = ["guard", "pyside_loses_references"]

_HEADROOM = 1 << 40 if sys.maxsize > 2**32 else 1 << 29
_PROBE_CALLS = 16


def pyside_loses_references() -> bool:
    """Whether void PySide calls drop a reference to ``None`` (measured, not guessed)."""
    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(_PROBE_CALLS):
        probe.setObjectName("probe")
    return before - sys.getrefcount(None) >= _PROBE_CALLS


def guard() -> bool:
    """Make ``None``, ``True`` and ``False`` effectively immortal if the binding needs it."""
    if sys.implementation.name != "cpython" or sys.version_info >= (3, 12):
        return False  # immortal already (PEP 683)
    if not pyside_loses_references():
        return False
    for singleton in (None, True, False):
        refcount = ctypes.c_ssize_t.from_address(id(singleton))  # ob_refcnt: the object's first field
        if refcount.value < _HEADROOM:
            refcount.value += _HEADROOM
    return True


GUARDED = guard()
"""Whether the guard was needed in this process."""
