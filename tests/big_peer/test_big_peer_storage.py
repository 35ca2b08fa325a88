"""The SQLite storage of the Big Peer, on a real database file."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from big_peer_harness import small_peer_info, timestamps

from inspector.big_peer.storage import DATABASE_FILE, IngestResult, SQLiteStorage, StorageClosedError
from inspector.core.errors import PersistenceError

KEY_A = "pk" + "A" * 43
KEY_B = "pk" + "B" * 43


@pytest.fixture
async def storage(tmp_path: Path):
    storage = await SQLiteStorage.open(tmp_path / DATABASE_FILE)
    yield storage
    await storage.close()


async def test_ingested_documents_are_read_back_newest_first(storage: SQLiteStorage) -> None:
    documents = [small_peer_info(KEY_A, at) for at in timestamps(3)]

    result = await storage.ingest(documents)

    assert result == IngestResult(accepted=3, duplicates=0)
    assert await storage.history(KEY_A, 10) == documents[::-1]
    assert await storage.latest(KEY_A) == documents[-1]
    assert await storage.devices() == [documents[-1]]


async def test_ingesting_again_stores_nothing_twice(storage: SQLiteStorage) -> None:
    documents = [small_peer_info(KEY_A, at) for at in timestamps(3)]
    await storage.ingest(documents[:2])

    result = await storage.ingest(documents)

    assert result == IngestResult(accepted=1, duplicates=2)
    assert len(await storage.history(KEY_A, 10)) == 3


async def test_repeats_within_one_batch_count_as_duplicates(storage: SQLiteStorage) -> None:
    (at,) = timestamps(1)

    result = await storage.ingest([small_peer_info(KEY_A, at), small_peer_info(KEY_A, at, device_name="2")])

    assert result == IngestResult(accepted=1, duplicates=1)
    assert (await storage.latest(KEY_A))["device_name"] == "test-laptop"


async def test_same_timestamp_on_two_devices_is_two_documents(storage: SQLiteStorage) -> None:
    (at,) = timestamps(1)

    result = await storage.ingest([small_peer_info(KEY_A, at), small_peer_info(KEY_B, at)])

    assert result.accepted == 2


async def test_latest_is_the_newest_whatever_the_arrival_order(storage: SQLiteStorage) -> None:
    older, newer = timestamps(2)
    await storage.ingest([small_peer_info(KEY_A, newer)])
    await storage.ingest([small_peer_info(KEY_A, older)])

    assert (await storage.latest(KEY_A))["last_updated_at"] == newer
    assert [d["last_updated_at"] for d in await storage.devices()] == [newer]


async def test_devices_are_listed_most_recently_updated_first(storage: SQLiteStorage) -> None:
    first, second, third = timestamps(3)
    await storage.ingest([small_peer_info(KEY_A, first), small_peer_info(KEY_B, second)])
    await storage.ingest([small_peer_info(KEY_A, third)])

    devices = await storage.devices()

    assert [(d["_id"], d["last_updated_at"]) for d in devices] == [(KEY_A, third), (KEY_B, second)]


async def test_history_pages_with_before_and_limit(storage: SQLiteStorage) -> None:
    moments = timestamps(5)
    await storage.ingest([small_peer_info(KEY_A, at) for at in moments])

    page = await storage.history(KEY_A, 2, before=moments[3])

    assert [d["last_updated_at"] for d in page] == [moments[2], moments[1]]
    assert await storage.history(KEY_A, 2, before=moments[0]) == []


async def test_unknown_device_has_no_latest_and_no_history(storage: SQLiteStorage) -> None:
    await storage.ingest([small_peer_info(KEY_A, timestamps(1)[0])])

    assert await storage.latest(KEY_B) is None
    assert await storage.history(KEY_B, 10) is None


async def test_history_limit_below_one_is_refused(storage: SQLiteStorage) -> None:
    with pytest.raises(ValueError, match="limit"):
        await storage.history(KEY_A, 0)


async def test_a_failing_batch_stores_nothing(storage: SQLiteStorage) -> None:
    good = small_peer_info(KEY_A, timestamps(1)[0])
    broken = small_peer_info(KEY_B, None)  # type: ignore[arg-type]

    with pytest.raises(sqlite3.IntegrityError):
        await storage.ingest([good, broken])

    assert await storage.devices() == []
    assert await storage.latest(KEY_A) is None


async def test_documents_survive_closing_and_reopening(tmp_path: Path) -> None:
    documents = [small_peer_info(KEY_A, at) for at in timestamps(2)]
    first = await SQLiteStorage.open(tmp_path / DATABASE_FILE)
    await first.ingest(documents)
    await first.close()

    second = await SQLiteStorage.open(tmp_path / DATABASE_FILE)
    try:
        assert await second.history(KEY_A, 10) == documents[::-1]
        assert (await second.ingest(documents)).duplicates == 2
    finally:
        await second.close()


async def test_database_is_in_wal_mode_with_compact_json(storage: SQLiteStorage, tmp_path: Path) -> None:
    await storage.ingest([small_peer_info(KEY_A, timestamps(1)[0])])

    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        (body,) = connection.execute("SELECT body FROM documents").fetchone()
    connection.close()

    assert mode == "wal"
    assert isinstance(body, str)
    assert ", " not in body
    assert ": " not in body


async def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()

    with pytest.raises(PersistenceError, match="newer version"):
        await SQLiteStorage.open(path)


async def test_close_finishes_calls_already_made_and_refuses_later_ones(tmp_path: Path) -> None:
    storage = await SQLiteStorage.open(tmp_path / DATABASE_FILE)
    moments = timestamps(20)
    pending = [asyncio.ensure_future(storage.ingest([small_peer_info(KEY_A, at)])) for at in moments]
    await asyncio.sleep(0)  # let the calls reach the worker thread before closing

    await storage.close()
    await storage.close()

    assert all(result.accepted == 1 for result in await asyncio.gather(*pending))
    with pytest.raises(StorageClosedError):
        await storage.latest(KEY_A)
    reopened = await SQLiteStorage.open(tmp_path / DATABASE_FILE)
    assert len(await reopened.history(KEY_A, 100)) == 20
    await reopened.close()


async def test_concurrent_ingests_are_all_stored(storage: SQLiteStorage) -> None:
    moments = timestamps(50)

    results = await asyncio.gather(*(storage.ingest([small_peer_info(KEY_A, at)]) for at in moments))

    assert sum(result.accepted for result in results) == 50
    assert len(await storage.history(KEY_A, 100)) == 50
