"""The Big Peer on PostgreSQL against the Big Peer on SQLite, measured in the same run (issue 12).

``python -m tests.benchmarks.bench_big_peer_postgres [--quick] [--keep DIR] [--server URL] [--only PART]``

The real service runs as a subprocess on 127.0.0.1, on SQLite (in ``--data``) and on
PostgreSQL (``--database``), in databases this benchmark creates on ``--server``
(default ``$INSPECTOR_TEST_DATABASE_URL``, else the local server) and drops at the
end. The server's settings are printed and left alone (other tests share it): SQLite
writes with ``synchronous=FULL``, so PostgreSQL keeps ``synchronous_commit=on`` (a
batch's commit waits for its WAL flush) and the comparison is like for like.

**Ingest** (`bench_big_peer_ingest`'s devices, documents and signed batches; in each
round the same bodies go to each backend, a fresh database each; the median of the
rounds, whose order alternates):

* **1 process on PostgreSQL / SQLite**, time per document: <= 1.25x, that is
  PostgreSQL ingests >= 0.8x the documents/s of SQLite;
* **2 processes (``--workers 2``) / 1 process, on PostgreSQL**: <= 1/1.3, that is
  >= 1.3x the documents/s. The notes say where the machine's CPU went during each
  run (each service process with its children, PostgreSQL's processes, this client,
  other processes and the kernel, idle) and what that means with more cores and
  machines. A worker that got few of the devices' keep-alive connections shows as
  such: the kernel hands a new connection to whichever worker is waiting on the
  shared socket, not in turn.

**Fleet reads** over `bench_big_peer_fleet`'s generated fleet (100,000 devices,
2,000,000 documents; the same devices and documents on both backends) and its
request helpers. The SQLite database is generated as there; the
PostgreSQL one is created by `PostgresStorage` (its schema), then gets the same rows
by ``COPY`` (the unique index rebuilt after), the device summaries and counters built
as `PostgresStorage` builds them (`fleet.summarize` of each device's newest
document), then ``VACUUM ANALYZE``: after a bulk load no page is marked all-visible
and no hint bit is set, so the first reads would write and index-only scans would
visit the heap, which autovacuum has long settled on a database in service. Before
timing, both services must answer the same first fleet page and the same history page.
Both services run at once and take turns of 10 requests (ABBA): on a shared machine
the load of other processes comes and goes, and one backend measured after the
other saw their ratio swing 2-3x between back-to-back runs.

* **page of 100 by device name** at random places, median: PostgreSQL <= 2x SQLite;
* **device history page of 100** at random places of the long histories: <= 2x;
* reported: the page sorted by last update, the page filtered by ``q``, the ``304``,
  and the worst ``/healthz`` latency while two clients fetch pages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import random
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import orjson
import psutil

from inspector.big_peer.fleet import summarize, timestamp_ms
from inspector.big_peer.postgres_storage import PostgresStorage, _utf8
from inspector.big_peer.sqlite_storage import DATABASE_FILE
from inspector.core.identity import Identity
from tests.benchmarks import common
from tests.benchmarks.bench_big_peer_fleet import (
    CITIES,
    LONG_HISTORIES,
    PAGE,
    Fleet,
    Latencies,
    Measured,
    _healthz_while,
    fleet_database,
    history_pages,
    name_pages,
    time_pages,
    timed_gets,
)
from tests.benchmarks.bench_big_peer_ingest import (
    ADMIN_TOKEN,
    send_all,
    signed_requests,
    start_service,
    stop_service,
)

DEFAULT_SERVER = os.environ.get("INSPECTOR_TEST_DATABASE_URL") or "postgresql://root@127.0.0.1:5432/test"
MIN_POSTGRES_TO_SQLITE_THROUGHPUT = 0.8
WORKERS = 2
MIN_WORKERS_SPEEDUP = 1.3
MAX_POSTGRES_TO_SQLITE_READ = 2.0
SETTINGS = (
    "shared_buffers",
    "synchronous_commit",
    "fsync",
    "wal_sync_method",
    "commit_delay",
    "full_page_writes",
    "wal_level",
    "work_mem",
    "effective_cache_size",
    "random_page_cost",
    "jit",
    "max_connections",
)
_ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
_KEPT_COMMENT = "bench_big_peer_postgres: filled"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server",
        default=DEFAULT_SERVER,
        metavar="URL",
        help="a PostgreSQL database to connect to for creating and dropping this benchmark's databases "
        "(default: $INSPECTOR_TEST_DATABASE_URL or %(default)s)",
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="keep the generated fleet here (SQLite) and in a named database (PostgreSQL), and reuse them",
    )
    parser.add_argument("--only", choices=("ingest", "fleet"), help="run one part")
    parser.add_argument(
        "--documents", type=int, default=50_000, help="documents per ingest run (default: %(default)s)"
    )
    parser.add_argument("--devices", type=int, default=8, help="concurrent devices (default: %(default)s)")
    parser.add_argument(
        "--batch", type=int, action="append", help="batch size; repeatable (default: 100, 500)"
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="ingest runs of each backend (default: %(default)s)"
    )
    parser.add_argument(
        "--fleet-devices", type=int, default=100_000, help="devices of the fleet (default: %(default)s)"
    )
    parser.add_argument(
        "--fleet-documents",
        type=int,
        default=2_000_000,
        help="documents of the fleet (default: %(default)s)",
    )
    parser.add_argument(
        "--samples", type=int, default=300, help="requests per latency measurement (default: %(default)s)"
    )


# --- the server ----------------------------------------------------------------------------------


def database_url(server: str, name: str) -> str:
    """The URL of database ``name`` on the server ``server`` names."""
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


class Databases:
    """Databases this run made on the server; dropped at the end unless kept."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.made: list[str] = []

    def admin(self, *statements: str) -> Any:
        async def run() -> Any:
            connection = await asyncpg.connect(self.server)
            try:
                result = None
                for statement in statements:
                    result = await connection.fetch(statement)
                return result
            finally:
                await connection.close()

        return asyncio.run(run())

    def create(self, name: str, *, drop_at_end: bool = True) -> str:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        if drop_at_end:
            self.made.append(name)
        return database_url(self.server, name)

    def comment(self, name: str) -> str | None:
        rows = self.admin(
            "SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database "
            f"WHERE datname = '{name}'"
        )
        return rows[0]["comment"] if rows else None

    def drop_all(self) -> None:
        if self.made:
            self.admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.made))
        self.made.clear()


