"""Replication tests run a real Big Peer process; they reuse the Big Peer suite's harness."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "big_peer"))
