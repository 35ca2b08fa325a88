"""Runs the real Big Peer service as a subprocess on 127.0.0.1; a client acting as devices and dashboards."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict

from inspector.core.identity import Identity

DEVICE_TOKEN = "device-token-for-tests"
ADMIN_TOKEN = "admin-token-for-tests"
WRITE_PATH = "/api/v1/small_peer_info"
STARTUP_SECONDS = 30.0
# The shared service of a test module: small limits keep the limit tests cheap.
SHARED_MAX_DOCUMENTS = 50
SHARED_MAX_BODY_BYTES = 1_000_000
SHARED_SERVICE_ARGS = (
    "--max-documents", str(SHARED_MAX_DOCUMENTS), "--max-body-bytes", str(SHARED_MAX_BODY_BYTES)
)  # fmt: skip


@dataclass
class BigPeerProcess:
    """One running service; `stop` sends a signal and returns the exit code."""

    process: subprocess.Popen[str]
    url: str
    data_dir: Path
    log_path: Path
    database_url: str | None = None
    """The PostgreSQL database it serves (``--database``), or None for SQLite in `data_dir`."""
    exit_code: int | None = field(default=None, init=False)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.exit_code is None:
            if self.process.poll() is None:
                self.process.send_signal(sig)
            try:
                self.exit_code = self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(
                    f"the Big Peer ignored {sig.name} for {timeout} s:\n{self.log()}"
                ) from None
            finally:
                assert self.process.stdout is not None
                self.process.stdout.close()
        return self.exit_code


def big_peer_command(*args: str, open_files: int | None = None) -> list[str]:
    """The service's command line; ``open_files`` lowers its open-file limit (POSIX)."""
    if open_files is None:
        return [sys.executable, "-m", "inspector.big_peer", *args]
    start = (
        "import resource, runpy, sys; "
        "limit = int(sys.argv.pop(1)); resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit)); "
        "runpy.run_module('inspector.big_peer', run_name='__main__', alter_sys=True)"
    )
    return [sys.executable, "-c", start, str(open_files), *args]


def service_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INSPECTOR_")}
    env["HOME"] = str(home)
    for var in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        env[var] = str(home / var.lower())
    return env


def start_big_peer(
    data_dir: Path,
    log_path: Path,
    extra_args: Sequence[str] = (),
    *,
    tokens_in_env: bool = False,
    open_files: int | None = None,
    database_url: str | None = None,
) -> BigPeerProcess:
    """Start the service on a free port; return once /healthz answers.

    ``database_url``: serve that PostgreSQL database (``--database``) instead of SQLite in ``data_dir``.
    """
    env = service_env(log_path.parent)
    if tokens_in_env:
        env.update(INSPECTOR_DEVICE_TOKEN=DEVICE_TOKEN, INSPECTOR_ADMIN_TOKEN=ADMIN_TOKEN)
        tokens = []
    else:
        tokens = ["--device-token", DEVICE_TOKEN, "--admin-token", ADMIN_TOKEN]
    database = ["--database", database_url] if database_url is not None else []
    command = big_peer_command(
        "--host", "127.0.0.1", "--port", "0", "--data", str(data_dir), *tokens, *database, *extra_args,
        open_files=open_files,
    )  # fmt: skip
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
    assert process.stdout is not None
    with concurrent.futures.ThreadPoolExecutor(1) as reader:
        first_line = reader.submit(process.stdout.readline)
        try:
            line = first_line.result(timeout=STARTUP_SECONDS)
        except concurrent.futures.TimeoutError:
            process.kill()
            line = ""
        if not line.startswith("listening on http://"):
            process.kill()
            process.wait()
            process.stdout.close()
            raise AssertionError(f"the Big Peer did not start: {line!r}\n{log_path.read_text()}")
    url = line.removeprefix("listening on ").strip()
    running = BigPeerProcess(process, url, data_dir, log_path, database_url)
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        try:
            with urllib.request.urlopen(running.url + "/healthz", timeout=5) as response:
                if response.status == 200:
                    return running
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                running.stop(signal.SIGKILL)
                raise AssertionError(f"the Big Peer never became healthy:\n{running.log()}") from None
        time.sleep(0.02)


def timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def timestamps(
    count: int, start: datetime | None = None, step: timedelta = timedelta(seconds=1)
) -> list[str]:
    """``count`` strictly increasing ``last_updated_at`` values."""
    start = start or datetime(2026, 11, 26, 5, 38, 12, 345000, tzinfo=UTC)
    return [timestamp(start + i * step) for i in range(count)]


