"""Reading a Big Peer's own SQLite file: the order in which it stored a device's documents."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def stored_order(data_dir: Path, peer_key: str) -> list[str]:
    """``last_updated_at`` of ``peer_key``'s documents, in the order the Big Peer stored them."""
    with sqlite3.connect(data_dir / "big_peer.sqlite3") as db:
        rows = db.execute(
            "SELECT last_updated_at FROM documents WHERE peer_key = ? ORDER BY seq", (peer_key,)
        ).fetchall()
    db.close()
    return [row[0] for row in rows]
