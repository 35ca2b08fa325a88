"""The guard against PySide6 6.12.0 dropping references to None and True on CPython 3.11."""

import sys

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QLabel

from inspector.gui import refcount_guard


class _Emitter(QObject):
    ping = Signal()


def test_many_void_calls_and_signals_do_not_exhaust_none_or_true(qapp):
    # Without the guard, 6.12.0 on 3.11 aborts the interpreter long before this ends.
    label, emitter = QLabel(), _Emitter()
    for _ in range(200_000):
        label.setText("x")
        emitter.ping.emit()
    assert sys.getrefcount(None) > 0


def test_guard_is_only_active_where_references_are_lost():
    if sys.version_info >= (3, 12):
        assert not refcount_guard.GUARDED  # immortal singletons: nothing to guard
        return
    assert refcount_guard.pyside_loses_references() == refcount_guard.GUARDED
    if refcount_guard.GUARDED:
        assert sys.getrefcount(None) > 2**39