def small_peer_info(peer_key: str, last_updated_at: str, **fields: Any) -> dict[str, Any]:
    """A document like the ones peers collect."""
    document: dict[str, Any] = {
        "_id": peer_key,
        "device_name": "test-laptop",
        "ditto_sdk_language": "Python",
        "ditto_sdk_platform": "Linux",
        "ditto_sdk_version": "0.1.0",
        "last_updated_at": last_updated_at,
        "metadata": {"site": "lab", "rack": 4},
        "device_disk_usage": {
            "device_total": 512_000_000_000,
            "device_available": 123_000_000_000,
            "ditto_total": 1_048_576,
            "ditto_store": 524_288,
        },
        "connections_by_transport": {},
        "big_peer_connection_history": [],
        "logs_config": {"enabled": True, "minimum_level": "INFO"},
    }
    document.update(fields)
    return document


@dataclass
class Answer:
    status: int
    headers: Any
    body: bytes

    @property
    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def error_code(self) -> str:
        assert self.headers["Content-Type"].startswith("application/json"), self.headers
        error = self.json["error"]
        assert isinstance(error["message"], str)
        assert error["message"]
        return error["code"]


class BigPeerClient:
    """Talks to one service the way devices (signed writes) and dashboards (admin reads) do."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url

    async def request(
        self, method: str, path: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> Answer:
        async with self.session.request(
            method, self.url + path, data=data, headers=headers or {}
        ) as response:
            return Answer(response.status, response.headers, await response.read())

    async def write_body(
        self,
        device: Identity,
        body: bytes,
        *,
        token: str | None = DEVICE_TOKEN,
        signed_headers: dict[str, str] | None = None,
    ) -> Answer:
        headers = dict(signed_headers or device.request_headers("POST", WRITE_PATH, body))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return await self.request("POST", WRITE_PATH, data=body, headers=headers)

    async def write(self, device: Identity, documents: list[dict[str, Any]], **kwargs: Any) -> Answer:
        return await self.write_body(device, orjson.dumps({"documents": documents}), **kwargs)

    async def read(self, path: str, *, token: str | None = ADMIN_TOKEN) -> Answer:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        return await self.request("GET", path, headers=headers)

    async def history(self, device: Identity, query: str = "") -> Answer:
        return await self.read(f"/api/v1/devices/{device.peer_key}/history{query}")


async def raw_request(url: str, data: bytes, *, timeout: float = 10.0) -> Answer:
    """Send ``data`` as is (head and body, however malformed) and read one response.

    Closes the connection after the response, so a lying ``Content-Length`` never
    leaves the server waiting for bytes that will not come.
    """
    answer = await raw_exchange(url, data, timeout=timeout)
    assert answer is not None, "the service closed the connection without an answer"
    return answer


async def raw_exchange(url: str, data: bytes, *, timeout: float = 10.0) -> Answer | None:
    """`raw_request`, or None when the service closes the connection without answering."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        async with asyncio.timeout(timeout):
            with contextlib.suppress(ConnectionError):  # it may close before reading everything
                writer.write(data)
                await writer.drain()
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
            status_line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = CIMultiDict(
                line.split(": ", 1)
                for line in header_lines
                if line  # type: ignore[misc]
            )
            body = await reader.readexactly(int(headers.get("Content-Length", "0")))
            return Answer(int(status_line.split(" ")[1]), headers, body)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request_head(path: str, headers: dict[str, str], method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def write_across_shutdown(
    running: BigPeerProcess, device: Identity, body: bytes
) -> tuple[bytes, bytes]:
    """Send a write's head, stop the service, then its body: the answer's head and body.

    The write asks for ``100 Continue``: once that arrives its handler runs and waits for
    the body, so the request is in flight when SIGTERM comes. The body is sent only once
    the service refuses new connections (it is shutting down), which is when an honest
    drain must still finish it.
    """
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    headers = {
        **device.request_headers("POST", WRITE_PATH, body),
        "Authorization": f"Bearer {DEVICE_TOKEN}",
        "Content-Length": str(len(body)),
        "Expect": "100-continue",
    }
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(request_head(WRITE_PATH, headers))
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100")
        running.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        while True:
            try:
                _, probe = await asyncio.open_connection(host, int(port))
            except ConnectionRefusedError:
                break
            probe.close()
            assert time.monotonic() < deadline, "the service kept accepting connections after SIGTERM"
            await asyncio.sleep(0.02)
        writer.write(body)
        head = await reader.readuntil(b"\r\n\r\n")
        return head, await reader.read()
    finally:
        writer.close()


def suite_conftest(config: Any, test_file: str) -> Any:
    """The conftest module of a test file's own suite (reliability, soak...), for its counts.

    Every suite's conftest.py is a module named ``conftest``, and ``sys.modules`` holds
    whichever was imported last; pytest keeps each one under its path.
    """
    path = Path(test_file).absolute().with_name("conftest.py")
    module = config.pluginmanager.get_plugin(str(path))
    assert module is not None, f"pytest has not loaded {path}"
    return module