def describe_server(server: str) -> str:
    async def read() -> str:
        connection = await asyncpg.connect(server)
        try:
            version = await connection.fetchval("SHOW server_version")
            settings = [f"{name}={await connection.fetchval(f'SHOW {name}')}" for name in SETTINGS]
        finally:
            await connection.close()
        return f"PostgreSQL {version}: {', '.join(settings)}"

    return asyncio.run(read())


def _unique_name(part: str) -> str:
    return f"bench_big_peer_{part}_{os.getpid()}_{secrets.token_hex(3)}"


# --- where the CPU goes --------------------------------------------------------------------------


@dataclass
class _Snapshot:
    service: dict[int, float]
    postgres: dict[int, float]
    client: float
    idle: float
    total: float


@dataclass
class CpuUse:
    """CPU seconds spent during a run, by whom (several runs add up)."""

    wall: float = 0.0
    service: dict[int, float] = field(default_factory=dict)
    """Per process of the service (its children included), by place in its process tree."""
    postgres: float = 0.0
    client: float = 0.0
    idle: float = 0.0
    total: float = 0.0
    """What the machine's cores could have given in that time."""

    @property
    def other(self) -> float:
        return max(0.0, self.total - self.idle - sum(self.service.values()) - self.postgres - self.client)

    def add(self, other: CpuUse) -> None:
        self.wall += other.wall
        for pid, seconds in other.service.items():
            self.service[pid] = self.service.get(pid, 0.0) + seconds
        self.postgres += other.postgres
        self.client += other.client
        self.idle += other.idle
        self.total += other.total

    def per_document_us(self, documents: int) -> tuple[float, float, float]:
        """(service, PostgreSQL, client) CPU per document, in microseconds."""
        return (
            sum(self.service.values()) / documents * 1e6,
            self.postgres / documents * 1e6,
            self.client / documents * 1e6,
        )

    def describe(self, documents: int) -> str:
        service, postgres, client = self.per_document_us(documents)
        processes = " + ".join(f"{s / documents * 1e6:.1f}" for s in self.service.values())
        cores = self.total / self.wall if self.wall else 0.0
        return (
            f"CPU per document: service {service:.1f} us ({len(self.service)} processes: {processes}), "
            f"PostgreSQL {postgres:.1f} us, client {client:.1f} us, "
            f"other processes and the kernel {self.other / documents * 1e6:.1f} us; "
            f"idle {self.idle / self.total:.0%} of {cores:.0f} cores"
        )


