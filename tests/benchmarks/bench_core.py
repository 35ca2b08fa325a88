"""Core benchmarks (run by hand: ``python tests/benchmarks/bench_core.py [--collections N]``).

Prints each result as a ratio against a baseline measured in the same run:

* database bytes per collected document after N collections with unchanged 127 KiB
  metadata (target: <= 2 KiB), against the size of one such document as JSON.

The metadata setters are measured by ``bench_metadata.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import orjson

from inspector import Ditto


async def bytes_per_document(directory: Path, collections: int) -> None:
    value = {"blob": "m" * (127 * 1024 - 20)}
    async with Ditto(directory, small_peer_info_interval=300) as peer:
        sp = peer.small_peer_info
        sp.metadata = value
        sp.is_enabled = True
        document = await sp.collect_now()
        await peer.store.run(peer.store.checkpoint)
        empty = peer.store.database_bytes()
        start = time.perf_counter()
        for _ in range(collections):
            await sp.collect_now()
        elapsed = time.perf_counter() - start
        await peer.store.run(peer.store.checkpoint)
        grown = peer.store.database_bytes()
    per_document = (grown - empty) / collections
    document_bytes = len(orjson.dumps(document))
    print(f"\nstorage after {collections:,} collections with unchanged 127 KiB metadata")
    print(f"  baseline: one document as JSON = {document_bytes:,} bytes")
    print(
        f"  database growth per document = {per_document:,.0f} bytes = {per_document / document_bytes:.4f}x"
        f"  (target <= 2048 bytes)"
    )
    print(f"  database file: {grown / 1e6:.1f} MB; {collections / elapsed:,.0f} collections/s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collections", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(bytes_per_document(Path(tmp) / "storage", args.collections))


if __name__ == "__main__":
    main()
