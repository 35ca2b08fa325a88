"""The Big Peer's memory and open files stay flat under ingest from 50 devices and under fleet reads.

Short in the normal run (20,000 documents, 2,000 reads); ``python -m tests.soak --long``
ingests 1,000,000 documents and serves 10,000 fleet and history reads. Budgets: RSS
grows at most 50 MiB after warm-up, open file descriptors not at all.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import aiohttp
import orjson
import pytest
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    WRITE_PATH,
    BigPeerProcess,
    small_peer_info,
    start_big_peer,
    suite_conftest,
    timestamps,
)

from inspector.core.identity import Identity

pytestmark = pytest.mark.timeout(3600)

DEVICES = 50
BATCH = 100
SAMPLES = 20
WARMUP_SAMPLES = 3
MAX_RSS_GROWTH = 50 * 2**20


@pytest.fixture
def big_peer(tmp_path: Path) -> Iterator[BigPeerProcess]:
    running = start_big_peer(tmp_path / "data", tmp_path / "service.log")
    yield running
    assert running.stop() == 0, running.log()
    assert "Traceback" not in running.log(), running.log()


def devices(tmp_path: Path) -> list[Identity]:
    made = []
    for number in range(DEVICES):
        directory = tmp_path / f"device-{number}"
        directory.mkdir()
        made.append(Identity.load_or_create(directory))
    return made


async def ingest(url: str, fleet: list[Identity], documents: int, on_progress) -> None:
    """Every device sends its share in batches, all concurrently; ``on_progress(sent)`` now and then."""
    per_device = documents // DEVICES // BATCH * BATCH
    sent = itertools.count(BATCH, BATCH)
    report_every = max(BATCH, DEVICES * per_device // SAMPLES // BATCH * BATCH)

    async def device_loop(session: aiohttp.ClientSession, device: Identity, number: int) -> None:
        moments = timestamps(per_device, step=timedelta(seconds=300))
        for first in range(0, per_device, BATCH):
            batch = [
                small_peer_info(
                    device.peer_key,
                    at,
                    device_name=f"soak-{number:02d}",
                    metadata={"site": "soak", "round": first // BATCH, "note": "x" * (first % 700)},
                )
                for at in moments[first : first + BATCH]
            ]
            body = orjson.dumps({"documents": batch})
            headers = {
                **device.request_headers("POST", WRITE_PATH, body),
                "Authorization": f"Bearer {DEVICE_TOKEN}",
            }
            async with session.post(url + WRITE_PATH, data=body, headers=headers) as response:
                assert response.status == 200, await response.read()
                await response.read()
            if (done := next(sent)) % report_every == 0:
                on_progress(done)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=DEVICES)) as session:
        await asyncio.gather(*(device_loop(session, device, n) for n, device in enumerate(fleet)))


async def test_ingest_from_50_devices_keeps_memory_and_files_flat(
    big_peer: BigPeerProcess, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    suite = suite_conftest(pytestconfig, __file__)
    documents = suite.count(20_000, 1_000_000)
    samples = suite.Samples(big_peer.process.pid)
    samples.take("start")

    await ingest(big_peer.url, devices(tmp_path), documents, lambda done: samples.take(f"{done:,} docs"))

    samples.take("end")
    samples.assert_flat(warmup=WARMUP_SAMPLES, max_rss_growth=MAX_RSS_GROWTH)


async def test_fleet_and_history_reads_keep_memory_and_files_flat(
    big_peer: BigPeerProcess, tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    suite = suite_conftest(pytestconfig, __file__)
    reads = suite.count(2_000, 10_000)
    fleet = devices(tmp_path)
    await ingest(big_peer.url, fleet, 20_000, lambda done: None)
    samples = suite.Samples(big_peer.process.pid)
    rng = random.Random(7)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    paths = itertools.cycle(
        [
            "/api/v1/fleet?limit=20",
            "/api/v1/fleet?limit=1000&sort=last_updated_at",
            "/api/v1/fleet?limit=50&q=SOAK-1",
            "/api/v1/devices",
            "history",
            "history-before",
        ]
    )

    async with aiohttp.ClientSession() as session:
        samples.take("start")
        for number in range(1, reads + 1):
            path = next(paths)
            device = rng.choice(fleet).peer_key
            if path == "history":
                path = f"/api/v1/devices/{device}/history?limit=100"
            elif path == "history-before":
                before = timestamps(400, step=timedelta(seconds=300))[rng.randrange(400)]
                path = f"/api/v1/devices/{device}/history?limit=1000&before={before}"
            async with session.get(big_peer.url + path, headers=admin) as response:
                assert response.status == 200, path
                await response.read()
            if number % (reads // SAMPLES) == 0:
                samples.take(f"{number:,} reads")

    samples.assert_flat(warmup=WARMUP_SAMPLES, max_rss_growth=MAX_RSS_GROWTH)
