"""Core benchmarks (run by hand: ``python tests/benchmarks/bench_core.py [--collections N]``).

Prints each result as a ratio against a baseline measured in the same run:

* the metadata setters for a 127 KiB object, against ``orjson.loads`` of the same
  text (target: <= 2x);
* database bytes per collected document after N collections with unchanged 127 KiB
  metadata (target: <= 2 KiB), against the size of one such document as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import string
import tempfile
import time
from pathlib import Path

import orjson

from inspector import Ditto


def metadata_of(size: int) -> dict:
    rng = random.Random(7)
    value: dict = {}
    i = 0
    while len(orjson.dumps(value)) < size:
        value[f"key{i}"] = {
            "name": "".join(rng.choices(string.ascii_letters, k=40)),
            "n": i,
            "tags": ["x", "y", i * 1.5],
            "ok": True,
        }
        i += 1
    value.popitem()
    return value


def best_of(fn, repeat: int = 7, number: int = 200) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


async def setter_cost(directory: Path) -> None:
    value = metadata_of(127 * 1024)
    text = orjson.dumps(value).decode()
    pretty = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()
    async with Ditto(directory) as peer:
        sp = peer.small_peer_info
        baseline = best_of(lambda: orjson.loads(text))
        toggle = [text, text.replace('"key0"', '"kex0"')]  # alternate so every set is a real change
        flip = iter(range(10**9))

        def set_text():
            sp.metadata_json_string = toggle[next(flip) % 2]

        values = [value, orjson.loads(toggle[1])]

        def set_value():
            sp.metadata = values[next(flip) % 2]

        def set_pretty():
            sp.metadata_json_string = pretty

        results = {
            "metadata_json_string = compact text": best_of(set_text),
            "metadata_json_string = pretty text": best_of(set_pretty),
            "metadata = dict": best_of(set_value),
        }
    print(f"\nsetter cost, 127 KiB metadata ({len(text):,} bytes compact)")
    print(f"  baseline orjson.loads(text): {baseline * 1e3:.3f} ms")
    for name, seconds in results.items():
        print(f"  {name:40s} {seconds * 1e3:.3f} ms  = {seconds / baseline:.2f}x  (target <= 2x)")


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
        asyncio.run(setter_cost(Path(tmp) / "setter"))
        asyncio.run(bytes_per_document(Path(tmp) / "storage", args.collections))


if __name__ == "__main__":
    main()
