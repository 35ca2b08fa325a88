"""The Big Peer on PostgreSQL: several processes on one database, and the database or a process lost.

Real processes on 127.0.0.1 and fresh databases on the test server (`postgres_harness`).
The rest of the suite already runs on PostgreSQL too (the ``[postgresql]`` tests);
these are what only a shared database has: processes that must agree with each
other, a process killed mid-batch, a database lost under load and back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import orjson
import pytest
from big_peer_harness import (
    DEVICE_TOKEN,
    WRITE_PATH,
    Answer,
    BigPeerClient,
    BigPeerProcess,
    big_peer_command,
    service_env,
    small_peer_info,
    start_big_peer,
    timestamps,
)
from postgres_harness import TestDatabases, database_name, run_in_thread, with_database, with_port

from inspector.big_peer.postgres_storage import SCHEMA_VERSION, PostgresStorage, SchemaTooNewError
from inspector.big_peer.storage import StorageUnavailableError
from inspector.core.identity import Identity

pytestmark = pytest.mark.timeout(120)

BATCH = 20


class PostgresBigPeers:
    """Fresh databases and Big Peer processes serving them; all stopped, then dropped, after the test.

    A process still running after the test must exit with code 0 on SIGTERM with no
    traceback in its log; one the test stopped (or killed) is the test's to check.
    """

    def __init__(self, databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.databases = databases
        self._tmp = tmp_path_factory
        self._urls: list[str] = []
        self.started: list[BigPeerProcess] = []

    def database(self) -> str:
        url = self.databases.create_now()
        self._urls.append(url)
        return url

    def start(self, database_url: str, *args: str) -> BigPeerProcess:
        workdir = self._tmp.mktemp("big-peer-pg")
        running = start_big_peer(workdir / "data", workdir / "service.log", args, database_url=database_url)
        self.started.append(running)
        return running

    async def start_async(self, database_url: str, *args: str) -> BigPeerProcess:
        """`start` off the event loop: the loop may be serving a proxy the service connects through."""
        return await asyncio.to_thread(self.start, database_url, *args)

    def finish(self) -> None:
        problems = []
        for running in self.started:
            if running.exit_code is not None:
                continue
            code = running.stop()
            if code != 0:
                problems.append(f"the Big Peer at {running.url} exited with {code}:\n{running.log()}")
            elif "Traceback" in running.log():
                shown = around_first_traceback(running.log())
                problems.append(f"the Big Peer at {running.url} logged a traceback:\n{shown}")
        for url in self._urls:
            self.databases.drop_now(url)
        assert not problems, "\n".join(problems)


def around_first_traceback(log: str) -> str:
    """The log lines around its first traceback (a log under load is long)."""
    at = log.index("Traceback")
    start = log.rfind("\n", 0, max(0, at - 400)) + 1
    return log[start : at + 4000]


@pytest.fixture
def postgres(test_databases: TestDatabases, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    peers = PostgresBigPeers(test_databases, tmp_path_factory)
    yield peers
    peers.finish()


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def all_history(client: BigPeerClient, peer_key: str) -> list[str]:
    """Every ``last_updated_at`` of a device's stored documents, newest first (paged)."""
    found: list[str] = []
    query = "?limit=1000"
    while True:
        answer = await client.read(f"/api/v1/devices/{peer_key}/history{query}")
        if answer.status == 404 and not found:
            return []
        assert answer.status == 200, (answer.status, answer.body[:300])
        page = [document["last_updated_at"] for document in answer.json["documents"]]
        found += page
        if len(page) < 1000:
            return found
        query = f"?limit=1000&before={page[-1]}"


async def document_counts(client: BigPeerClient) -> dict[str, int]:
    """Each device's ``document_count`` from the fleet summaries."""
    counts: dict[str, int] = {}
    after = ""
    while True:
        answer = await client.read(f"/api/v1/fleet?limit=1000{after}")
        assert answer.status == 200, (answer.status, answer.body[:300])
        counts |= {summary["peer_key"]: summary["document_count"] for summary in answer.json["devices"]}
        if answer.json["next"] is None:
            return counts
        after = f"&after={answer.json['next']}"


