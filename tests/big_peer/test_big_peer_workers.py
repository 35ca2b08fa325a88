"""``--workers N``: worker processes serving one port under a supervisor, on the default SQLite storage.

Which worker takes a connection is the kernel's choice; to make it the test's,
every other worker is paused (SIGSTOP) while the connection is opened: a paused
process cannot accept, so the one left running must.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import orjson
import psutil
import pytest
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    WRITE_PATH,
    BigPeerClient,
    BigPeerProcess,
    big_peer_command,
    request_head,
    service_env,
    small_peer_info,
    start_big_peer,
    timestamps,
    write_across_shutdown,
)

pytestmark = pytest.mark.timeout(90)

WORKER_MODULE = "inspector.big_peer.workers"
TWO_WORKERS = ("--workers", "2")

_T = TypeVar("_T")


async def eventually(condition: Callable[[], _T], what: str, timeout: float = 30.0) -> _T:
    """Poll ``condition`` until it is true (returned), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return result


def workers_of(running: BigPeerProcess) -> dict[int, psutil.Process]:
    """The service's live worker processes by worker number (from their command lines)."""
    found = {}
    for child in psutil.Process(running.process.pid).children():
        try:
            command = child.cmdline()
        except psutil.NoSuchProcess:  # gone, or a zombie its supervisor has not reaped yet
            continue
        if WORKER_MODULE in command:
            found[int(command[command.index(WORKER_MODULE) + 1])] = child
    return found


@contextlib.contextmanager
def only(serving: psutil.Process, workers: Iterable[psutil.Process]) -> Iterator[None]:
    """Pause every worker but ``serving``: new connections are then accepted by ``serving``."""
    paused = [worker for worker in workers if worker.pid != serving.pid]
    for worker in paused:
        worker.suspend()
    try:
        yield
    finally:
        for worker in paused:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.resume()


