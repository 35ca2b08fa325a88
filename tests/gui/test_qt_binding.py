"""The Qt binding we install keeps Python's reference counts straight.

PySide6 6.12.0 on CPython 3.11 drops a reference to None on every Qt call that
returns nothing and to True on every emit from Python; the app then dies with
"Fatal Python error: none_dealloc" within minutes. pyproject.toml excludes that
release; this test fails (in a child process, so the suite survives) if a binding
with the same bug is ever installed again.
"""

import subprocess
import sys
import textwrap

CHECK = textwrap.dedent(
    """
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QApplication, QLabel

    class Emitter(QObject):
        ping = Signal()

    app = QApplication([])
    label, emitter = QLabel(), Emitter()
    none, true = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(2000):
        label.setText("x")
        emitter.ping.emit()
    print(sys.getrefcount(None) - none, sys.getrefcount(True) - true)
    """
)


def test_qt_calls_and_signals_do_not_lose_references_to_none_or_true():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lost_none, lost_true = map(int, result.stdout.split())
    if sys.version_info < (3, 12):  # from 3.12 on, None and True are immortal
        assert lost_none > -100
        assert lost_true > -100