def assert_unavailable(answer: Answer) -> None:
    """The answer of a Big Peer that cannot reach its database: 503, JSON, and when to retry."""
    assert answer.status == 503, (answer.status, answer.body[:300])
    assert answer.error_code == "database_unavailable", answer.body
    assert int(answer.headers["Retry-After"]) >= 1


@dataclass
class Writer:
    """A device writing batch after batch, keeping a batch the Big Peer did not store and retrying it.

    ``stored``: the ``last_updated_at`` of every document an answer said was stored.
    ``unanswered``: the batch in flight when the connection failed (no answer at all).
    """

    device: Identity
    start: datetime
    stored: list[str] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    unanswered: list[dict[str, Any]] | None = None
    batches: int = 0

    def batch(self) -> list[dict[str, Any]]:
        moments = timestamps(BATCH, self.start + timedelta(seconds=BATCH * self.batches))
        return [small_peer_info(self.device.peer_key, at) for at in moments]

    async def run(self, client: BigPeerClient, stop: asyncio.Event, *, retry_unavailable: bool) -> None:
        documents = self.batch()
        while not stop.is_set():
            try:
                answer = await client.write(self.device, documents)
            except aiohttp.ClientError:
                self.unanswered = documents
                return
            self.statuses[answer.status] += 1
            if answer.status == 200:
                assert answer.json["accepted"] + answer.json["duplicates"] == len(documents), answer.json
                self.stored += [document["last_updated_at"] for document in documents]
                self.batches += 1
                documents = self.batch()
            else:
                assert_unavailable(answer)
                if not retry_unavailable:
                    return
                await asyncio.sleep(0.05)  # Retry-After is for devices; a test has no time to lose


def some_writers(make_device: Any, count: int) -> list[Writer]:
    """``count`` writers, each for a device of its own, writing from the same moment."""
    return [Writer(make_device(), datetime(2026, 11, 26, 5, 0, tzinfo=UTC)) for _ in range(count)]


async def keep_reading(
    client: BigPeerClient, keys: list[str], stop: asyncio.Event, seen: Counter[int]
) -> None:
    """A dashboard polling the fleet and the devices: every answer is a 200 or a 503."""
    paths = ["/api/v1/fleet", "/api/v1/devices"] + [f"/api/v1/devices/{key}/history" for key in keys]
    while not stop.is_set():
        for path in paths:
            answer = await client.read(path)
            seen[answer.status] += 1
            if answer.status not in (200, 404):  # 404: a device none of whose writes was stored yet
                assert_unavailable(answer)
        await asyncio.sleep(0.01)


async def until(condition: Any, timeout: float, what: str, load: list[asyncio.Task[None]] = ()) -> None:
    """Wait for a condition the ``load`` tasks bring about (polled: they signal nothing).

    A task of the load that failed (an answer it did not expect) fails the wait at once, with its error.
    """
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                for task in load:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"no {what} within {timeout} s") from None


def each_stored(writers: list[Writer], batches: int) -> Any:
    """A condition: every writer has had ``batches`` more batches stored than now."""
    now = {id(writer): writer.batches for writer in writers}
    return lambda: all(writer.batches >= now[id(writer)] + batches for writer in writers)


async def assert_every_stored_write_is_there_once(client: BigPeerClient, writers: list[Writer]) -> None:
    counts = await document_counts(client)
    for writer in writers:
        kept = await all_history(client, writer.device.peer_key)
        assert len(set(kept)) == len(kept), "a document stored twice"
        missing = set(writer.stored) - set(kept)
        assert not missing, f"{len(missing)} documents answered 200 are not stored"
        assert counts.get(writer.device.peer_key, 0) == len(kept), "the summary counts every document once"


# --- several processes on one database --------------------------------------------------------