def still_running(processes: Iterable[psutil.Process], timeout: float = 30.0) -> list[psutil.Process]:
    """Those of ``processes`` still running after waiting up to ``timeout`` seconds for all to end.

    A zombie counts as ended: whether anyone reaps an orphan is up to the machine's init.
    """

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    processes = list(processes)
    deadline = time.monotonic() + timeout
    while (left := [process for process in processes if running(process)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def log_lines(running: BigPeerProcess, *parts: str) -> list[str]:
    return [line for line in running.log().splitlines() if all(part in line for part in parts)]


@pytest.fixture
async def fresh_session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that opens a new connection for every request (none is kept by a worker)."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        yield session


class KeptConnection:
    """One keep-alive HTTP connection, to see what becomes of it when its worker dies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, url: str) -> KeptConnection:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return cls(*await asyncio.open_connection(host, int(port)))

    async def health(self) -> int | None:
        """The status of ``GET /healthz`` on this connection, or None if the connection is gone."""
        try:
            async with asyncio.timeout(10):
                self.writer.write(request_head("/healthz", {}, method="GET"))
                await self.writer.drain()
                head = await self.reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await self.reader.readexactly(length)
        return int(head.split(b" ")[1])

    def close(self) -> None:
        self.writer.close()


def one_document(device: Any) -> list[dict[str, Any]]:
    (at,) = timestamps(1)
    return [small_peer_info(device.peer_key, at)]


# --- serving --------------------------------------------------------------------------------------


async def test_two_workers_serve_writes_and_reads_on_one_port(
    big_peer_factory, fresh_session: aiohttp.ClientSession, make_device
) -> None:
    running = big_peer_factory(extra_args=[*TWO_WORKERS, "--access-log"])
    client = BigPeerClient(fresh_session, running.url)
    workers = workers_of(running)
    assert sorted(workers) == [1, 2]
    written = {}

    for number, worker in workers.items():
        with only(worker, workers.values()):
            device = make_device()
            answer = await client.write(device, one_document(device))
            assert answer.status == 200, answer.body
            assert answer.json == {"accepted": 1, "duplicates": 0}
            written[number] = device
    for number, worker in workers.items():
        with only(worker, workers.values()):
            other = written[3 - number]
            history = await client.history(other)
            assert history.json == {"documents": one_document(other)}, f"worker {number}"

    for number in workers:
        await eventually(
            lambda number=number: log_lines(
                running, f"[worker {number}] aiohttp.access", "POST " + WRITE_PATH
            ),
            f"worker {number} to log the write it served",
        )


async def test_one_worker_is_the_service_process_itself(big_peer_factory) -> None:
    running = big_peer_factory(extra_args=["--workers", "1"])

    assert psutil.Process(running.process.pid).children() == []
    assert "[worker" not in running.log()


async def test_a_replayed_signed_write_is_refused_by_the_other_worker(
    big_peer_factory, fresh_session: aiohttp.ClientSession, make_device
) -> None:
    running = big_peer_factory(extra_args=TWO_WORKERS)
    client = BigPeerClient(fresh_session, running.url)
    workers = workers_of(running)
    device = make_device()
    body = orjson.dumps({"documents": one_document(device)})
    signed = device.request_headers("POST", WRITE_PATH, body)
    with only(workers[1], workers.values()):
        first = await client.write_body(device, body, signed_headers=signed)

    with only(workers[2], workers.values()):
        replay = await client.write_body(device, body, signed_headers=signed)

    assert first.status == 200
    assert replay.status == 401
    assert replay.error_code == "replayed_nonce"
    assert len((await client.history(device)).json["documents"]) == 1


# --- a worker dies --------------------------------------------------------------------------------


async def test_a_killed_worker_loses_its_connections_only_and_is_replaced(
    big_peer_factory, fresh_session: aiohttp.ClientSession
) -> None:
    running = big_peer_factory(extra_args=TWO_WORKERS)
    workers = workers_of(running)
    kept = {}
    for number, worker in workers.items():
        with only(worker, workers.values()):
            kept[number] = await KeptConnection.open(running.url)
            assert await kept[number].health() == 200
    try:
        workers[1].kill()

        assert await kept[1].health() is None, "the killed worker's connection is gone"
        assert await kept[2].health() == 200, "the other worker's connection is served on"
        assert (await BigPeerClient(fresh_session, running.url).request("GET", "/healthz")).status == 200
        replacement = await eventually(
            lambda: (new := workers_of(running).get(1)) is not None and new.pid != workers[1].pid and new,
            "a new worker 1",
        )
        await eventually(
            lambda: log_lines(running, f"worker 1 (pid {replacement.pid}) is serving"),
            "the new worker 1 to serve",
        )
    finally:
        for connection in kept.values():
            connection.close()

    with only(replacement, [replacement, workers[2]]):
        assert (await BigPeerClient(fresh_session, running.url).request("GET", "/healthz")).status == 200
    assert len(log_lines(running, f"worker 1 (pid {workers[1].pid}) was killed by SIGKILL")) == 1
    assert workers_of(running)[2].pid == workers[2].pid


async def test_a_worker_that_cannot_restart_is_retried_while_another_serves(tmp_path: Path) -> None:
    """A replacement that cannot open the database (away for a while) never ends a service that serves.

    Before, the fifth failed restart stopped every worker, the healthy one included: a
    worker dying while PostgreSQL was down took the whole service with it for good.
    """
    running = start_big_peer(tmp_path / "data", tmp_path / "service.log", TWO_WORKERS)
    try:
        workers = workers_of(running)
        # Worker 2 keeps the database it opened; a new worker finds a file where the directory was.
        running.data_dir.rename(tmp_path / "moved")
        running.data_dir.write_text("in the way")
        workers[1].kill()
        await eventually(
            lambda: log_lines(running, "worker 1 (pid", "before it was ready", "(try 6;"),
            "a sixth try to start worker 1",
        )
        async with aiohttp.ClientSession() as session, session.get(running.url + "/healthz") as answer:
            assert answer.status == 200
        running.data_dir.unlink()
        (tmp_path / "moved").rename(running.data_dir)
        await eventually(lambda: 1 in workers_of(running), "worker 1 serving again")
        await eventually(lambda: log_lines(running, "worker 1 (pid", "is serving")[1:], "worker 1 serving")
    finally:
        code = running.stop()
    log = running.log()
    assert code == 0, log
    assert "giving up" not in log
    assert "Traceback" not in log


def test_workers_that_keep_failing_to_start_end_the_service(tmp_path: Path) -> None:
    log_path = tmp_path / "service.log"
    running = start_big_peer(tmp_path / "data", log_path, TWO_WORKERS)
    try:
        workers = workers_of(running)
        # Every new worker finds a file where the directory was, and none serves any more.
        running.data_dir.rename(tmp_path / "moved")
        running.data_dir.write_text("in the way")
        for worker in workers.values():
            worker.kill()

        code = running.process.wait(timeout=60)
    finally:
        running.stop(signal.SIGKILL)

    log = running.log()
    assert code == 1, log
    assert "giving up" in log
    assert f"[worker 1] inspector.big_peer: cannot open the database in {running.data_dir}" in log
    assert "Traceback" not in log
    assert still_running(workers.values()) == []


def run_to_exit(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, env=service_env(tmp_path))


def test_a_worker_that_cannot_start_stops_the_service_with_exit_1(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("in the way")
    command = big_peer_command(
        "--port", "0", "--data", str(not_a_directory), *TWO_WORKERS,
        "--device-token", DEVICE_TOKEN, "--admin-token", ADMIN_TOKEN,
    )  # fmt: skip

    result = run_to_exit(command, tmp_path)

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert f"[worker 1] inspector.big_peer: cannot open the database in {not_a_directory}" in result.stderr
    assert "exited with code 1 before it was ready: the service cannot start" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("workers", ["0", "x"])
def test_workers_must_be_a_positive_whole_number(tmp_path: Path, workers: str) -> None:
    command = big_peer_command(
        "--port", "0", "--data", str(tmp_path / "data"), "--workers", workers,
        "--device-token", DEVICE_TOKEN, "--admin-token", ADMIN_TOKEN,
    )  # fmt: skip

    result = run_to_exit(command, tmp_path)

    assert result.returncode == 2
    assert "--workers" in result.stderr
    assert not (tmp_path / "data").exists()


# --- stopping -------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_stops_every_worker_and_leaves_no_process_behind(
    big_peer_factory, sig: signal.Signals
) -> None:
    running = big_peer_factory(extra_args=TWO_WORKERS)
    workers = workers_of(running)

    assert running.stop(sig) == 0

    assert len(workers) == 2
    assert still_running(workers.values()) == []
    for number in workers:
        assert log_lines(running, f"[worker {number}]", "stopped; the database is closed")
    assert log_lines(running, "stopped; every worker has stopped")


async def test_a_request_in_flight_finishes_when_the_workers_stop(big_peer_factory, make_device) -> None:
    running = big_peer_factory(extra_args=TWO_WORKERS)
    device = make_device()
    body = orjson.dumps({"documents": one_document(device)})

    head, answer = await write_across_shutdown(running, device, body)

    assert head.startswith(b"HTTP/1.1 200"), head + answer
    assert orjson.loads(answer) == {"accepted": 1, "duplicates": 0}
    assert running.stop() == 0


def test_a_worker_that_outlives_the_shutdown_timeout_is_killed_and_the_exit_code_says_so(
    tmp_path: Path,
) -> None:
    running = start_big_peer(
        tmp_path / "data", tmp_path / "service.log", [*TWO_WORKERS, "--shutdown-timeout", "0"]
    )
    workers = workers_of(running)
    workers[2].suspend()  # it cannot act on the signal the supervisor passes on
    try:
        code = running.stop(timeout=60)
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            workers[2].resume()

    assert code == 1, running.log()
    assert log_lines(running, f"worker 2 (pid {workers[2].pid}) did not stop within", "killed it")
    assert log_lines(running, "[worker 1]", "stopped; the database is closed")
    assert still_running(workers.values()) == []


def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    running = start_big_peer(tmp_path / "data", tmp_path / "service.log", TWO_WORKERS)
    workers = workers_of(running)

    running.stop(signal.SIGKILL)

    assert still_running(workers.values()) == []
    for number in workers:
        assert log_lines(running, f"[worker {number}]", "the supervisor is gone; shutting down")
        assert log_lines(running, f"[worker {number}]", "stopped; the database is closed")
    assert "Traceback" not in running.log()