class CpuMeter:
    """Snapshots of the CPU the service's process tree, PostgreSQL, this process and the machine used.

    PostgreSQL's share is the backends connected to ``database`` (the service's) and the
    server's own processes (WAL writer, checkpointer...): other sessions' backends on a
    shared server count as other processes.
    """

    def __init__(self, service: psutil.Process, server: str, database: str | None) -> None:
        self._service = service
        self._server = server
        self._database = database
        self._client = psutil.Process()

    def service_processes(self) -> list[psutil.Process]:
        with contextlib.suppress(psutil.Error):
            return [self._service, *self._service.children(recursive=True)]
        return [self._service]

    async def _postgres_processes(self) -> list[psutil.Process]:
        connection = await asyncpg.connect(self._server)
        try:
            rows = await connection.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 OR backend_type <> 'client backend'",
                self._database or "",
            )
        finally:
            await connection.close()
        processes = []
        for row in rows:
            with contextlib.suppress(psutil.Error):
                process = psutil.Process(row["pid"])
                processes.append(process)
                with contextlib.suppress(psutil.Error):
                    processes.append(process.parent())  # the postmaster
        return processes

    async def snapshot(self) -> _Snapshot:
        service = _cpu_of(self.service_processes())
        postgres = _cpu_of(await self._postgres_processes())
        client = self._client.cpu_times()
        machine = psutil.cpu_times()
        # guest time is counted in user time already.
        total = sum(
            getattr(machine, name, 0.0)
            for name in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
        )
        idle = machine.idle + getattr(machine, "iowait", 0.0)
        return _Snapshot(service, postgres, client.user + client.system, idle, total)

    @staticmethod
    def between(before: _Snapshot, after: _Snapshot, wall: float) -> CpuUse:
        return CpuUse(
            wall=wall,
            # By place in the process tree (the first is the one started), so that runs add up.
            service={
                place: seconds - before.service.get(pid, 0.0)
                for place, (pid, seconds) in enumerate(after.service.items())
            },
            postgres=sum(seconds - before.postgres.get(pid, 0.0) for pid, seconds in after.postgres.items()),
            client=after.client - before.client,
            idle=after.idle - before.idle,
            total=after.total - before.total,
        )


def _cpu_of(processes: Any) -> dict[int, float]:
    seconds = {}
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[process.pid] = times.user + times.system
    return seconds


# --- ingest --------------------------------------------------------------------------------------


@dataclass
class Backend:
    label: str
    service_arguments: list[str]
    postgres: bool
    seconds: list[float] = field(default_factory=list)
    cpu: CpuUse = field(default_factory=CpuUse)
    documents: int = 0
    processes: int = 0

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds) if self.seconds else math.nan


