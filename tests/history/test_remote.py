"""`BigPeerClient` and `BigPeerHistory` against the real Big Peer service on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    small_peer_info,
    start_big_peer,
    timestamp,
)
from big_peer_harness import (
    BigPeerClient as HarnessClient,
)

from inspector import Ditto
from inspector.core.identity import Identity
from inspector.core.replication import ReplicationPolicy
from inspector.history.remote import (
    BigPeerClient,
    BigPeerHistory,
    BigPeerProtocolError,
    BigPeerUnreachableError,
    FleetSortOrder,
    TokenRefusedError,
    UnknownDeviceError,
)
from inspector.history.source import RowsAppended, SourceReset

pytestmark = pytest.mark.timeout(60)

START = datetime(2026, 11, 26, 5, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def big_peer(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("remote-big-peer")
    running = start_big_peer(workdir / "data", workdir / "service.log")
    yield running
    assert running.stop() == 0, running.log()
    assert "Traceback" not in running.log()


@pytest.fixture
async def harness(big_peer):
    async with aiohttp.ClientSession() as session:
        yield HarnessClient(session, big_peer.url)


@pytest.fixture
async def client(big_peer):
    client = BigPeerClient(big_peer.url, ADMIN_TOKEN)
    yield client
    await client.close()


_devices = 0


def new_device(tmp_path):
    global _devices
    _devices += 1
    directory = tmp_path / f"device-{_devices}"
    directory.mkdir()
    return Identity.load_or_create(directory)


async def write(harness, device, moments, **fields):
    """Store one document per moment (batches of up to 1000), as the device."""
    for start in range(0, len(moments), 1000):
        batch = moments[start : start + 1000]
        documents = [small_peer_info(device.peer_key, timestamp(moment), **fields) for moment in batch]
        answer = await harness.write(device, documents)
        assert answer.status == 200, answer.body


def moments(count, start=START, step=timedelta(seconds=2)):
    return [start + i * step for i in range(count)]


async def test_fleet_pages_sorts_and_filters(harness, client, tmp_path):
    tag = "remote-fleet-tag"
    names = ["delta", "alpha", "charlie", "bravo", "echo"]
    keys = {}
    for offset, name in enumerate(names):
        device = new_device(tmp_path)
        keys[name] = device.peer_key
        await write(
            harness,
            device,
            [START + timedelta(minutes=offset)],
            device_name=f"{tag}-{name}",
            metadata={"site": "Oslo" if name in ("alpha", "echo") else "Lima", "tag": tag},
        )

    first = await client.fleet(limit=2, q=tag)
    assert first is not None
    assert first.total == 5
    assert [d.device_name for d in first.devices] == [f"{tag}-alpha", f"{tag}-bravo"]
    assert first.next is not None
    rest = await client.fleet(limit=10, q=tag, after=first.next)
    assert rest is not None
    assert [d.device_name for d in rest.devices] == [f"{tag}-charlie", f"{tag}-delta", f"{tag}-echo"]
    assert rest.next is None

    newest_first = await client.fleet(q=tag, sort=FleetSortOrder.LAST_UPDATED_AT)
    assert newest_first is not None
    assert [d.device_name for d in newest_first.devices] == [f"{tag}-{n}" for n in reversed(names)]

    only_oslo = await client.fleet(q='"site":"OSLO"', limit=1000)
    assert only_oslo is not None
    assert {keys["alpha"], keys["echo"]} <= {d.peer_key for d in only_oslo.devices}
    assert keys["bravo"] not in {d.peer_key for d in only_oslo.devices}

    device = first.devices[0]
    assert device.peer_key == keys["alpha"]
    assert device.document_count == 1
    assert device.sdk_platform == "Linux"
    assert device.device_available == 123_000_000_000
    assert device.metadata == {"site": "Oslo", "tag": tag}
    assert device.received_ms is not None


async def test_an_unchanged_fleet_answers_not_modified(harness, client, tmp_path):
    page = await client.fleet(limit=1)
    assert page is not None and page.etag
    assert await client.fleet(limit=1, etag=page.etag) is None
    await write(harness, new_device(tmp_path), [START])
    assert await client.fleet(limit=1, etag=page.etag) is not None


async def test_failures_are_typed_errors(big_peer):
    wrong = BigPeerClient(big_peer.url, "not-the-admin-token")
    device_token = BigPeerClient(big_peer.url, DEVICE_TOKEN)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    nobody = BigPeerClient(f"http://127.0.0.1:{closed_port}", ADMIN_TOKEN, timeout=5)
    right = BigPeerClient(big_peer.url, ADMIN_TOKEN)
    try:
        with pytest.raises(TokenRefusedError, match="The admin token was refused"):
            await wrong.fleet()
        with pytest.raises(TokenRefusedError):
            await device_token.fleet()
        with pytest.raises(BigPeerUnreachableError, match=r"cannot be reached \(connection refused"):
            await nobody.fleet()
        with pytest.raises(UnknownDeviceError):
            await right.history("pk1_not-a-device")
        with pytest.raises(BigPeerProtocolError, match="HTTP 400"):
            await right.fleet(sort="sideways")
    finally:
        for client in (wrong, device_token, nobody, right):
            await client.close()


async def test_history_indices_count_from_the_oldest(harness, client, tmp_path):
    device = new_device(tmp_path)
    times = moments(2300)
    await write(harness, device, times, metadata={"site": "lab"})
    history = BigPeerHistory(client, device.peer_key, window=1000)

    assert await history.bounds() == (1, 2300)
    oldest = await history.document(1)
    assert orjson.loads(oldest)["last_updated_at"] == timestamp(times[0])
    rows = await history.rows(1000, 1010)
    assert [row.index for row in rows] == list(range(1010, 999, -1))
    assert [row.ts_ms for row in rows] == [int(times[i - 1].timestamp() * 1000) for i in range(1010, 999, -1)]
    documents = await history.documents(1, 3)
    assert [orjson.loads(d)["last_updated_at"] for _, d in documents] == [timestamp(t) for t in times[2::-1]]
    # The window is the newest 1000 documents: the plot's span.
    assert await history.time_bounds() == (
        int(times[1300].timestamp() * 1000),
        int(times[-1].timestamp() * 1000),
    )
    assert await history.index_at_or_before(int(times[2000].timestamp() * 1000)) == 2001
    await history.wait_closed()


async def test_series_markers_and_search_come_from_the_documents(harness, client, tmp_path):
    device = new_device(tmp_path)
    times = moments(6)
    base = small_peer_info(device.peer_key, timestamp(times[0]))["device_disk_usage"]
    connected = {"event": "connected", "timestamp": timestamp(times[1])}
    documents = []
    for i, moment in enumerate(times):
        documents.append(
            small_peer_info(
                device.peer_key,
                timestamp(moment),
                metadata={"battery": {"level": 90 - i}, "site": "Oslo" if i < 3 else "Lima"},
                device_disk_usage={**base, "device_available": 1000 + i},
                big_peer_connection_history=[connected] if i >= 1 else [],
            )
        )
    answer = await harness.write(device, documents)
    assert answer.status == 200
    history = BigPeerHistory(client, device.peer_key)
    first, last = int(times[0].timestamp() * 1000), int(times[-1].timestamp() * 1000)

    series = await history.series(
        ["device_disk_usage.device_available", "metadata.battery.level"], first, last, 100
    )
    assert list(series["device_disk_usage.device_available"].maximum) == [1000, 1001, 1002, 1003, 1004, 1005]
    assert list(series["metadata.battery.level"].minimum) == [90, 89, 88, 87, 86, 85]
    assert "metadata.battery.level" in await history.numeric_paths()

    markers = await history.markers(first, last)
    kinds = [(m.kind, m.ts_ms) for m in markers]
    assert ("connected", int(times[1].timestamp() * 1000)) in kinds
    assert sum(1 for kind, _ in kinds if kind == "metadata") == 5  # the battery level changes each time
    assert any("changed: battery, site" in m.detail for m in markers)
    columns = await history.marker_columns(first, last, 1)
    assert ("connected", int(times[1].timestamp() * 1000), 1) in columns

    found, bounds = await history.search("LIMA", 100)
    assert found == [6, 5, 4]
    assert bounds == (1, 6)
    await history.wait_closed()


async def test_new_documents_arrive_and_an_older_one_resets(harness, client, tmp_path):
    device = new_device(tmp_path)
    times = moments(10, step=timedelta(seconds=10))
    await write(harness, device, times[1:5])
    history = BigPeerHistory(client, device.peer_key, poll_interval=3600)
    changes = []
    history.subscribe(changes.append)
    assert await history.bounds() == (1, 4)

    await history.poll()
    assert changes == []  # 304: nothing new
    await write(harness, device, times[5:7])
    await history.poll()
    assert len(changes) == 1 and isinstance(changes[0], RowsAppended)
    assert changes[0].newest == 6
    assert [row.index for row in changes[0].rows] == [6, 5]
    assert changes[0].rows[0].numbers["device_disk_usage.device_available"] == 123_000_000_000

    await write(harness, device, times[:1])  # older than all: every index shifts by one
    await history.poll()
    assert isinstance(changes[-1], SourceReset)
    assert await history.bounds() == (1, 7)
    assert orjson.loads(await history.document(1))["last_updated_at"] == timestamp(times[0])
    await history.wait_closed()


async def test_a_replicating_peer_is_followed_live(big_peer, client, tmp_path):
    policy = ReplicationPolicy(backoff_base=0.02, backoff_cap=0.3, request_timeout=5)
    async with Ditto(
        tmp_path / "peer",
        device_name="live-peer",
        small_peer_info_interval=0.3,
        big_peer_url=big_peer.url,
        big_peer_token=DEVICE_TOKEN,
        replication_policy=policy,
    ) as ditto:
        await ditto.small_peer_info.set_sync_scope("BigPeerOnly")
        ditto.small_peer_info.is_enabled = True
        while (device := await client.find_device(ditto.peer_key)) is None:  # noqa: ASYNC110 (an HTTP poll)
            await asyncio.sleep(0.05)
        history = BigPeerHistory(client, ditto.peer_key, summary=device, poll_interval=0.2)
        appended = asyncio.Event()
        history.subscribe(lambda change: appended.set() if isinstance(change, RowsAppended) else None)
        _, newest = await history.bounds()
        async with asyncio.timeout(10):
            await appended.wait()
        _, later = await history.bounds()
        assert later > newest
        document = orjson.loads(await history.document(later))
        assert document["device_name"] == "live-peer"
        assert document["_id"] == ditto.peer_key
        ditto.small_peer_info.is_enabled = False
        await history.wait_closed()