async def test_a_signed_write_replayed_to_another_process_is_refused(postgres, session, make_device) -> None:
    database = postgres.database()
    first, second = postgres.start(database), postgres.start(database)
    device = make_device()
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, timestamps(1)[0])]})
    signed = device.request_headers("POST", WRITE_PATH, body)
    written = await BigPeerClient(session, first.url).write_body(device, body, signed_headers=signed)

    replay = await BigPeerClient(session, second.url).write_body(device, body, signed_headers=signed)

    assert written.status == 200
    assert replay.status == 401
    assert replay.error_code == "replayed_nonce"
    assert len((await BigPeerClient(session, second.url).history(device)).json["documents"]) == 1


async def test_a_device_written_through_one_process_reads_the_same_through_the_other(
    postgres, session, make_device
) -> None:
    database = postgres.database()
    first, second = postgres.start(database), postgres.start(database)
    device = make_device()
    documents = [small_peer_info(device.peer_key, at) for at in timestamps(3)]
    assert (await BigPeerClient(session, first.url).write(device, documents)).status == 200
    paths = [
        "/api/v1/fleet",
        "/api/v1/devices",
        f"/api/v1/devices/{device.peer_key}",
        f"/api/v1/devices/{device.peer_key}/history",
    ]

    for path in paths:
        here = await BigPeerClient(session, first.url).read(path)
        there = await BigPeerClient(session, second.url).read(path)

        assert (there.status, there.body) == (here.status, here.body), path
        assert there.headers["ETag"] == here.headers["ETag"], path
    history = await BigPeerClient(session, second.url).history(device)
    assert history.json == {"documents": documents[::-1]}


async def test_processes_starting_together_on_a_new_database_create_the_schema_once(
    postgres, session, make_device
) -> None:
    database = postgres.database()

    with concurrent.futures.ThreadPoolExecutor(4) as starting:
        running = list(starting.map(lambda _: postgres.start(database), range(4)))

    device = make_device()
    assert (await BigPeerClient(session, running[0].url).write(device, [small_peer_info(
        device.peer_key, timestamps(1)[0])])).status == 200  # fmt: skip
    tags = {(await BigPeerClient(session, r.url).read("/api/v1/fleet")).headers["ETag"] for r in running}
    assert len(tags) == 1, "one database id and one version, whichever process answers"
    connection = await asyncpg.connect(database)
    try:
        meta = await connection.fetch("SELECT name, value FROM big_peer_meta ORDER BY name")
    finally:
        await connection.close()
    assert [row["name"] for row in meta] == ["database_id", "schema_version"]
    assert dict(meta)["schema_version"] == str(SCHEMA_VERSION)


# --- a process killed mid-batch ----------------------------------------------------------------


async def test_a_process_killed_mid_batch_loses_no_acknowledged_write(postgres, session, make_device) -> None:
    database = postgres.database()
    doomed = postgres.start(database)
    client = BigPeerClient(session, doomed.url)
    writers = some_writers(make_device, 8)
    stop = asyncio.Event()
    running = [asyncio.create_task(w.run(client, stop, retry_unavailable=False)) for w in writers]
    await until(lambda: sum(len(w.stored) for w in writers) >= 20 * BATCH, 30, "writes stored", running)

    doomed.stop(signal.SIGKILL)
    await asyncio.gather(*running)
    stop.set()

    assert all(w.unanswered is not None for w in writers), "every writer was cut off"
    survivor = BigPeerClient(session, postgres.start(database).url)
    await assert_every_stored_write_is_there_once(survivor, writers)
    for writer in writers:
        assert writer.unanswered is not None
        kept = set(await all_history(survivor, writer.device.peer_key))
        in_flight = {document["last_updated_at"] for document in writer.unanswered}
        assert in_flight <= kept or not in_flight & kept, "a batch is stored whole or not at all"
        retried = await survivor.write(writer.device, writer.unanswered)
        assert retried.status == 200
        assert retried.json["accepted"] + retried.json["duplicates"] == BATCH
    await assert_every_stored_write_is_there_once(survivor, writers)