async def _ingest_once(
    plans: Any,
    workdir: Path,
    arguments: list[str],
    batch: int,
    devices: int,
    meter_on: tuple[str, str | None],
) -> tuple[float, CpuUse, int, int]:
    """One run on a fresh database: (seconds, CPU, documents accepted, processes serving)."""
    data_dir = workdir / f"data-{secrets.token_hex(4)}"
    process, url = start_service(data_dir, data_dir.with_suffix(".log"), max(batch, 1000), arguments)
    try:
        meter = CpuMeter(psutil.Process(process.pid), *meter_on)
        async with aiohttp.ClientSession() as session:  # every worker up, before the clock runs
            for _ in range(20):
                async with session.get(url + "/healthz") as response:
                    await response.read()
        processes = len(meter.service_processes())
        before = await meter.snapshot()
        seconds, accepted = await send_all(url, plans)
        cpu = CpuMeter.between(before, await meter.snapshot(), seconds)
        async with (
            aiohttp.ClientSession() as session,
            session.get(url + "/api/v1/fleet", headers=_ADMIN) as r,
        ):
            listed = (await r.json())["total"]
    finally:
        code = stop_service(process)
    if listed != devices or code != 0:
        raise SystemExit(
            f"wrong outcome: {listed} devices listed, exit {code}:\n{data_dir.with_suffix('.log')}"
        )
    return seconds, cpu, accepted, processes


def measure_ingest(
    databases: Databases, workdir: Path, batch: int, total: int, device_count: int, rounds: int
) -> list[Backend]:
    keys_dir = workdir / f"keys-{batch}"
    devices = []
    for number in range(device_count):
        (keys_dir / str(number)).mkdir(parents=True)
        devices.append(Identity.load_or_create(keys_dir / str(number)))
    sqlite = Backend("SQLite, 1 process", [], postgres=False)
    one = Backend("PostgreSQL, 1 process", [], postgres=True)
    several = Backend(f"PostgreSQL, --workers {WORKERS}", ["--workers", str(WORKERS)], postgres=True)
    for number in range(rounds):
        # Signed afresh each round (a signature is good for 5 minutes), the same bodies for every backend.
        plans = signed_requests(devices, total, batch, datetime(2026, 11, 26, 5, 0, tzinfo=UTC))
        expected = sum(len(requests) for requests in plans) * batch
        order = (sqlite, one, several) if number % 2 == 0 else (several, one, sqlite)
        for backend in order:
            if backend is several and number > 0 and several.processes < WORKERS:
                continue  # this service cannot run several processes: once is enough to say so
            arguments = list(backend.service_arguments)
            name = None
            if backend.postgres:
                name = _unique_name("ingest")
                arguments += ["--database", databases.create(name)]
            seconds, cpu, accepted, processes = asyncio.run(
                _ingest_once(plans, workdir, arguments, batch, device_count, (databases.server, name))
            )
            if accepted != expected:
                raise SystemExit(f"{backend.label}: accepted {accepted} of {expected} documents")
            if backend.postgres:
                databases.drop_all()
            backend.seconds.append(seconds)
            backend.cpu.add(cpu)
            backend.documents += accepted
            backend.processes = processes
            print(
                f"  batches of {batch}, round {number + 1}: {backend.label}: "
                f"{accepted / seconds:,.0f} documents/s, {processes} processes; "
                f"{cpu.describe(accepted)}",
                flush=True,
            )
    return [sqlite, one, several]


