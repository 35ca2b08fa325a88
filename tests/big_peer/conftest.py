"""Fixtures: the real Big Peer service as a subprocess, a client session, device identities.

Every test that runs a service (`big_peer`, `big_peer_factory`) or opens a storage
(`open_store`, `storage`) runs once per backend, ``[sqlite]`` and ``[postgresql]``:
both backends pass one suite. A test about SQLite itself (its file, its data
directory) says so with ``@pytest.mark.sqlite_only(reason)`` and runs on SQLite only.
The PostgreSQL runs use fresh databases on the server `INSPECTOR_TEST_DATABASE_URL`
names (`postgres_harness`); without one they are skipped (failed on CI).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from big_peer_harness import SHARED_SERVICE_ARGS, BigPeerClient, BigPeerProcess, start_big_peer
from postgres_harness import TestDatabases, run_in_thread, test_database_url

from inspector.big_peer.replay import DEFAULT_MAX_NONCES
from inspector.big_peer.sqlite_storage import DATABASE_FILE, SQLiteStorage
from inspector.big_peer.storage import BigPeerStorage
from inspector.core.identity import Identity

BACKENDS = ("sqlite", "postgresql")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every test that needs a `backend` on each, or on SQLite alone when it is marked so."""
    if "backend" not in metafunc.fixturenames:
        return
    only_sqlite = metafunc.definition.get_closest_marker("sqlite_only") is not None
    metafunc.parametrize("backend", ["sqlite"] if only_sqlite else BACKENDS, indirect=True, scope="module")


class StorageBackend:
    """Where a test module's services and storages keep their data; drops its databases at the end."""

    def __init__(self, name: str, databases: TestDatabases | None = None) -> None:
        self.name = name
        self.databases = databases
        self._created: list[str] = []
        self._store_database: str | None = None

    @property
    def is_postgresql(self) -> bool:
        return self.databases is not None

    @property
    def store_database_url(self) -> str:
        """The database `open_store` opens on PostgreSQL (to look inside it)."""
        assert self._store_database is not None
        return self._store_database

    def new_database(self) -> str | None:
        """A fresh PostgreSQL database for a service (its URL), or None on SQLite."""
        if self.databases is None:
            return None
        url = self.databases.create_now()
        self._created.append(url)
        return url

    async def empty_store_database(self) -> str:
        """The module's database for storage tests, emptied (PostgreSQL only): fresh for each test."""
        assert self.databases is not None
        if self._store_database is None:
            self._store_database = await self.databases.create()
            self._created.append(self._store_database)
        else:
            await self.databases.empty(self._store_database)
        return self._store_database

    def drop_all(self) -> None:
        assert self.databases is not None
        databases = self.databases

        async def drop() -> None:
            for url in self._created:
                await databases.drop(url)

        run_in_thread(drop)


@pytest.fixture(scope="session")
def test_databases() -> TestDatabases:
    """The PostgreSQL server to test on; skips (fails on CI) if none answers."""
    databases = TestDatabases(test_database_url())
    databases.check_server()
    return databases


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> Iterator[StorageBackend]:
    """``sqlite`` or ``postgresql``: parametrised by `pytest_generate_tests`."""
    if request.param == "sqlite":
        yield StorageBackend("sqlite")
        return
    running = StorageBackend("postgresql", request.getfixturevalue("test_databases"))
    yield running
    running.drop_all()


@pytest.fixture
async def open_store(backend: StorageBackend, tmp_path: Path) -> AsyncIterator[Any]:
    """``await open_store(clock_ms=..., max_nonces=...)`` opens the test's own storage.

    Every call opens the same database (a second call is a second process, or a
    reopening after `close`); fresh for each test; all closed after the test.
    """
    opened: list[BigPeerStorage] = []
    database_url = await backend.empty_store_database() if backend.is_postgresql else None

    async def open_(*, clock_ms: Any = None, max_nonces: int = DEFAULT_MAX_NONCES) -> BigPeerStorage:
        storage: BigPeerStorage
        if database_url is None:
            storage = await SQLiteStorage.open(
                tmp_path / DATABASE_FILE, clock_ms=clock_ms, max_nonces=max_nonces
            )
        else:
            from inspector.big_peer.postgres_storage import PostgresStorage

            # Checking the replay guard's bound on every write, not once a second: tests move the clock.
            storage = await PostgresStorage.open(
                database_url, clock_ms=clock_ms, max_nonces=max_nonces, nonce_check_seconds=0
            )
        opened.append(storage)
        return storage

    yield open_
    for storage in opened:
        await storage.close()


@pytest.fixture
async def storage(open_store: Any) -> BigPeerStorage:
    """The test's storage, on each backend."""
    return await open_store()


@pytest.fixture
def big_peer_factory(backend: StorageBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Starts services (optionally on a given data directory); stops them after the test, expecting exit 0.

    On PostgreSQL each new data directory stands for a fresh database: a service
    started again on ``first_run.data_dir`` serves the database the first one did.
    """
    started: list[BigPeerProcess] = []
    databases: dict[Path, str | None] = {}

    def start(
        data_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        *,
        tokens_in_env: bool = False,
        open_files: int | None = None,
    ) -> BigPeerProcess:
        workdir = tmp_path_factory.mktemp("big-peer")
        log_path = workdir / "service.log"
        data_dir = data_dir or workdir / "data"
        if data_dir not in databases:
            databases[data_dir] = backend.new_database()
        running = start_big_peer(
            data_dir,
            log_path,
            extra_args,
            tokens_in_env=tokens_in_env,
            open_files=open_files,
            database_url=databases[data_dir],
        )
        started.append(running)
        return running

    yield start
    codes = {running.url: (running.stop(), running) for running in started}
    for url, (code, running) in codes.items():
        assert code == 0, f"the Big Peer at {url} exited with {code}:\n{running.log()}"
        assert "Traceback" not in running.log(), running.log()


@pytest.fixture(scope="module")
def big_peer(backend: StorageBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigPeerProcess]:
    """One service shared by a test module; tests keep apart by using devices of their own."""
    workdir = tmp_path_factory.mktemp("big-peer-shared")
    running = start_big_peer(
        workdir / "data", workdir / "service.log", SHARED_SERVICE_ARGS, database_url=backend.new_database()
    )
    yield running
    code = running.stop()
    assert code == 0, f"the Big Peer exited with {code}:\n{running.log()}"
    assert "Traceback" not in running.log(), running.log()


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(session: aiohttp.ClientSession, big_peer: BigPeerProcess) -> BigPeerClient:
    return BigPeerClient(session, big_peer.url)


@pytest.fixture
def make_device(tmp_path: Path) -> Any:
    """Creates a new device identity (its own key in its own directory) per call."""
    count = 0

    def make() -> Identity:
        nonlocal count
        count += 1
        directory = tmp_path / f"device-{count}"
        directory.mkdir()
        return Identity.load_or_create(directory)

    return make
