"""Stalled and surplus connections to the real Big Peer service, on real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import aiohttp
import psutil
import pytest
from big_peer_harness import (
    DEVICE_TOKEN,
    WRITE_PATH,
    BigPeerClient,
    BigPeerProcess,
    request_head,
    small_peer_info,
    timestamps,
)

from inspector.big_peer.connections import LogThrottle

pytestmark = pytest.mark.timeout(90)

# Small enough to keep the tests quick, large enough for a loaded machine to send a request in time.
IDLE = "0.5"
# Long enough that nothing times out while a test holds connections open on purpose.
PATIENT = "60"


def address(running: BigPeerProcess) -> tuple[str, int]:
    host, port = running.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


@contextlib.asynccontextmanager
async def raw_connection(
    running: BigPeerProcess,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection(*address(running))
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_to_the_end(reader: asyncio.StreamReader, timeout: float = 30.0) -> bytes:
    """Everything until the service closes the connection (a reset counts as closing)."""
    received = b""
    async with asyncio.timeout(timeout):
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(65536):
                received += chunk
    return received


async def read_response(reader: asyncio.StreamReader) -> bytes:
    """One whole response (head and body) from a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    (length,) = [
        line.split(b": ")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    ]
    return head + await reader.readexactly(int(length))


def open_connections(running: BigPeerProcess) -> int:
    """Client connections the service process holds open, whatever their state (not its listening socket).

    Only those to its port: on PostgreSQL it also holds its database connections.
    """
    port = int(running.url.rsplit(":", 1)[1])
    connections = psutil.Process(running.process.pid).net_connections("tcp")
    return sum(
        1
        for connection in connections
        if connection.status != psutil.CONN_LISTEN and connection.laddr and connection.laddr.port == port
    )