def ingest_results(
    batch: int, per_run: int, sqlite: Backend, one: Backend, several: Backend
) -> list[common.Result]:
    group = f"ingest on PostgreSQL, batches of {batch}"

    def us(backend: Backend) -> float:
        return backend.median_seconds / per_run * 1e6

    def rate(backend: Backend) -> str:
        runs = ", ".join(f"{per_run / s:,.0f}" for s in backend.seconds)
        return f"{per_run / backend.median_seconds:,.0f} documents/s (runs: {runs})"

    results = [
        common.Result(
            group,
            "1 process: time per document",
            us(one),
            us(sqlite),
            sqlite.label,
            "us",
            max_ratio=1 / MIN_POSTGRES_TO_SQLITE_THROUGHPUT,
            note=(
                f"PostgreSQL {rate(one)} vs SQLite {rate(sqlite)}; "
                f"PostgreSQL: {one.cpu.describe(one.documents)}; "
                f"SQLite: {sqlite.cpu.describe(sqlite.documents)}"
            ),
        )
    ]
    workers_ran = several.processes >= WORKERS
    service, postgres, _ = several.cpu.per_document_us(several.documents)
    scaling = (
        f"service {service:.0f} us + PostgreSQL {postgres:.0f} us of CPU per document: a core given to "
        f"them serves at most {1e6 / (service + postgres):,.0f} documents/s; Big Peer processes and "
        f"machines add {1e6 / service:,.0f} documents/s per core each, and PostgreSQL's share bounds "
        f"one database server at {1e6 / postgres:,.0f} documents/s per core however many Big Peers feed it"
        if several.documents and service > 0 and postgres > 0
        else ""
    )
    results.append(
        common.Result(
            group,
            f"{WORKERS} processes / 1 process: time per document",
            us(several) if workers_ran else math.nan,
            us(one),
            one.label,
            "us",
            max_ratio=1 / MIN_WORKERS_SPEEDUP,
            note=(
                f"{rate(several)}; {several.cpu.describe(several.documents)}; {scaling}"
                if workers_ran
                else f"--workers {WORKERS} ran {several.processes} process: the service cannot run more yet"
            ),
        )
    )
    return results


# --- the fleet on PostgreSQL ---------------------------------------------------------------------

_NEWEST_OF_EACH_DEVICE = """
SELECT d.seq, d.peer_key, d.last_updated_at, d.received_at_ms, d.body::text AS body, c.count,
    c.newest[2] AS previous
FROM (
    SELECT peer_key, count(*) AS count,
        (array_agg(last_updated_at ORDER BY last_updated_at DESC))[1:2] AS newest
    FROM documents GROUP BY peer_key
) AS c JOIN documents AS d ON d.peer_key = c.peer_key AND d.last_updated_at = c.newest[1]
"""
_SUMMARY_COLUMNS = (
    "peer_key",
    "name_key",
    "last_updated_at",
    "previous_updated_at",
    "received_at_ms",
    "document_count",
    "newest_seq",
    "fields",
    "search_name",
    "search_key",
    "search_metadata",
    "interval_ms",
)


