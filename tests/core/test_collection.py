"""SPEC section 2, Collection: when documents are collected, what they hold, how history is kept."""

import asyncio
import itertools
import random
import re
import time

import orjson
import pytest
from waiting import Collected, wait_for

from inspector import Ditto, DocumentCollected, HistoryRetention, __version__
from inspector.core.store import SMALL_PEER_INFO_COLLECTION
from inspector.core.timestamps import parse_timestamp

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")


async def test_enabling_collects_one_document_at_once(peer_dir):
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        collected = Collected(peer.small_peer_info)
        enabled_at_ms = int(time.time() * 1000)
        peer.small_peer_info.is_enabled = True
        # With a 300 s interval, only the immediate collection can arrive.
        (document,) = await collected.at_least(1, timeout=5)
        assert document["_id"] == peer.peer_key
        # The document's own collection time says it was taken within a second of enabling.
        assert parse_timestamp(document["last_updated_at"]) - enabled_at_ms < 1000


async def test_documents_follow_every_interval(ditto):
    collected = Collected(ditto.small_peer_info)
    ditto.small_peer_info.is_enabled = True
    documents = await collected.at_least(4)
    stamps = [parse_timestamp(d["last_updated_at"]) for d in documents]
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # One per interval: never early (a slow machine may only make them late).
    assert min(gaps) >= 100 - 5, gaps


async def test_no_collection_while_disabled(ditto):
    collected = Collected(ditto.small_peer_info)
    assert await ditto.small_peer_info.collect_now() is None
    await asyncio.sleep(0.3)  # three intervals: a disabled peer must stay silent
    assert collected.documents == []
    assert await ditto.small_peer_info.history() == []


async def test_disabling_stops_collection(ditto):
    sp = ditto.small_peer_info
    collected = Collected(sp)
    sp.is_enabled = True
    await collected.at_least(2)
    sp.is_enabled = False
    stored = len(await sp.history())
    count = len(collected.documents)
    await asyncio.sleep(0.5)  # five intervals
    assert len(collected.documents) == count
    assert len(await sp.history()) == stored
    assert sp.next_collection_at is None


async def test_metadata_set_between_collections_is_in_the_next_document(peer_dir):
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        sp = peer.small_peer_info
        collected = Collected(sp)
        sp.metadata = {"build": 1}
        sp.is_enabled = True
        first = (await collected.at_least(1))[0]
        sp.metadata = {"build": 2}
        second = await sp.collect_now()
        assert first["metadata"] == {"build": 1}
        assert second["metadata"] == {"build": 2}
        assert (await sp.history())[0]["metadata"] == {"build": 2}


async def test_current_document_is_stored_under_the_peer_key(ditto):
    collected = Collected(ditto.small_peer_info)
    ditto.small_peer_info.is_enabled = True
    await collected.at_least(2)
    ditto.small_peer_info.is_enabled = False
    newest = (await ditto.small_peer_info.history(limit=1))[0]
    current = await ditto.store.find_by_id(SMALL_PEER_INFO_COLLECTION, ditto.peer_key)
    assert current == newest
    assert current["_id"] == ditto.peer_key


async def test_documents_carry_real_machine_values(ditto):
    import platform
    import shutil

    ditto.small_peer_info.metadata = {"app": "test"}
    ditto.small_peer_info.is_enabled = True
    document = (await Collected(ditto.small_peer_info).at_least(1))[0]
    assert document["device_name"] == "test-device"
    assert document["ditto_sdk_language"] == "Python"
    assert document["ditto_sdk_platform"] in {"Linux", "macOS", "Windows", platform.system()}
    assert document["ditto_sdk_version"] == __version__
    assert TIMESTAMP.match(document["last_updated_at"])
    assert document["metadata"] == {"app": "test"}
    usage = document["device_disk_usage"]
    real = shutil.disk_usage(ditto.persistence_directory)
    assert usage["device_total"] == real.total
    assert 0 < usage["device_available"] <= usage["device_total"]
    db_size = sum(p.stat().st_size for p in ditto.persistence_directory.glob("peer.sqlite3*"))
    assert 0 < usage["ditto_store"] <= db_size * 2
    assert usage["ditto_store"] <= usage["ditto_total"]
    assert isinstance(document["connections_by_transport"], dict)
    assert isinstance(document["big_peer_connection_history"], list)
    assert document["logs_config"]["minimum_level"] in {"debug", "info", "warning", "error", "critical"}
    assert document["process"]["memory_rss_bytes"] > 1_000_000


async def test_timestamps_are_strictly_increasing_even_when_collected_back_to_back(peer_dir):
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        sp = peer.small_peer_info
        sp.is_enabled = True
        documents = [await sp.collect_now() for _ in range(30)]
        stamps = [d["last_updated_at"] for d in documents]
        assert all(a < b for a, b in zip(stamps, stamps[1:], strict=False))
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        peer.small_peer_info.is_enabled = False
        assert (await peer.small_peer_info.history(limit=1))[0]["last_updated_at"] == stamps[-1]


async def test_collection_resumes_when_an_enabled_directory_is_reopened(peer_dir):
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        peer.small_peer_info.is_enabled = True
        await Collected(peer.small_peer_info).at_least(1)
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        first = (await peer.small_peer_info.history())[0]["last_updated_at"]
        collected = Collected(peer.small_peer_info)
        (document,) = await collected.at_least(1, timeout=5)
        assert document["last_updated_at"] > first


