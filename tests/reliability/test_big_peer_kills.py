"""SIGKILL the Big Peer while devices write to it; after each restart on the same data, nothing is lost.

Devices keep writing signed batches while the service is killed at random moments
(3 times in the normal run, 20 with ``--full``) and restarted on the same data
directory. After every kill: the database passes ``PRAGMA integrity_check``; every
document a device got acknowledged is stored, once; each device's fleet summary
agrees with its history; and a request that was acknowledged before the kill is
still refused as a replay.
"""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson
import pytest
from big_peer_harness import (
    DEVICE_TOKEN,
    WRITE_PATH,
    BigPeerClient,
    BigPeerProcess,
    small_peer_info,
    start_big_peer,
    suite_conftest,
    timestamps,
)

from inspector.big_peer.sqlite_storage import DATABASE_FILE
from inspector.core.identity import Identity

pytestmark = pytest.mark.timeout(600)

DEVICES = 4
BATCH = 20


@dataclass
class Device:
    """A device that writes batches of fresh documents and remembers what the service acknowledged."""

    identity: Identity
    moments: list[str]
    acknowledged: set[str] = field(default_factory=set)
    unacknowledged: list[list[dict]] = field(default_factory=list)
    last_signed: tuple[bytes, dict[str, str]] | None = None

    def next_batch(self) -> list[dict]:
        taken, self.moments = self.moments[:BATCH], self.moments[BATCH:]
        return [small_peer_info(self.identity.peer_key, at, sequence=i) for i, at in enumerate(taken)]

    async def write(self, session: aiohttp.ClientSession, url: str, batch: list[dict]) -> bool:
        """Send one batch, signed afresh; whether the service acknowledged it as stored."""
        body = orjson.dumps({"documents": batch})
        headers = {
            **self.identity.request_headers("POST", WRITE_PATH, body),
            "Authorization": f"Bearer {DEVICE_TOKEN}",
        }
        try:
            async with session.post(url + WRITE_PATH, data=body, headers=headers) as response:
                answer = await response.read()
        except (aiohttp.ClientError, OSError):
            return False
        if response.status != 200:
            return False
        counted = orjson.loads(answer)
        if counted["accepted"] + counted["duplicates"] != len(batch):
            return False
        self.acknowledged.update(d["last_updated_at"] for d in batch)
        self.last_signed = (body, headers)
        return True

    async def keep_writing(self, session: aiohttp.ClientSession, url: str, stop: asyncio.Event) -> None:
        while not stop.is_set() and self.moments:
            batch = self.next_batch()
            if not await self.write(session, url, batch):
                self.unacknowledged.append(batch)  # kept for a retry, as a peer's outbox would
                return


def integrity(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        connection.close()


async def whole_history(client: BigPeerClient, identity: Identity) -> list[str]:
    """Every stored ``last_updated_at`` of a device, newest first, paging with ``before``."""
    stored: list[str] = []
    query = "?limit=1000"
    while page := (await client.history(identity, query)).json["documents"]:
        stored += [document["last_updated_at"] for document in page]
        query = f"?limit=1000&before={stored[-1]}"
    return stored


async def check_after_restart(running: BigPeerProcess, devices: list[Device], seed: int) -> None:
    async with aiohttp.ClientSession() as session:
        client = BigPeerClient(session, running.url)
        # What was in flight at the kill is sent again, as a peer retries its outbox.
        for device in devices:
            while device.unacknowledged:
                assert await device.write(session, running.url, device.unacknowledged.pop()), seed
        summaries = {}
        after = ""
        while True:
            page = (await client.read(f"/api/v1/fleet?limit=1000{after}")).json
            summaries.update({s["peer_key"]: s for s in page["devices"]})
            if page["next"] is None:
                break
            after = f"&after={page['next']}"
        for device in devices:
            if not device.acknowledged:
                continue
            stored = await whole_history(client, device.identity)
            assert len(stored) == len(set(stored)), f"duplicates stored (seed {seed})"
            assert device.acknowledged <= set(stored), f"acknowledged documents lost (seed {seed})"
            summary = summaries[device.identity.peer_key]
            assert summary["document_count"] == len(stored), f"summary count disagrees (seed {seed})"
            assert summary["last_updated_at"] == max(stored), f"summary is not the newest (seed {seed})"
            assert device.last_signed is not None
            body, headers = device.last_signed
            replay = await client.request("POST", WRITE_PATH, data=body, headers=headers)
            assert replay.status == 401, f"a replay was accepted after the restart (seed {seed})"
            assert replay.error_code == "replayed_nonce"


async def test_acknowledged_writes_survive_kills_and_replays_stay_refused(
    tmp_path: Path, pytestconfig: pytest.Config
) -> None:
    kills = suite_conftest(pytestconfig, __file__).count(3, 20)
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    data_dir = tmp_path / "data"
    devices = []
    for number in range(DEVICES):
        directory = tmp_path / f"device-{number}"
        directory.mkdir()
        devices.append(Device(Identity.load_or_create(directory), timestamps(BATCH * 10_000)))
    for kill in range(kills):
        running = start_big_peer(data_dir, tmp_path / f"service-{kill}.log")
        try:
            if kill:
                await check_after_restart(running, devices, seed)
            stop = asyncio.Event()
            async with aiohttp.ClientSession() as session:
                writers = [asyncio.ensure_future(d.keep_writing(session, running.url, stop)) for d in devices]
                # A random moment within the first few hundred writes (each commit is synced to disk).
                await asyncio.sleep(rng.uniform(0.05, 1.0))
                running.stop(signal.SIGKILL)
                stop.set()
                await asyncio.gather(*writers)
        finally:
            running.stop(signal.SIGKILL)
        assert integrity(data_dir / DATABASE_FILE) == "ok", f"damaged after kill {kill + 1} (seed {seed})"
    final = start_big_peer(data_dir, tmp_path / "service-final.log")
    try:
        await check_after_restart(final, devices, seed)
        assert sum(len(d.acknowledged) for d in devices) > 0, "no write was ever acknowledged"
    finally:
        assert final.stop() == 0
