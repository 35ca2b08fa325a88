"""The Big Peer's storage contract, on each backend: a real SQLite file, a real PostgreSQL database.

`open_store` and `storage` (conftest) run each test on both; what is about SQLite's
file itself is marked ``sqlite_only``.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import orjson
import pytest
from big_peer_harness import small_peer_info, timestamps

from inspector.big_peer import sqlite_storage
from inspector.big_peer.fleet import FleetKey, FleetQuery, FleetSort, format_timestamp
from inspector.big_peer.replay import REPLAY_WINDOW_MS, NonceClaim, NonceGuardFullError, ReplayedNonceError
from inspector.big_peer.sqlite_storage import _SCHEMA_V1, DATABASE_FILE, SQLiteStorage
from inspector.big_peer.storage import BigPeerStorage, IngestResult, StorageClosedError
from inspector.core.errors import PersistenceError

KEY_A = "pk" + "A" * 43
KEY_B = "pk" + "B" * 43


async def history(storage: BigPeerStorage, peer_key: str, limit: int = 100, before: str | None = None):
    """The documents of a history page as values (the storage hands back JSON text)."""
    found = await storage.history(peer_key, limit, before)
    return None if found is None else [orjson.loads(text) for text in found.value]


async def latest(storage: BigPeerStorage, peer_key: str):
    found = await storage.latest(peer_key)
    return None if found is None else orjson.loads(found.value)


async def devices(storage: BigPeerStorage):
    return [orjson.loads(text) for text in (await storage.devices()).value]


async def test_ingested_documents_are_read_back_newest_first(storage: BigPeerStorage) -> None:
    documents = [small_peer_info(KEY_A, at) for at in timestamps(3)]

    result = await storage.ingest(documents)

    assert result == IngestResult(accepted=3, duplicates=0)
    assert await history(storage, KEY_A, 10) == documents[::-1]
    assert await latest(storage, KEY_A) == documents[-1]
    assert await devices(storage) == [documents[-1]]


async def test_ingesting_again_stores_nothing_twice(storage: BigPeerStorage) -> None:
    documents = [small_peer_info(KEY_A, at) for at in timestamps(3)]
    await storage.ingest(documents[:2])

    result = await storage.ingest(documents)

    assert result == IngestResult(accepted=1, duplicates=2)
    assert len(await history(storage, KEY_A, 10)) == 3


async def test_repeats_within_one_batch_count_as_duplicates(storage: BigPeerStorage) -> None:
    (at,) = timestamps(1)

    result = await storage.ingest([small_peer_info(KEY_A, at), small_peer_info(KEY_A, at, device_name="2")])

    assert result == IngestResult(accepted=1, duplicates=1)
    assert (await latest(storage, KEY_A))["device_name"] == "test-laptop"


async def test_same_timestamp_on_two_devices_is_two_documents(storage: BigPeerStorage) -> None:
    (at,) = timestamps(1)

    result = await storage.ingest([small_peer_info(KEY_A, at), small_peer_info(KEY_B, at)])

    assert result.accepted == 2


async def test_latest_is_the_newest_whatever_the_arrival_order(storage: BigPeerStorage) -> None:
    older, newer = timestamps(2)
    await storage.ingest([small_peer_info(KEY_A, newer)])
    await storage.ingest([small_peer_info(KEY_A, older)])

    assert (await latest(storage, KEY_A))["last_updated_at"] == newer
    assert [d["last_updated_at"] for d in await devices(storage)] == [newer]


async def test_devices_are_listed_most_recently_updated_first(storage: BigPeerStorage) -> None:
    first, second, third = timestamps(3)
    await storage.ingest([small_peer_info(KEY_A, first), small_peer_info(KEY_B, second)])
    await storage.ingest([small_peer_info(KEY_A, third)])

    listed = await devices(storage)

    assert [(d["_id"], d["last_updated_at"]) for d in listed] == [(KEY_A, third), (KEY_B, second)]


async def test_history_pages_with_before_and_limit(storage: BigPeerStorage) -> None:
    moments = timestamps(5)
    await storage.ingest([small_peer_info(KEY_A, at) for at in moments])

    page = await history(storage, KEY_A, 2, before=moments[3])

    assert [d["last_updated_at"] for d in page] == [moments[2], moments[1]]
    assert await history(storage, KEY_A, 2, before=moments[0]) == []


async def test_unknown_device_has_no_latest_and_no_history(storage: BigPeerStorage) -> None:
    await storage.ingest([small_peer_info(KEY_A, timestamps(1)[0])])

    assert await storage.latest(KEY_B) is None
    assert await storage.history(KEY_B, 10) is None


async def test_history_limit_below_one_is_refused(storage: BigPeerStorage) -> None:
    with pytest.raises(ValueError, match="limit"):
        await history(storage, KEY_A, 0)


async def test_a_failing_batch_stores_nothing(storage: BigPeerStorage, backend) -> None:
    good = small_peer_info(KEY_A, timestamps(1)[0])
    broken = small_peer_info(KEY_B, None)  # type: ignore[arg-type]
    refusal = asyncpg.IntegrityConstraintViolationError if backend.is_postgresql else sqlite3.IntegrityError

    with pytest.raises(refusal):
        await storage.ingest([good, broken])

    assert await devices(storage) == []
    assert await storage.latest(KEY_A) is None


async def test_documents_survive_closing_and_reopening(open_store) -> None:
    documents = [small_peer_info(KEY_A, at) for at in timestamps(2)]
    first = await open_store()
    await first.ingest(documents)
    await first.close()

    second = await open_store()
    assert await history(second, KEY_A, 10) == documents[::-1]
    assert (await second.ingest(documents)).duplicates == 2


@pytest.mark.sqlite_only("SQLite's journal mode and the text it stores")
async def test_database_is_in_wal_mode_with_compact_json(storage: BigPeerStorage, tmp_path: Path) -> None:
    await storage.ingest([small_peer_info(KEY_A, timestamps(1)[0])])

    with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        (body,) = connection.execute("SELECT body FROM documents").fetchone()
    connection.close()

    assert mode == "wal"
    assert isinstance(body, str)
    assert ", " not in body
    assert ": " not in body


@pytest.mark.sqlite_only("SQLite's user_version; PostgreSQL's: test_big_peer_postgres.py")
async def test_database_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()

    with pytest.raises(PersistenceError, match="newer version"):
        await SQLiteStorage.open(path)


async def test_close_finishes_calls_already_made_and_refuses_later_ones(open_store) -> None:
    storage = await open_store()
    moments = timestamps(20)
    pending = [asyncio.ensure_future(storage.ingest([small_peer_info(KEY_A, at)])) for at in moments]
    await asyncio.sleep(0)  # let the calls reach the worker thread before closing

    await storage.close()
    await storage.close()

    assert all(result.accepted == 1 for result in await asyncio.gather(*pending))
    with pytest.raises(StorageClosedError):
        await storage.latest(KEY_A)
    reopened = await open_store()
    assert len(await history(reopened, KEY_A)) == 20


async def test_concurrent_ingests_are_all_stored(storage: BigPeerStorage) -> None:
    moments = timestamps(50)

    results = await asyncio.gather(*(storage.ingest([small_peer_info(KEY_A, at)]) for at in moments))

    assert sum(result.accepted for result in results) == 50
    assert len(await history(storage, KEY_A, 100)) == 50


# --- the replay guard ---------------------------------------------------------------------------


class Clock:
    """Milliseconds the storage reads as its clock; tests move it."""

    def __init__(self, now_ms: int = 1_764_135_492_345) -> None:
        self.now_ms = now_ms

    def __call__(self) -> int:
        return self.now_ms


def claim(nonce: str, clock: Clock, peer_key: str = KEY_A) -> NonceClaim:
    return NonceClaim.of_request(peer_key, nonce, clock.now_ms)


@pytest.fixture
def kept_nonces(backend, tmp_path: Path):
    """``await kept_nonces()``: the nonces the replay guard keeps and its count of them, from the database."""

    async def from_sqlite() -> tuple[list[str], int]:
        with sqlite3.connect(tmp_path / DATABASE_FILE) as connection:
            kept = connection.execute("SELECT nonce FROM nonces ORDER BY nonce").fetchall()
            (counted,) = connection.execute("SELECT value FROM counters WHERE name = 'nonces'").fetchone()
        connection.close()
        return [nonce for (nonce,) in kept], counted

    async def from_postgresql() -> tuple[list[str], int]:
        connection = await asyncpg.connect(backend.store_database_url)
        try:
            kept = await connection.fetch("SELECT nonce FROM nonces ORDER BY nonce")
            counted = await connection.fetchval("SELECT count(*) FROM nonces")
        finally:
            await connection.close()
        return [row["nonce"] for row in kept], counted

    return from_postgresql if backend.is_postgresql else from_sqlite


async def test_a_nonce_is_spent_once_and_a_replay_stores_nothing(open_store) -> None:
    clock = Clock()
    storage = await open_store(clock_ms=clock)
    first, second = timestamps(2)
    await storage.ingest([small_peer_info(KEY_A, first)], claim("n1", clock))

    with pytest.raises(ReplayedNonceError):
        await storage.ingest([small_peer_info(KEY_A, second)], claim("n1", clock))

    assert [d["last_updated_at"] for d in await history(storage, KEY_A)] == [first]
    await storage.ingest([small_peer_info(KEY_B, second, _id=KEY_B)], claim("n1", clock, KEY_B))


async def test_a_spent_nonce_stays_spent_after_reopening(open_store) -> None:
    clock = Clock()
    first, second = timestamps(2)
    storage = await open_store(clock_ms=clock)
    await storage.ingest([small_peer_info(KEY_A, first)], claim("n1", clock))
    await storage.close()

    reopened = await open_store(clock_ms=clock)
    with pytest.raises(ReplayedNonceError):
        await reopened.ingest([small_peer_info(KEY_A, second)], claim("n1", clock))


async def test_two_storages_on_one_database_share_the_replay_guard(open_store) -> None:
    clock = Clock()
    one = await open_store(clock_ms=clock)
    other = await open_store(clock_ms=clock)
    first, second = timestamps(2)
    await one.ingest([small_peer_info(KEY_A, first)], claim("n1", clock))

    with pytest.raises(ReplayedNonceError):
        await other.ingest([small_peer_info(KEY_A, second)], claim("n1", clock))


async def test_expired_nonces_are_pruned_and_the_guard_is_bounded(open_store, kept_nonces) -> None:
    clock = Clock()
    storage = await open_store(clock_ms=clock, max_nonces=3)
    moments = iter(timestamps(10))
    for nonce in ("n1", "n2", "n3"):
        await storage.ingest([small_peer_info(KEY_A, next(moments))], claim(nonce, clock))
    refused = small_peer_info(KEY_A, next(moments))

    with pytest.raises(NonceGuardFullError):
        await storage.ingest([refused], claim("n4", clock))

    assert await storage.latest(KEY_A) is not None
    assert len(await history(storage, KEY_A)) == 3, "the refused batch is not stored"
    clock.now_ms += REPLAY_WINDOW_MS + 1
    await storage.ingest([refused], claim("n4", clock))
    assert await kept_nonces() == (["n4"], 1), "the kept nonces and their count"


# --- versions, summaries and the fleet ----------------------------------------------------------


async def test_the_version_grows_with_stored_documents_only(storage: BigPeerStorage) -> None:
    first, second = timestamps(2)
    empty = await storage.version()
    await storage.ingest([small_peer_info(KEY_A, first)])
    after_a = await storage.version()
    a_version = await storage.version(KEY_A)

    await storage.ingest([small_peer_info(KEY_A, first)])  # a duplicate changes nothing
    unchanged = (await storage.version(), await storage.version(KEY_A))
    await storage.ingest([small_peer_info(KEY_B, second)])

    assert empty == 0
    assert after_a > empty
    assert unchanged == (after_a, a_version)
    assert await storage.version() > after_a
    assert await storage.version(KEY_A) == a_version, "another device's document leaves A's version"
    assert await storage.version("pk-never-seen") is None
    assert (await storage.fleet(FleetQuery())).version == await storage.version()
    assert (await storage.history(KEY_A, 10)).version == a_version


async def test_summary_counts_documents_and_the_interval_of_the_two_newest(open_store) -> None:
    clock = Clock()
    storage = await open_store(clock_ms=clock)
    await storage.ingest([small_peer_info(KEY_A, "2026-11-26T05:00:00.000Z")])
    (alone,) = await fleet(storage)
    clock.now_ms += 5000
    await storage.ingest(
        [small_peer_info(KEY_A, at) for at in ("2026-11-26T05:05:00.000Z", "2026-11-26T05:10:00.250Z")]
    )
    (newest,) = await fleet(storage)
    clock.now_ms += 5000
    # A late document between the two newest shortens the interval; the newest stays.
    await storage.ingest([small_peer_info(KEY_A, "2026-11-26T05:07:30.000Z", device_name="late")])
    (late,) = await fleet(storage)

    assert alone["interval_seconds"] is None
    assert alone["document_count"] == 1
    assert newest["interval_seconds"] == 300.25
    assert newest["document_count"] == 3
    assert newest["received_at"] == format_timestamp(clock.now_ms - 5000)
    assert newest["last_updated_at"] == "2026-11-26T05:10:00.250Z"
    assert late["interval_seconds"] == 150.25
    assert late["document_count"] == 4
    assert late["device_name"] == "test-laptop", "the summary is the newest document's"
    assert late["received_at"] == newest["received_at"], "received_at is when the newest was stored"


async def test_summary_holds_the_fields_of_the_newest_document(storage: BigPeerStorage) -> None:
    document = small_peer_info(KEY_A, timestamps(1)[0], connections_by_transport={"WebSocket": 1})
    await storage.ingest([document])

    (summary,) = await fleet(storage)

    assert summary == {
        "peer_key": KEY_A,
        "device_name": "test-laptop",
        "ditto_sdk_language": "Python",
        "ditto_sdk_platform": "Linux",
        "ditto_sdk_version": "0.1.0",
        "last_updated_at": document["last_updated_at"],
        "device_disk_usage": document["device_disk_usage"],
        "connections_by_transport": {"WebSocket": 1},
        "metadata": document["metadata"],
        "received_at": summary["received_at"],
        "document_count": 1,
        "interval_seconds": None,
    }


def _keys(count: int) -> list[str]:
    return [f"pk{i:043d}" for i in range(count)]


async def _fleet_of(storage: BigPeerStorage, names: list[str], moments: list[str]) -> list[str]:
    keys = _keys(len(names))
    for key, name, at in zip(keys, names, moments, strict=True):
        await storage.ingest([small_peer_info(key, at, device_name=name, metadata={"rank": len(name)})])
    return keys


async def _all_pages(storage: BigPeerStorage, **query: object) -> tuple[list[dict], list[int]]:
    summaries: list[dict] = []
    totals = []
    after = None
    while True:
        found = await storage.fleet(FleetQuery(after=after, **query))
        summaries += [orjson.loads(text) for text in found.value.summaries]
        totals.append(found.value.total)
        if found.value.next is None:
            return summaries, totals
        after = found.value.next


async def test_fleet_pages_by_device_name_with_ties_by_peer_key(storage: BigPeerStorage) -> None:
    names = ["delta", "alpha", "Zulu", "alpha", "charlie", "bravo", "alpha"]
    keys = await _fleet_of(storage, names, timestamps(len(names)))

    summaries, totals = await _all_pages(storage, limit=2)

    expected = sorted(zip(names, keys, strict=True))
    assert [(s["device_name"], s["peer_key"]) for s in summaries] == expected
    assert totals == [7, 7, 7, 7]


async def test_fleet_pages_newest_first_with_ties_by_peer_key(storage: BigPeerStorage) -> None:
    moments = timestamps(3)
    tied = [moments[1]] * 4
    keys = await _fleet_of(storage, ["a", "b", "c", "d", "e", "f"], [moments[0], *tied, moments[2]])

    summaries, _ = await _all_pages(storage, limit=4, sort=FleetSort.LAST_UPDATED_AT)

    assert [s["peer_key"] for s in summaries] == [keys[5], *keys[1:5], keys[0]]


@pytest.fixture(params=["matches first", "in order"])
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, backend) -> str:
    """Both ways SQLite finds a filtered page: few matches are found first, many are walked to in order."""
    if backend.is_postgresql:
        if request.param == "in order":
            # "in order" forces a SQLite-only threshold (_MATCHES_FIRST_UP_TO); PostgreSQL's
            # planner has no such switch, so its one plan runs once, under "matches first".
            pytest.skip("the 'in order' plan is a SQLite threshold; PostgreSQL runs its one plan once")
        return "one plan"
    monkeypatch.setattr(
        sqlite_storage, "_MATCHES_FIRST_UP_TO", 10**9 if request.param == "matches first" else 0
    )
    return str(request.param)


async def test_fleet_filter_matches_name_key_and_metadata_ascii_case_insensitively(
    storage: BigPeerStorage, plan: str
) -> None:
    keys = await _fleet_of(storage, ["Köln-Scanner", "KÖLN-dock", "hamburg"], timestamps(3))
    await storage.ingest(
        [small_peer_info("pkSpecial" + "x" * 36, timestamps(1)[0], metadata={"Site": "DOCK 7"})]
    )

    async def matching(text: str) -> tuple[list[str], int]:
        found = await storage.fleet(FleetQuery(text=text))
        return [orjson.loads(s)["device_name"] for s in found.value.summaries], found.value.total

    assert await matching("SCANNER") == (["Köln-Scanner"], 1)
    assert await matching("köln") == (["Köln-Scanner"], 1), "only ASCII letters fold"
    assert await matching("KÖLN") == (["KÖLN-dock"], 1)
    assert await matching("dock") == (["KÖLN-dock", "test-laptop"], 2), "metadata values match"
    assert await matching("site") == (["test-laptop"], 1), "metadata keys match"
    assert await matching("PKSPECIAL") == (["test-laptop"], 1)
    assert await matching(keys[2][-10:]) == (["hamburg"], 1)
    assert await matching("") == (["KÖLN-dock", "Köln-Scanner", "hamburg", "test-laptop"], 4)
    assert await matching("%") == ([], 0), "no pattern characters"


@pytest.mark.parametrize("sort", list(FleetSort))
async def test_fleet_filter_pages_through_every_match_once(
    storage: BigPeerStorage, plan: str, sort: FleetSort
) -> None:
    names = [f"{'scanner' if i % 3 else 'printer'}-{i:02d}" for i in range(30)]
    await _fleet_of(storage, names, timestamps(30))

    summaries, totals = await _all_pages(storage, limit=4, text="SCANNER", sort=sort)

    scanners = [name for name in names if name.startswith("scanner")]
    assert [s["device_name"] for s in summaries] == (
        scanners if sort is FleetSort.DEVICE_NAME else scanners[::-1]
    )
    assert set(totals) == {20}


async def test_a_device_reporting_again_moves_in_the_time_order_only(storage: BigPeerStorage) -> None:
    moments = timestamps(4)
    keys = await _fleet_of(storage, ["a", "b", "c"], moments[:3])
    await storage.ingest([small_peer_info(keys[0], moments[3], device_name="a")])

    by_time, _ = await _all_pages(storage, sort=FleetSort.LAST_UPDATED_AT)
    by_name, totals = await _all_pages(storage)

    assert [s["device_name"] for s in by_time] == ["a", "c", "b"]
    assert [s["device_name"] for s in by_name] == ["a", "b", "c"]
    assert totals == [3]


async def test_a_renamed_device_moves_in_the_name_order(storage: BigPeerStorage) -> None:
    first, second = timestamps(2)
    await storage.ingest([small_peer_info(KEY_A, first, device_name="zeta")])
    await storage.ingest([small_peer_info(KEY_B, first, device_name="omega")])
    await storage.ingest([small_peer_info(KEY_A, second, device_name="alpha")])

    summaries, _ = await _all_pages(storage)

    assert [s["device_name"] for s in summaries] == ["alpha", "omega"]
    assert (await storage.fleet(FleetQuery(text="zeta"))).value.total == 0


async def test_devices_without_a_name_come_first_by_name(storage: BigPeerStorage) -> None:
    (at,) = timestamps(1)
    await storage.ingest([small_peer_info(KEY_B, at, device_name="a")])
    await storage.ingest([{"_id": KEY_A, "last_updated_at": at}])

    summaries, _ = await _all_pages(storage)

    assert [(s["peer_key"], s["device_name"], s["metadata"]) for s in summaries] == [
        (KEY_A, None, None),
        (KEY_B, "a", {"site": "lab", "rack": 4}),
    ]


# --- migration from version 1 --------------------------------------------------------------------


def _write_version_1(path: Path, documents: list[dict], received_at_ms: int) -> None:
    """A database as version 1 of the Big Peer left it (documents and its devices table)."""
    connection = sqlite3.connect(path, isolation_level=None)
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            connection.execute(statement)
    connection.executemany(
        "INSERT INTO documents (peer_key, last_updated_at, received_at_ms, body) VALUES (?, ?, ?, ?)",
        [
            (d["_id"], d["last_updated_at"], received_at_ms + 1 + i, orjson.dumps(d).decode())
            for i, d in enumerate(documents)
        ],
    )
    connection.execute(
        "INSERT INTO devices SELECT peer_key, max(last_updated_at), 0 FROM documents GROUP BY peer_key"
    )
    connection.execute("PRAGMA user_version = 1")
    connection.close()


@pytest.mark.sqlite_only("the migration of SQLite files written by version 1 of the Big Peer")
async def test_a_version_1_database_gets_the_summaries_ingesting_would_have_made(tmp_path: Path) -> None:
    clock = Clock()
    moments = timestamps(5)
    documents = [
        *(small_peer_info(KEY_A, at, metadata={"n": i}) for i, at in enumerate(moments)),
        small_peer_info(KEY_B, moments[2], device_name="bee"),
    ]
    _write_version_1(tmp_path / "old.sqlite3", documents, clock.now_ms)
    fresh = await SQLiteStorage.open(tmp_path / "new.sqlite3", clock_ms=clock)
    for document in documents:
        clock.now_ms += 1
        await fresh.ingest([document])
    await fresh.close()

    migrated = await SQLiteStorage.open(tmp_path / "old.sqlite3", clock_ms=clock)
    reopened = await SQLiteStorage.open(tmp_path / "new.sqlite3", clock_ms=clock)
    try:
        assert await fleet(migrated) == await fleet(reopened)
        assert [s["document_count"] for s in await fleet(migrated)] == [1, 5]
        assert await devices(migrated) == await devices(reopened)
        assert await history(migrated, KEY_A) == documents[4::-1]
        assert migrated.database_id != reopened.database_id
        await migrated.ingest([small_peer_info(KEY_A, timestamps(6)[5])])
        assert (await fleet(migrated))[1]["document_count"] == 6
    finally:
        await migrated.close()
        await reopened.close()
    with sqlite3.connect(tmp_path / "old.sqlite3") as connection:
        assert connection.execute("PRAGMA user_version").fetchone() == (2,)
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("SELECT name FROM sqlite_master WHERE name = 'devices'").fetchall() == []
    connection.close()


async def fleet(storage: BigPeerStorage, **query: object) -> list[dict]:
    return [orjson.loads(text) for text in (await storage.fleet(FleetQuery(**query))).value.summaries]


@pytest.mark.parametrize("peer_key", ["pk\x00A", "\udcff", "pk" + "A" * 43 + "\x00"])
async def test_a_key_no_device_can_have_is_unknown(storage: BigPeerStorage, peer_key: str) -> None:
    """Paths reach the storage with any text: U+0000 and lone surrogates (PostgreSQL's text holds neither)."""
    await storage.ingest([small_peer_info(KEY_A, at) for at in timestamps(2)])

    assert await storage.version(peer_key) is None
    assert await storage.latest(peer_key) is None
    assert await storage.history(peer_key, 10) is None


async def test_a_cursor_key_with_u0000_pages_on_as_its_prefix_would(storage: BigPeerStorage) -> None:
    """No stored key holds U+0000, so everything after "pkA\\x00..." is what follows "pkA"."""
    keys = ["pkA", "pkA0", "pkB"]
    await storage.ingest([small_peer_info(key, timestamps(1)[0], device_name="same") for key in keys])

    query = FleetQuery(after=FleetKey(FleetSort.DEVICE_NAME, "same", "pkA\x00zzz"))
    page = (await storage.fleet(query)).value

    assert [orjson.loads(summary)["peer_key"] for summary in page.summaries] == ["pkA0", "pkB"]