# --- the database lost under load --------------------------------------------------------------


class DatabaseProxy:
    """A TCP proxy in front of the PostgreSQL server that the test can cut (and refuse) and restore."""

    def __init__(self, server_url: str) -> None:
        parts = urlsplit(server_url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.WriteTransport] = set()
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> DatabaseProxy:
        await self.restore()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cut()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def restore(self) -> None:
        """Listen again (on the same port): new connections reach the server."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def cut(self) -> None:
        """Stop listening (connections are refused) and reset every connection through the proxy."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self._target)
        except OSError:
            client_writer.transport.abort()
            return
        transports = {client_writer.transport, server_writer.transport}
        self._transports |= transports
        pipes = {
            asyncio.create_task(self._pipe(client_reader, server_writer)),
            asyncio.create_task(self._pipe(server_reader, client_writer)),
        }
        self._pipes |= pipes
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for transport in transports:
                transport.abort()
            self._transports -= transports
            self._pipes -= pipes

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()


async def test_a_lost_database_is_503_under_load_then_recovered_with_nothing_lost(
    postgres, session, make_device
) -> None:
    database = postgres.database()
    async with DatabaseProxy(database) as proxy:
        running = await postgres.start_async(with_port(database, proxy.port))
        client = BigPeerClient(session, running.url)
        writers = some_writers(make_device, 6)
        stop = asyncio.Event()
        read_statuses: Counter[int] = Counter()
        keys = [w.device.peer_key for w in writers]
        load = [asyncio.create_task(w.run(client, stop, retry_unavailable=True)) for w in writers]
        load.append(asyncio.create_task(keep_reading(client, keys, stop, read_statuses)))
        await until(each_stored(writers, 3), 30, "writes before the cut", load)

        proxy.cut()
        cut_at = {id(w): w.statuses[503] for w in writers}
        await until(lambda: all(w.statuses[503] > cut_at[id(w)] for w in writers), 30, "503s", load)
        await asyncio.sleep(2.0)  # long enough for the pool to try to reconnect on its own
        recovered = each_stored(writers, 3)
        await proxy.restore()
        await until(recovered, 30, "recovery", load)
        stop.set()
        await asyncio.gather(*load)

        assert read_statuses[503] > 0, "the dashboard saw the database lost"
        assert set(read_statuses) <= {200, 404, 503}
        assert all(w.unanswered is None for w in writers), "every write was answered"
        assert all(set(w.statuses) == {200, 503} for w in writers)
        await assert_every_stored_write_is_there_once(client, writers)
        assert await asyncio.to_thread(running.stop) == 0
    log = running.log()
    assert "the database is unavailable" in log
    assert "Traceback" not in log, around_first_traceback(log)


async def test_connections_terminated_by_the_server_cost_at_most_503s_then_recover(
    postgres, session, make_device
) -> None:
    database = postgres.database()
    running = postgres.start(database)
    client = BigPeerClient(session, running.url)
    writers = some_writers(make_device, 4)
    stop = asyncio.Event()
    read_statuses: Counter[int] = Counter()
    load = [asyncio.create_task(w.run(client, stop, retry_unavailable=True)) for w in writers]
    load.append(asyncio.create_task(keep_reading(client, [], stop, read_statuses)))
    admin = await asyncpg.connect(database)
    try:
        for _ in range(3):  # what a server restart does to the service's connections
            await until(each_stored(writers, 2), 30, "writes", load)
            terminated = await admin.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            assert terminated >= 1
        await until(each_stored(writers, 3), 30, "recovery", load)
    finally:
        stop.set()
        await admin.close()
        await asyncio.gather(*load)

    assert set(read_statuses) <= {200, 503}
    assert all(set(w.statuses) <= {200, 503} for w in writers)
    await assert_every_stored_write_is_there_once(client, writers)