async def test_history_pages_backwards_with_stable_cursors(peer_dir):
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        sp = peer.small_peer_info
        sp.is_enabled = True
        for _ in range(25):
            await sp.collect_now()
        everything = await sp.history(limit=1000)
        assert len(everything) >= 25
        pages, before = [], None
        while page := await sp.history(limit=10, before=before):
            pages.extend(page)
            before = page[-1]["last_updated_at"]
            await sp.collect_now()  # new documents never shift an existing cursor
        assert pages == everything
        newest = await sp.history(limit=3)
        assert [d["last_updated_at"] for d in newest] == sorted(
            (d["last_updated_at"] for d in newest), reverse=True
        )


async def test_history_is_bounded_by_count(peer_dir):
    retention = HistoryRetention(max_documents=5)
    async with Ditto(peer_dir, small_peer_info_interval=300, history_retention=retention) as peer:
        sp = peer.small_peer_info
        sp.is_enabled = True
        made = [await sp.collect_now() for _ in range(12)]
        history = await sp.history(limit=100)
        assert [d["last_updated_at"] for d in history] == [d["last_updated_at"] for d in reversed(made[-5:])]


async def test_history_is_bounded_by_age(peer_dir):
    retention = HistoryRetention(max_age_seconds=0.3)
    async with Ditto(peer_dir, small_peer_info_interval=300, history_retention=retention) as peer:
        sp = peer.small_peer_info
        sp.is_enabled = True
        old = await sp.collect_now()
        await asyncio.sleep(0.5)  # let the first document age past the bound
        new = await sp.collect_now()
        stamps = [d["last_updated_at"] for d in await sp.history()]
        assert new["last_updated_at"] in stamps
        assert old["last_updated_at"] not in stamps


async def test_unchanged_large_metadata_is_stored_once(peer_dir):
    metadata = {"blob": "m" * (127 * 1024)}
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        sp = peer.small_peer_info
        sp.metadata = metadata
        sp.is_enabled = True
        await sp.collect_now()
        await peer.store.checkpoint()
        before = peer.store.database_bytes()
        for _ in range(200):
            await sp.collect_now()
        await peer.store.checkpoint()
        growth = peer.store.database_bytes() - before
        assert growth / 200 < 2048, f"{growth / 200:.0f} bytes per document"
        assert (await sp.history(limit=1))[0]["metadata"] == metadata


async def test_observers_receive_each_document_with_its_seq(ditto):
    events = []
    ditto.small_peer_info.observe(lambda e: events.append(e) if isinstance(e, DocumentCollected) else None)
    ditto.small_peer_info.is_enabled = True
    await wait_for(lambda: len(events) >= 3)
    seqs = [e.seq for e in events[:3]]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3


async def test_events_iterator_yields_documents(ditto):
    async def first_document():
        async for event in ditto.small_peer_info.events():
            if isinstance(event, DocumentCollected):
                return event.document
        return None

    ditto.small_peer_info.is_enabled = True
    document = await asyncio.wait_for(first_document(), 10)
    assert document["_id"] == ditto.peer_key


async def test_metadata_survives_in_stored_documents_byte_for_byte(ditto):
    value = {"unicode": "é☃😀", "big": 2**64 - 1, "neg": -(2**63), "float": 0.1}
    ditto.small_peer_info.metadata = value
    ditto.small_peer_info.is_enabled = True
    await Collected(ditto.small_peer_info).at_least(1)
    ditto.small_peer_info.is_enabled = False
    stored = (await ditto.small_peer_info.history(limit=1))[0]["metadata"]
    assert orjson.dumps(stored) == orjson.dumps(value)


@pytest.mark.parametrize("limit", [1, 7])
async def test_history_limit_is_respected(peer_dir, limit):
    async with Ditto(peer_dir, small_peer_info_interval=300) as peer:
        peer.small_peer_info.is_enabled = True
        for _ in range(10):
            await peer.small_peer_info.collect_now()
        assert len(await peer.small_peer_info.history(limit=limit)) == limit


async def test_switching_to_big_peer_only_while_disabled_collects_nothing(peer_dir):
    async with Ditto(peer_dir, big_peer_url="http://127.0.0.1:9") as peer:
        collected = Collected(peer.small_peer_info)
        await peer.small_peer_info.set_sync_scope("BigPeerOnly")
        await asyncio.sleep(0.3)  # a fresh collection would have started at once
        assert collected.documents == []
        assert await peer.small_peer_info.history() == []


async def test_history_is_kept_under_its_byte_budget(peer_dir):
    budget = 2 * 2**20
    retention = HistoryRetention(max_documents=100_000, max_bytes=budget)
    async with Ditto(peer_dir, small_peer_info_interval=300, history_retention=retention) as peer:
        sp = peer.small_peer_info
        sp.is_enabled = True
        rng = random.Random(5)
        for i in range(200):  # each document brings ~60 KB of new, incompressible metadata: 12 MB
            sp.metadata = {"i": i, "blob": rng.randbytes(30_000).hex()}
            await sp.collect_now()
        await peer.store.checkpoint()
        first, last = await peer.store.bounds()
        assert last == 201 and first > 100  # the oldest went first
        assert peer.store.database_bytes() < budget * 1.5  # pages in use under the budget; some free ones
        newest = (await sp.history(limit=1))[0]
        assert newest["metadata"]["i"] == 199


def test_retention_refuses_a_budget_too_small_to_mean_anything():
    with pytest.raises(ValueError, match="at least 1 MiB"):
        HistoryRetention(max_bytes=1000)
    with pytest.raises(TypeError):
        HistoryRetention(max_bytes=2.5e6)