async def until(predicate, timeout: float = 30.0) -> None:
    """Wait for a condition of another process (polled: nothing here can signal it)."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def quiet_big_peer(big_peer_factory, *args: str) -> BigPeerProcess:
    """A service once the connection that found it healthy has closed, so a test has every slot."""
    running = big_peer_factory(extra_args=list(args))
    await until(lambda: open_connections(running) == 0)
    return running


async def healthz(running: BigPeerProcess) -> int:
    async with aiohttp.ClientSession() as session, session.get(running.url + "/healthz") as response:
        return response.status


async def test_a_connection_that_sends_nothing_is_closed(big_peer_factory) -> None:
    running = big_peer_factory(extra_args=["--idle-timeout", IDLE])

    async with raw_connection(running) as (reader, _):
        assert await read_to_the_end(reader) == b""

    assert await healthz(running) == 200
    assert "sent no complete request" in running.log()


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(big_peer_factory) -> None:
    running = big_peer_factory(extra_args=["--idle-timeout", IDLE])
    head = request_head("/healthz", {"X-Padding": "p" * 200}, method="GET")
    sent = 0

    async with raw_connection(running) as (reader, writer):
        # Each byte comes well within the timeout; the head as a whole would take 10 s.
        with contextlib.suppress(ConnectionError):
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                if reader.at_eof():
                    break
                await asyncio.sleep(0.04)
        answer = await read_to_the_end(reader)

    assert sent < len(head)
    assert answer == b""


async def test_a_body_that_stops_arriving_is_answered_408_and_closed(big_peer_factory) -> None:
    running = big_peer_factory(extra_args=["--idle-timeout", IDLE])
    head = request_head(WRITE_PATH, {"Authorization": f"Bearer {DEVICE_TOKEN}", "Content-Length": "1000"})

    async with raw_connection(running) as (reader, writer):
        writer.write(head + b'{"documents": [')
        await writer.drain()
        answer = await read_to_the_end(reader)

    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert b'"code":"body_timeout"' in rest
    assert b"Connection: close" in rest


async def test_a_body_trickling_in_is_cut_off_although_bytes_keep_coming(big_peer_factory) -> None:
    running = big_peer_factory(extra_args=["--idle-timeout", IDLE])
    head = request_head(WRITE_PATH, {"Authorization": f"Bearer {DEVICE_TOKEN}", "Content-Length": "100000"})

    async with raw_connection(running) as (reader, writer):
        writer.write(head)
        with contextlib.suppress(ConnectionError):
            for _ in range(1000):  # 100 s at this pace: far longer than the body may take
                if reader.at_eof() or reader._buffer:  # an answer came
                    break
                writer.write(b" ")
                await writer.drain()
                await asyncio.sleep(0.1)
        answer = await read_to_the_end(reader)

    assert answer.startswith(b"HTTP/1.1 408")


async def test_an_idle_keep_alive_connection_is_closed_after_its_request(big_peer_factory) -> None:
    running = big_peer_factory(extra_args=["--idle-timeout", IDLE])

    async with raw_connection(running) as (reader, writer):
        writer.write(request_head("/healthz", {}, method="GET"))
        await writer.drain()
        answer = await read_to_the_end(reader)

    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(b'{"status":"ok"}')


async def test_a_client_that_stops_reading_its_response_is_cut_off(big_peer_factory, make_device) -> None:
    running = big_peer_factory(extra_args=["--idle-timeout", IDLE])
    session = aiohttp.ClientSession()
    client = BigPeerClient(session, running.url)
    device = make_device()
    metadata = {"blob": "m" * 120_000}
    # 14 MB of history: more than the socket buffers of both ends hold.
    moments = timestamps(120)
    try:
        for first in range(0, 120, 6):
            batch = [
                small_peer_info(device.peer_key, at, metadata=metadata) for at in moments[first : first + 6]
            ]
            assert (await client.write(device, batch)).status == 200
    finally:
        await session.close()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, address(running))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        path = f"/api/v1/devices/{device.peer_key}/history?limit=1000"
        writer.write(request_head(path, {"Authorization": "Bearer admin-token-for-tests"}, method="GET"))
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")  # the service is answering
        # Read no more: once the socket buffers are full nothing gets out, and the service gives up.
        await until(lambda: open_connections(running) == 0)
        body = await read_to_the_end(reader)
    finally:
        writer.close()

    assert head.startswith(b"HTTP/1.1 200")
    (length,) = [line.split(b": ")[1] for line in head.split(b"\r\n") if line.startswith(b"Content-Length")]
    assert len(body) < int(length), "the response was cut off"
    assert "stopped reading its response" in running.log()


async def test_at_the_bound_a_new_connection_takes_the_place_of_the_oldest_silent_one(
    big_peer_factory,
) -> None:
    running = await quiet_big_peer(big_peer_factory, "--idle-timeout", PATIENT, "--max-connections", "3")
    async with contextlib.AsyncExitStack() as stack:
        idle = [await stack.enter_async_context(raw_connection(running)) for _ in range(3)]
        await until(lambda: open_connections(running) == 3)

        assert await healthz(running) == 200

        oldest_reader, _ = idle[0]
        assert await read_to_the_end(oldest_reader) == b""
        assert open_connections(running) <= 3
        assert not idle[2][0].at_eof()


async def test_when_every_connection_is_being_served_a_new_one_is_refused_with_503(big_peer_factory) -> None:
    running = await quiet_big_peer(big_peer_factory, "--idle-timeout", PATIENT, "--max-connections", "3")
    head = request_head(WRITE_PATH, {"Authorization": f"Bearer {DEVICE_TOKEN}", "Content-Length": "20"})
    async with contextlib.AsyncExitStack() as stack:
        busy = [await stack.enter_async_context(raw_connection(running)) for _ in range(2)]
        for _, writer in busy:
            writer.write(head + b'{"documents"')  # the handler now waits for the rest of the body
            await writer.drain()
        served_reader, served_writer = await stack.enter_async_context(raw_connection(running))
        served_writer.write(request_head("/healthz", {}, method="GET"))
        await read_response(served_reader)
        await until(lambda: open_connections(running) == 3)

        async with raw_connection(running) as (reader, _):
            refused = await read_to_the_end(reader)

        reader, writer = busy[0]
        writer.write(b": [1]}\r\n\r\n"[:8])
        await writer.drain()
        finished = await reader.readuntil(b"\r\n\r\n")

        served_writer.write(request_head("/healthz", {}, method="GET"))
        served_again = await served_reader.read(100000)
        print("SERVED", served_again)
        print(running.log())

    assert refused.startswith(b"HTTP/1.1 503")
    assert b'"code":"too_many_connections"' in refused
    assert finished.startswith(b"HTTP/1.1 400"), "the busy connections were served on"
    assert served_again.startswith(b"HTTP/1.1 200"), "the idle keep-alive connection was kept"
    await until(lambda: open_connections(running) == 0)
    assert await healthz(running) == 200


async def test_a_flood_of_connections_leaves_a_polling_dashboard_served(big_peer_factory) -> None:
    running = await quiet_big_peer(big_peer_factory, "--idle-timeout", PATIENT, "--max-connections", "10")
    statuses: list[int] = []
    flooding = True

    async def poll() -> None:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector) as session:
            while flooding:
                async with session.get(running.url + "/healthz") as response:
                    statuses.append(response.status)

    poller = asyncio.ensure_future(poll())
    await until(lambda: len(statuses) > 0)  # its connection is served, not merely open
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(60):
            await stack.enter_async_context(raw_connection(running))
        # Evicted connections close on the service's next turn of its loop.
        await until(lambda: open_connections(running) <= 10)
        await until(lambda: len(statuses) > 20)
        flooding = False
        await poller

    assert set(statuses) == {200}


async def test_past_the_open_file_limit_the_service_keeps_answering_and_logs_little(big_peer_factory) -> None:
    # A bound above what the open-file limit allows: accept() itself fails with EMFILE.
    running = big_peer_factory(
        extra_args=["--idle-timeout", PATIENT, "--max-connections", "5000"], open_files=64
    )
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(200):
            await stack.enter_async_context(raw_connection(running))

        assert await healthz(running) == 200

    log = running.log()
    assert 1 <= log.count("cannot accept a connection") <= 3, log
    assert len(log) < 20_000


def test_the_log_throttle_lets_one_line_a_kind_through_per_interval() -> None:
    now = [0.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])

    admitted = [throttle.admit("accept") for _ in range(5)]
    other = throttle.admit("refused")
    now[0] = 10.0
    later = throttle.admit("accept")

    assert admitted == [0, None, None, None, None]
    assert other == 0
    assert later == 4


def test_the_log_throttle_reports_what_it_held_back(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    now = [0.0]
    throttle = LogThrottle(10.0, clock=lambda: now[0])
    logger = logging.getLogger("test-throttle")
    for _ in range(3):
        throttle.log(logger, logging.WARNING, "refused", "refused a connection")
    now[0] = 11.0

    throttle.flush(logger, logging.WARNING)

    assert [r.getMessage() for r in caplog.records] == [
        "refused a connection",
        "refused: 2 more in the last 10 s",
    ]


@pytest.mark.parametrize(
    "args",
    [
        ["--idle-timeout", "0"],
        ["--idle-timeout", "-1"],
        ["--idle-timeout", "nan"],
        ["--max-connections", "0"],
    ],
)
def test_unusable_connection_options_exit_with_code_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from inspector.big_peer.config import parse_config

    with pytest.raises(SystemExit) as caught:
        parse_config(args, {"INSPECTOR_DEVICE_TOKEN": "d", "INSPECTOR_ADMIN_TOKEN": "a"})

    assert caught.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_connection_defaults_follow_the_contract() -> None:
    from inspector.big_peer.config import default_max_connections, parse_config

    config = parse_config([], {"INSPECTOR_DEVICE_TOKEN": "d", "INSPECTOR_ADMIN_TOKEN": "a"})

    assert config.idle_timeout == 60.0
    assert config.max_connections == default_max_connections()
    assert 16 <= config.max_connections <= 10_000


async def test_write_bodies_held_in_memory_are_bounded(big_peer_factory, make_device) -> None:
    # Bodies of up to 100 kB: at most 800 kB of them in memory at once.
    running = await quiet_big_peer(big_peer_factory, "--idle-timeout", PATIENT, "--max-body-bytes", "100000")
    head = request_head(WRITE_PATH, {"Authorization": f"Bearer {DEVICE_TOKEN}", "Content-Length": "100000"})
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(8):  # 792 kB held by bodies that do not finish
            _, writer = await stack.enter_async_context(raw_connection(running))
            writer.write(head + b" " * 99_000)
            await writer.drain()
        refused = b""
        for _ in range(100):  # until the service has read what the others sent
            async with raw_connection(running) as (reader, writer):
                writer.write(head + b" " * 100_000)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
                refused = await read_to_the_end(reader)
            if refused.startswith(b"HTTP/1.1 503"):
                break

    assert refused.startswith(b"HTTP/1.1 503"), refused[:200]
    assert b'"code":"busy"' in refused
    assert b"Retry-After: 1" in refused
    await until(lambda: open_connections(running) == 0)
    device = make_device()
    async with aiohttp.ClientSession() as session:
        answer = await BigPeerClient(session, running.url).write(
            device, [small_peer_info(device.peer_key, timestamps(1)[0])]
        )
    assert answer.status == 200, "once they are gone, writes are served again"
