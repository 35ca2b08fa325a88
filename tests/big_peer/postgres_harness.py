"""Fresh PostgreSQL databases for the Big Peer tests, on the server `INSPECTOR_TEST_DATABASE_URL` names.

Every database the tests use is made here, uniquely named, and dropped afterwards:
nothing assumes what the server's own database (``test`` by default) holds, and
runs in other worktrees or on other machines sharing the server keep apart.

With no server answering, the PostgreSQL tests are skipped, naming the variable;
on CI (``CI=true``) they fail instead, so a missing server is never mistaken for
a passing backend.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import os
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from inspector.big_peer.backends import redact_url

TEST_DATABASE_URL_ENV = "INSPECTOR_TEST_DATABASE_URL"
DEFAULT_TEST_DATABASE_URL = "postgresql://root@127.0.0.1:5432/test"
CONNECT_SECONDS = 5.0
# Unique per test run: the pid and a random part, so parallel runs on one server never collide.
_PREFIX = f"inspector_test_{os.getpid()}_{secrets.token_hex(3)}"
_counter = itertools.count(1)

_T = TypeVar("_T")


def test_database_url() -> str:
    """The server to test on: its URL names a database that only serves to create others."""
    return os.environ.get(TEST_DATABASE_URL_ENV) or DEFAULT_TEST_DATABASE_URL


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead (same user, host, port and options)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def with_port(url: str, port: int) -> str:
    """``url`` with the server at 127.0.0.1:``port`` (a proxy in front of the real one)."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    if parts.password is not None:
        user = f"{parts.username}:{parts.password}@"
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def run_in_thread(make: Callable[[], Awaitable[_T]]) -> _T:
    """Run a coroutine to completion on an event loop of its own, from synchronous code.

    A thread of its own: the fixtures that need a database are synchronous and may run
    while pytest-asyncio holds the test's loop, which must not be touched.
    """

    async def run() -> _T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        return thread.submit(asyncio.run, run()).result()


class TestDatabases:
    """Creates and drops databases on the test server (see the module doc)."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.server_url, timeout=CONNECT_SECONDS)

    def check_server(self) -> None:
        """Skip (fail on CI) unless the server answers and lets us create databases."""
        try:
            run_in_thread(self._probe)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            reason = (
                f"no PostgreSQL server to test on at {redact_url(self.server_url)} "
                f"({type(exc).__name__}: {exc}); "
                f"set {TEST_DATABASE_URL_ENV}=postgresql://USER@HOST:PORT/DB to a server where USER may "
                "create databases"
            )
            if os.environ.get("CI") == "true":
                pytest.fail(f"CI needs the PostgreSQL tests: {reason}", pytrace=False)
            pytest.skip(reason)

    async def _probe(self) -> None:
        admin = await self._admin()
        try:
            can_create = await admin.fetchval(
                "SELECT rolcreatedb OR rolsuper FROM pg_roles WHERE rolname = current_user"
            )
        finally:
            await admin.close()
        if not can_create:
            raise asyncpg.InsufficientPrivilegeError("the user may not create databases")

    async def create(self) -> str:
        """A new empty database; its URL."""
        name = f"{_PREFIX}_{next(_counter)}"
        admin = await self._admin()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        return with_database(self.server_url, name)

    async def drop(self, url: str) -> None:
        """Drop the database, cutting off whoever is still connected (a killed service's leftovers)."""
        admin = await self._admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{database_name(url)}" WITH (FORCE)')
        finally:
            await admin.close()

    async def empty(self, url: str) -> None:
        """Make a database as good as new, cheaply: drop every schema in it and recreate ``public``.

        Anyone still connected is cut off first (a test that failed before closing its storage).
        """
        connection = await asyncpg.connect(url, timeout=CONNECT_SECONDS)
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            schemas = await connection.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                "AND nspname <> 'information_schema'"
            )
            async with connection.transaction():
                for (schema,) in schemas:
                    await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
                await connection.execute("CREATE SCHEMA public")
        finally:
            await connection.close()

    def create_now(self) -> str:
        return run_in_thread(self.create)

    def drop_now(self, url: str) -> None:
        run_in_thread(lambda: self.drop(url))