async def fill_postgres(fleet: Fleet, url: str) -> float:
    """Copy ``fleet``'s documents into a new database and build what `PostgresStorage` keeps of them."""
    began = time.perf_counter()
    await (await PostgresStorage.open(url)).close()  # the service's schema, as a Big Peer creates it
    connection = await asyncpg.connect(url)
    try:
        # This session only: memory for building the unique index and for the summaries' sort.
        await connection.execute("SET maintenance_work_mem = '1GB'")
        await connection.execute("SET work_mem = '512MB'")
        # The unique index is built once after the rows are in, not row by row (the same definition).
        unique = await connection.fetchrow(
            "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint "
            "WHERE conrelid = 'documents'::regclass AND contype = 'u'"
        )
        await connection.execute(f'ALTER TABLE documents DROP CONSTRAINT "{unique["conname"]}"')
        source = sqlite3.connect(f"file:{fleet.data_dir / DATABASE_FILE}?mode=ro", uri=True)
        try:
            rows = source.execute(
                "SELECT seq, peer_key, last_updated_at, received_at_ms, body FROM documents ORDER BY seq"
            )
            while chunk := rows.fetchmany(20_000):
                await connection.copy_records_to_table(
                    "documents",
                    records=chunk,
                    columns=("seq", "peer_key", "last_updated_at", "received_at_ms", "body"),
                )
        finally:
            source.close()
        await connection.execute(
            f'ALTER TABLE documents ADD CONSTRAINT "{unique["conname"]}" {unique["definition"]}'
        )
        await connection.execute(
            "SELECT setval(pg_get_serial_sequence('documents', 'seq'), (SELECT max(seq) FROM documents))"
        )
        copied = time.perf_counter()
        summaries = []
        for row in await connection.fetch(_NEWEST_OF_EACH_DEVICE):
            summary = summarize(orjson.loads(row["body"]))
            summaries.append(
                (
                    row["peer_key"],
                    _utf8(summary.device_name),
                    row["last_updated_at"],
                    row["previous"],
                    row["received_at_ms"],
                    row["count"],
                    row["seq"],
                    summary.fields,
                    _utf8(summary.search_name),
                    _utf8(summary.search_key),
                    _utf8(summary.search_metadata),
                    None
                    if row["previous"] is None
                    else timestamp_ms(row["last_updated_at"]) - timestamp_ms(row["previous"]),
                )
            )
        await connection.copy_records_to_table(
            "device_summaries", records=summaries, columns=_SUMMARY_COLUMNS
        )
        documents = await connection.fetchval("SELECT count(*) FROM documents")
        # What the shards add up to is what counts; a Big Peer adds each batch to one at random.
        await connection.execute(
            "UPDATE counters SET documents = $1, devices = $2 WHERE shard = 0", documents, len(summaries)
        )
        await connection.execute("VACUUM ANALYZE")
        if documents != fleet.documents or len(summaries) != fleet.devices:
            raise SystemExit(
                f"copied {documents} documents of {len(summaries)} devices, not {fleet.documents}"
            )
        print(
            f"PostgreSQL: copied {documents:,} documents in {copied - began:.0f} s, built {len(summaries):,} "
            f"summaries and analyzed in {time.perf_counter() - copied:.0f} s; "
            f"{await connection.fetchval('SELECT pg_size_pretty(pg_database_size(current_database()))')}",
            flush=True,
        )
    finally:
        await connection.close()
    return time.perf_counter() - began


async def first_answers(url: str, fleet: Fleet) -> tuple[list[Any], list[Any]]:
    """The first fleet page by device name and the newest history page of a long history."""
    peer_key = sorted(fleet.long_histories)[0]
    async with aiohttp.ClientSession(headers=_ADMIN) as session:
        async with session.get(f"{url}/api/v1/fleet?limit={PAGE}") as response:
            page = orjson.loads(await response.read())
        async with session.get(f"{url}/api/v1/devices/{peer_key}/history?limit={PAGE}") as response:
            history = orjson.loads(await response.read())
    return page["devices"], history["documents"]


def postgres_fleet(args: argparse.Namespace, databases: Databases, fleet: Fleet) -> tuple[str, str]:
    """The URL of the fleet's PostgreSQL database, filled unless a kept one is; and how it was made."""
    if args.keep is None:
        name = _unique_name("fleet")
        url = databases.create(name)
    else:
        name = f"bench_big_peer_fleet_{fleet.devices}_{fleet.documents}"
        url = database_url(databases.server, name)
        if databases.comment(name) == _KEPT_COMMENT:
            return url, f"kept database {name}"
        databases.create(name, drop_at_end=False)
    seconds = asyncio.run(fill_postgres(fleet, url))
    if args.keep is not None:
        databases.admin(f"COMMENT ON DATABASE \"{name}\" IS '{_KEPT_COMMENT}'")
    return url, f"filled in {seconds:.0f} s"


