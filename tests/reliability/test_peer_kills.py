"""SIGKILL a replicating peer at random moments: nothing lost, duplicated or reordered, ever.

A real Big Peer process on 127.0.0.1, and a real peer process collecting every 0.1 s
and replicating, killed with SIGKILL after a random time, again and again (5 times
in the normal run, 100 with ``--full``). Then the peer is opened once more, stops
collecting and drains its queue, and: the database passes ``integrity_check``; its
history has no gaps; every document is acknowledged; the Big Peer holds each one
exactly once, and received them in the order they were collected.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from big_peer_files import stored_order
from big_peer_harness import DEVICE_TOKEN, start_big_peer
from counts import count

from inspector import Ditto
from inspector.core.events import Replication
from inspector.core.replication import ReplicationPolicy

ROOT = Path(__file__).resolve().parents[2]


def start_peer(directory: Path, url: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.replicating_peer", str(directory), url, DEVICE_TOKEN],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


async def drain(directory: Path, url: str) -> tuple[list[str], list[Replication], str]:
    policy = ReplicationPolicy(backoff_base=0.02, backoff_cap=0.2)
    async with Ditto(
        directory, big_peer_url=url, big_peer_token=DEVICE_TOKEN, replication_policy=policy
    ) as peer:
        peer.small_peer_info.is_enabled = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while peer.replication_status.queue_length or peer.replication_status.sending:
            assert loop.time() < deadline, peer.replication_status
            await asyncio.sleep(0.05)
        first, last = await peer.store.bounds()
        rows = await peer.store.timeline_rows(first, last)
        stamps = [d["last_updated_at"] for d in reversed(await peer.small_peer_info.history(limit=10**6))]
        assert len(stamps) == last - first + 1 == len(rows)  # no gaps
        return stamps, [row.replication for row in rows], peer.peer_key


def test_killing_a_replicating_peer_loses_and_duplicates_nothing(tmp_path):
    big_peer = start_big_peer(tmp_path / "big-peer", tmp_path / "big-peer.log")
    directory = tmp_path / "peer"
    rng = random.Random(20261126)
    kills = count(5, 100)
    try:
        for _ in range(kills):
            process = start_peer(directory, big_peer.url)
            try:
                process.wait(timeout=rng.uniform(0.2, 1.2))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
            finally:
                assert process.stdout is not None
                process.stdout.close()
            with sqlite3.connect(directory / "peer.sqlite3") as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            db.close()
        stamps, states, peer_key = asyncio.run(drain(directory, big_peer.url))
        assert len(stamps) >= kills
        assert set(states) == {Replication.ACKNOWLEDGED}
        arrived = stored_order(big_peer.data_dir, peer_key)
        assert arrived == stamps  # each exactly once, in the order collected
    finally:
        assert big_peer.stop() == 0, big_peer.log()