def test_the_database_may_come_from_the_environment(postgres, tmp_path: Path) -> None:
    database = postgres.database()
    command = big_peer_command(
        "--port", "0", "--data", str(tmp_path / "data"), "--device-token", DEVICE_TOKEN, "--admin-token", "a"
    )  # fmt: skip
    env = {**service_env(tmp_path), "INSPECTOR_DATABASE_URL": database}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the service prints it once it is serving, or exits
    finally:
        process.terminate()
        _, log = process.communicate(timeout=30)

    assert line.startswith("listening on http://"), log
    assert process.returncode == 0, log
    assert run_in_thread(lambda: schema_version(database)) == str(SCHEMA_VERSION)
    assert not (tmp_path / "data").exists(), "nothing in --data when the database is PostgreSQL"


async def schema_version(database_url: str) -> str:
    connection = await asyncpg.connect(database_url)
    try:
        return await connection.fetchval("SELECT value FROM big_peer_meta WHERE name = 'schema_version'")
    finally:
        await connection.close()


# --- refusing to start -------------------------------------------------------------------------


def run_to_exit(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=service_env(tmp_path))


def service_command(tmp_path: Path, database_url: str) -> list[str]:
    return big_peer_command(
        "--port", "0", "--data", str(tmp_path / "data"), "--device-token", DEVICE_TOKEN,
        "--admin-token", "admin", "--database", database_url,
    )  # fmt: skip


def assert_one_line_reason(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.stdout == ""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert all(word in lines[0] for word in words), lines[0]


async def test_a_database_with_a_newer_schema_is_refused(postgres, tmp_path: Path) -> None:
    database = postgres.database()
    storage = await PostgresStorage.open(database)
    await storage.close()
    connection = await asyncpg.connect(database)
    try:
        await connection.execute(
            "UPDATE big_peer_meta SET value = $1 WHERE name = 'schema_version'", str(SCHEMA_VERSION + 1)
        )
    finally:
        await connection.close()

    with pytest.raises(SchemaTooNewError, match="newer"):
        await PostgresStorage.open(database)
    result = await asyncio.to_thread(run_to_exit, service_command(tmp_path, database), tmp_path)

    assert result.returncode == 1
    assert_one_line_reason(result, "cannot open the database", f"schema version {SCHEMA_VERSION + 1}")


def test_a_database_url_that_is_not_postgresql_is_a_usage_error(tmp_path: Path) -> None:
    result = run_to_exit(service_command(tmp_path, "mysql://x"), tmp_path)

    assert result.returncode == 2
    assert result.stdout == ""
    assert "postgresql://" in result.stderr
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://root@127.0.0.1:1/x", "Connect call failed"),
        ("inspector_test_no_such_database", "does not exist"),
    ],
    ids=["no server", "no database"],
)
def test_an_unreachable_database_is_a_clear_failure(
    tmp_path: Path, test_databases: TestDatabases, url: str, reason: str
) -> None:
    if "://" not in url:
        url = with_database(test_databases.server_url, url)

    result = run_to_exit(service_command(tmp_path, url), tmp_path)

    assert result.returncode == 1
    assert_one_line_reason(result, "cannot open the database", reason)


async def test_a_database_turned_read_only_is_unavailable_not_a_fault(postgres, make_device) -> None:
    """What a failover to a standby looks like to a write: refused as read-only. 503, never 500."""
    url = postgres.database()
    storage = await PostgresStorage.open(url)
    try:
        device = make_device()
        first, second = timestamps(2)
        await storage.ingest([small_peer_info(device.peer_key, first)])
        admin = await asyncpg.connect(url)
        try:
            name = database_name(url)
            await admin.execute(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        finally:
            await admin.close()
        await storage._pool.expire_connections()  # new sessions take the setting

        with pytest.raises(StorageUnavailableError):
            await storage.ingest([small_peer_info(device.peer_key, second)])
        assert await storage.version(device.peer_key) == 1  # reads go on
    finally:
        await storage.close()