async def check_same_answers(fleet: Fleet, sqlite_url: str, pg_url: str) -> str:
    sqlite_page, sqlite_history = await first_answers(sqlite_url, fleet)
    pg_page, pg_history = await first_answers(pg_url, fleet)
    keys = [[d["peer_key"] for d in page] for page in (sqlite_page, pg_page)]
    times = [[d["last_updated_at"] for d in history] for history in (sqlite_history, pg_history)]
    if keys[0] != keys[1] or len(keys[0]) != PAGE:
        raise SystemExit(
            f"the first fleet pages differ: SQLite {keys[0][:3]}..., PostgreSQL {keys[1][:3]}..."
        )
    if times[0] != times[1] or len(times[0]) != PAGE:
        raise SystemExit(f"the history pages differ: SQLite {times[0][:3]}..., PostgreSQL {times[1][:3]}...")
    same = (
        "identical"
        if (sqlite_page, sqlite_history) == (pg_page, pg_history)
        else "same keys, other fields differ"
    )
    return f"first fleet page and a history page: {same} on both backends"


TURN = 10
"""Requests to one service before the other's turn."""


async def measure_interleaved(fleet: Fleet, urls: dict[str, str], samples: int) -> dict[str, Measured]:
    """The same requests to every service, taking turns (ABBA), so a load that other processes put
    on the machine for a while falls on every service alike; then a /healthz window each."""
    rng = random.Random(42)
    first = f"/api/v1/fleet?limit={PAGE}"
    kinds = {
        "name_page": name_pages(fleet, rng, samples),
        "time_page": time_pages(fleet, rng, samples),
        "query_page": [f"{first}&q={rng.choice(CITIES)}" for _ in range(max(20, samples // 10))],
        "history_page": history_pages(fleet, rng, samples),
        "not_modified": [first] * samples,
    }
    warm_up = name_pages(fleet, rng, 50) + time_pages(fleet, rng, 20) + history_pages(fleet, rng, 20)
    labels = list(urls)
    latencies: dict[str, dict[str, list[float]]] = {label: {kind: [] for kind in kinds} for label in labels}
    etags = {}
    async with contextlib.AsyncExitStack() as stack:
        sessions = {
            label: await stack.enter_async_context(
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
            )
            for label in labels
        }
        for label, url in urls.items():
            await timed_gets(sessions[label], url, warm_up)
            async with sessions[label].get(url + first, headers=_ADMIN) as response:
                etags[label] = response.headers["ETag"]
                await response.read()
        for kind, paths in kinds.items():
            for turn, begin in enumerate(range(0, len(paths), TURN)):
                for label in labels if turn % 2 == 0 else labels[::-1]:
                    headers = {"If-None-Match": etags[label]} if kind == "not_modified" else None
                    chunk = paths[begin : begin + TURN]
                    latencies[label][kind] += (
                        await timed_gets(sessions[label], urls[label], chunk, headers)
                    ).samples
    measured = {
        label: Measured(
            name_page=Latencies(by_kind["name_page"]),
            time_page=Latencies(by_kind["time_page"]),
            query_page=Latencies(by_kind["query_page"]),
            history_page=Latencies(by_kind["history_page"]),
            not_modified=Latencies(by_kind["not_modified"]),
        )
        for label, by_kind in latencies.items()
    }
    for label, url in urls.items():
        window = await _healthz_while(url, fleet, rng, loaders=2, measured=measured[label])
        measured[label].healthz_loaded.append(window)
    return measured


async def compare_fleet(
    fleet: Fleet, workdir: Path, services: Mapping[str, Sequence[str]], samples: int
) -> tuple[str, dict[str, Measured]]:
    """Start a service per entry of ``services`` (its arguments) at once; check them, then measure them."""
    started: dict[str, tuple[Any, str]] = {}
    try:
        for number, (label, arguments) in enumerate(services.items()):
            started[label] = start_service(fleet.data_dir, workdir / f"service-{number}.log", 1000, arguments)
        urls = {label: url for label, (_, url) in started.items()}
        sqlite, *others = urls.values()
        checks = [await check_same_answers(fleet, sqlite, other) for other in others]
        return checks[0], await measure_interleaved(fleet, urls, samples)
    finally:
        for process, _ in started.values():
            stop_service(process)


def fleet_results(fleet: Fleet, sqlite: Measured, pg: Measured, how: str, check: str) -> list[common.Result]:
    group = f"fleet of {fleet.devices:,} on PostgreSQL"
    data = f"{fleet.devices:,} devices, {fleet.documents:,} documents ({how}; {check})"

    def row(
        label: str, pg_latencies: Latencies | None, sqlite_latencies: Latencies | None, budget: bool
    ) -> common.Result:
        assert pg_latencies is not None and sqlite_latencies is not None
        return common.Result(
            group,
            f"{label} (median)",
            pg_latencies.median_ms,
            sqlite_latencies.median_ms,
            "SQLite",
            "ms",
            max_ratio=MAX_POSTGRES_TO_SQLITE_READ if budget else None,
            note=f"PostgreSQL {pg_latencies.summary()}; SQLite {sqlite_latencies.summary()}",
        )

    results = [
        row("page of 100 by device name", pg.name_page, sqlite.name_page, True),
        row("device history page of 100", pg.history_page, sqlite.history_page, True),
        row("page of 100 sorted by last update", pg.time_page, sqlite.time_page, False),
        row("page of 100 filtered by q (counts every match)", pg.query_page, sqlite.query_page, False),
        row("304 to a matching If-None-Match", pg.not_modified, sqlite.not_modified, False),
    ]
    results[0] = dataclasses.replace(results[0], note=f"{data}: {results[0].note}")
    worst = [min(m.healthz_loaded, key=lambda w: w.max_ms) for m in (pg, sqlite)]
    results.append(
        common.Result(
            group,
            "/healthz worst case while 2 clients fetch pages",
            worst[0].max_ms,
            worst[1].max_ms,
            "SQLite",
            "ms",
            note=f"PostgreSQL {worst[0].summary()}; SQLite {worst[1].summary()}",
        )
    )
    return results


# --- the run -------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> list[common.Result]:
    print(
        f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, {psutil.cpu_count()} CPUs; "
        f"{describe_server(args.server)}",
        flush=True,
    )
    databases = Databases(args.server)
    results: list[common.Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-big-peer-postgres-") as scratch:
            if args.only in (None, "ingest"):
                total = 5_000 if args.quick else args.documents
                rounds = 1 if args.quick else args.rounds
                batches = args.batch or ([100] if args.quick else [100, 500])
                for batch in batches:
                    workdir = Path(scratch) / f"ingest-{batch}"
                    workdir.mkdir()
                    backends = measure_ingest(databases, workdir, batch, total, args.devices, rounds)
                    per_run = backends[0].documents // rounds
                    results += ingest_results(batch, per_run, *backends)
            if args.only in (None, "fleet"):
                devices, documents = (
                    (2_000, 40_000) if args.quick else (args.fleet_devices, args.fleet_documents)
                )
                samples = 60 if args.quick else args.samples
                keep = args.keep or Path(scratch)
                keep.mkdir(parents=True, exist_ok=True)
                fleet = fleet_database(keep, devices, documents, LONG_HISTORIES)
                url, how = postgres_fleet(args, databases, fleet)
                workdir = Path(scratch) / "fleet"
                workdir.mkdir()
                services = {"SQLite": (), "PostgreSQL": ("--database", url)}
                check, measured = asyncio.run(compare_fleet(fleet, workdir, services, samples))
                print(check, flush=True)
                sqlite, pg = measured["SQLite"], measured["PostgreSQL"]
                results += fleet_results(fleet, sqlite, pg, how, check)
    finally:
        databases.drop_all()
        # Millions of rows leave dirty buffers that PostgreSQL writes out over the next
        # minutes (a spread checkpoint), slowing whatever the machine runs then: the next
        # benchmark's SQLite fsyncs took 1.5x longer. Written out now, inside this benchmark.
        databases.admin("CHECKPOINT")
    return results


if __name__ == "__main__":
    sys.exit(common.main(run, __doc__, add_arguments))
