"""Accepting connections: how many may be open, and how long one may stall.

`Listener` replaces asyncio's own accept loop for the service so that no client
can exhaust it:

* **A bound on open connections** (``--max-connections``). At the bound a new
  connection takes the place of the oldest one that has not sent a complete
  request yet (what a flood of silent connections is made of); if there is none,
  the new one is answered ``503 too_many_connections`` and closed at once.
  Connections already served are never closed to make room: a dashboard polling
  over a keep-alive connection keeps being served through any flood. The
  default bound keeps clients below the file descriptor limit; if it is reached
  anyway (``EMFILE``), an unserved connection is closed to free one, or
  accepting pauses briefly instead of spinning.
* **A deadline for stalled connections** (``--idle-timeout``): a connection that
  has not completed a request head within the timeout of opening or of its
  previous request ending is closed; so is one that stops reading its response
  for that long. A body that stops arriving is the handler's to time out (it
  answers ``408``), as only the handler knows it is reading one.
* **Quiet logs under attack**: repeated events (accept errors, refused or cut
  off connections) are logged once, then at most once per interval with how many
  were left out (`LogThrottle`).

The HTTP protocol (aiohttp's) sees the real transport; `track_requests` is the
middleware that tells a connection when it is busy with a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

__all__ = ["DEFAULT_ACCEPT_BATCH", "Listener", "LogThrottle", "listening_sockets", "track_requests"]

_log = logging.getLogger("inspector.big_peer")

_ACCEPT_BACKLOG = 1024
DEFAULT_ACCEPT_BATCH = 128
# Errors of accept() that mean "out of resources": the connection stays queued for later.
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
_ACCEPT_RETRY_SECONDS = 0.1
# Sockets shared by workers: after taking a connection while serving others, a worker leaves
# the next ones to its siblings this long (at most 1,000 new connections a second each then).
_SHARED_ACCEPT_PAUSE = 0.001
# How many of the oldest unserved connections are looked at to find one to close for a new one.
_EVICTION_CANDIDATES = 16

_REFUSAL_BODY = (
    b'{"error":{"code":"too_many_connections","message":"the Big Peer holds as many connections as it '
    b'may and all of them are busy; retry in a moment"}}'
)
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


class LogThrottle:
    """Lets the first event of a kind through, then one per ``interval`` seconds, counting the rest."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def admit(self, kind: str) -> int | None:
        """None if this event should not be logged; else how many of its kind were held back before it."""
        now = self._clock()
        if now < self._next.get(kind, now):
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._next[kind] = now + self._interval
        return self._held.pop(kind, 0)

    def log(self, logger: logging.Logger, level: int, kind: str, message: str) -> None:
        """``message`` unless its kind was logged less than an interval ago (then it is counted)."""
        held = self.admit(kind)
        if held is not None:
            logger.log(level, "%s%s", message, self.held_back(held))

    def flush(self, logger: logging.Logger, level: int) -> None:
        """Log how many events of each kind were held back, for kinds whose interval has passed."""
        now = self._clock()
        for kind, held in list(self._held.items()):
            if now >= self._next.get(kind, now):
                del self._held[kind]
                self._next[kind] = now + self._interval
                logger.log(level, "%s: %d more in the last %g s", kind, held, self._interval)

    def held_back(self, count: int) -> str:
        """What to add to a line that `admit` let through after holding ``count`` back."""
        return f" (and {count} like it in the last {self._interval:g} s)" if count else ""


async def listening_sockets(host: str, port: int) -> list[socket.socket]:
    """Sockets listening on every address of ``host`` at ``port``; OSError if one cannot be used.

    Non-blocking, with ``SO_REUSEADDR`` (a restart need not wait for the old
    connections' TIME_WAIT) and IPv6 sockets IPv6-only (the IPv4 address has a
    socket of its own).
    """
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if os.name == "posix":
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPV6_V6ONLY"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(_ACCEPT_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class _Connection(asyncio.Protocol):
    """One client connection: passes everything to the HTTP protocol, and keeps what the sweep needs."""

    __slots__ = ("_inner", "busy", "idle_since", "listener", "transport", "unsent", "unsent_since")

    def __init__(self, inner: asyncio.Protocol, listener: Listener) -> None:
        self._inner = inner
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.busy = 0
        """Requests of this connection a handler is working on."""
        self.idle_since = 0.0
        """When it last became idle: opened, or its last request ended."""
        self.unsent = 0
        self.unsent_since = 0.0
        """The response bytes still buffered at the last sweep, and since when none got out."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.listener.connection_opened(self)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.listener.connection_closed(self)
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def track_requests(request: web.Request, handler: _Handler) -> web.StreamResponse:
    """Marks the request's connection busy while a handler works on it (no deadline runs then)."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if not isinstance(connection, _Connection):
        return await handler(request)
    connection.listener.request_started(connection)
    try:
        return await handler(request)
    finally:
        connection.listener.request_ended(connection)


class Listener:
    """Accepts connections for ``protocol_factory`` within the bound, and cuts off stalled ones."""

    def __init__(
        self,
        protocol_factory: Callable[[], asyncio.Protocol],
        *,
        max_connections: int,
        idle_timeout: float,
        log_interval: float = 10.0,
        accept_batch: int = DEFAULT_ACCEPT_BATCH,
    ) -> None:
        """``accept_batch``: connections taken per wakeup; 1 when processes share the sockets.

        With several workers on one listening socket the kernel wakes one of them per
        connection, but a worker that takes everything queued leaves the others idle: with
        128 per wakeup one of two workers served all 8 benchmark devices in some runs.
        """
        self._factory = protocol_factory
        self._accept_batch = accept_batch
        self._max = max_connections
        self._idle_timeout = idle_timeout
        self._open: set[_Connection] = set()
        # Connections that have not sent a complete request yet, oldest first: the ones to
        # close when a new one needs room (never one already served).
        self._unserved: OrderedDict[_Connection, None] = OrderedDict()
        self._sockets: list[socket.socket] = []
        self._connecting: set[asyncio.Task[None]] = set()
        # Accepted, and not yet open: counted against the bound too.
        self._starting = 0
        self._sweeper: asyncio.Task[None] | None = None
        self._throttle = LogThrottle(log_interval)
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        """Open client connections."""
        return len(self._open)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Host and port of each listening socket."""
        return [sock.getsockname()[:2] for sock in self._sockets]

    async def start(self, host: str, port: int) -> None:
        """Listen on every address of ``host`` (OSError if one cannot be used) and start accepting."""
        self.adopt(await listening_sockets(host, port))

    def adopt(self, sockets: Sequence[socket.socket]) -> None:
        """Start accepting on sockets that already listen (`listening_sockets`, maybe of another process).

        A worker of ``--workers`` accepts on the sockets its supervisor bound, so
        that every worker serves the one port; the Listener owns them from now on.
        """
        loop = self._loop = asyncio.get_running_loop()
        self._sockets = list(sockets)
        for sock in self._sockets:
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._accept, sock)
        self._sweeper = loop.create_task(self._sweep())

    async def stop_accepting(self) -> None:
        """Close the listening sockets; open connections are left to finish (the sweep goes on)."""
        self._close_sockets()
        await asyncio.gather(*self._connecting, return_exceptions=True)

    async def close(self) -> None:
        """Stop accepting and sweeping; what the throttle held back is logged."""
        await self.stop_accepting()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        self._throttle.flush(_log, logging.INFO)

    def _close_sockets(self) -> None:
        for sock in self._sockets:
            if self._loop is not None and sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []

    # --- accepting ------------------------------------------------------------------------------

    def _accept(self, sock: socket.socket) -> None:
        """The listening socket is readable: accept what is queued (a bounded batch, like asyncio)."""
        assert self._loop is not None
        for _ in range(self._accept_batch):
            try:
                client, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # the client gave up before being accepted: its problem only
                self._throttle.log(
                    _log,
                    logging.ERROR,
                    "accept",
                    f"cannot accept a connection: {exc.strerror} ({len(self._open)} open; "
                    "lower --max-connections below the open-file limit)",
                )
                if self._evict_unserved():
                    return  # its descriptor is closed before the loop calls this again
                # Nothing to close: the connection stays queued, and a pause beats spinning.
                self._loop.remove_reader(sock.fileno())
                self._loop.call_later(_ACCEPT_RETRY_SECONDS, self._resume_accepting, sock)
                return
            client.setblocking(False)
            if len(self._open) + self._starting >= self._max and not self._evict_unserved():
                self._refuse(client)
                continue
            self._starting += 1
            task = self._loop.create_task(self._connect(client))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
            if self._accept_batch == 1 and len(self._open) + self._starting > 1:
                # Sockets shared with other workers: one already serving steps back a moment,
                # so a worker that is idle takes the next connection.
                self._loop.remove_reader(sock.fileno())
                self._loop.call_later(_SHARED_ACCEPT_PAUSE, self._resume_accepting, sock)
                return

    def _resume_accepting(self, sock: socket.socket) -> None:
        if sock in self._sockets and self._loop is not None:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    async def _connect(self, client: socket.socket) -> None:
        assert self._loop is not None
        connection = _Connection(self._factory(), self)
        try:
            await self._loop.connect_accepted_socket(lambda: connection, client)
        except OSError:
            if connection.transport is None:
                self._starting -= 1
            client.close()

    def _evict_unserved(self) -> bool:
        """Close the oldest connection that sent no complete request yet; whether there was one."""
        for connection in list(self._unserved)[:_EVICTION_CANDIDATES]:
            transport = connection.transport
            if transport is not None and not transport.get_write_buffer_size():
                self._throttle.log(
                    _log,
                    logging.INFO,
                    "evicted",
                    f"closed a connection that sent no request in "
                    f"{self._now() - connection.idle_since:.1f} s to make room for a new one "
                    f"({self._max} are allowed)",
                )
                self._forget(connection)
                transport.close()
                return True
        return False

    def _refuse(self, client: socket.socket) -> None:
        self._throttle.log(
            _log,
            logging.WARNING,
            "refused",
            f"refused a connection: all {len(self._open)} open connections are being served "
            "(raise --max-connections if this is normal load)",
        )
        try:
            client.setblocking(False)
            # Read what already arrived, so closing sends the answer and not a reset.
            with contextlib.suppress(OSError):
                client.recv(65536)
            client.send(_REFUSAL)
        except OSError:
            pass
        finally:
            client.close()

    # --- the connections' states ----------------------------------------------------------------

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def connection_opened(self, connection: _Connection) -> None:
        self._starting -= 1
        connection.idle_since = connection.unsent_since = self._now()
        self._open.add(connection)
        self._unserved[connection] = None

    def connection_closed(self, connection: _Connection) -> None:
        self._forget(connection)

    def _forget(self, connection: _Connection) -> None:
        self._open.discard(connection)
        self._unserved.pop(connection, None)

    def request_started(self, connection: _Connection) -> None:
        connection.busy += 1
        self._unserved.pop(connection, None)

    def request_ended(self, connection: _Connection) -> None:
        connection.busy -= 1
        if connection.busy == 0:
            connection.idle_since = self._now()

    async def _sweep(self) -> None:
        """Every fraction of the timeout: close the connections that stalled."""
        interval = min(max(self._idle_timeout / 8, 0.01), 5.0)
        while True:
            await asyncio.sleep(interval)
            now = self._now()
            for connection in list(self._open):
                self._check(connection, now)
            self._throttle.flush(_log, logging.INFO)

    def _check(self, connection: _Connection, now: float) -> None:
        transport = connection.transport
        if transport is None or connection.busy:
            return
        unsent = transport.get_write_buffer_size()
        if unsent:
            # A response on its way counts as activity while any of it gets out.
            if unsent < connection.unsent or not connection.unsent:
                connection.unsent_since = now
            connection.unsent = unsent
            connection.idle_since = now
            if now - connection.unsent_since >= self._idle_timeout:
                self._cut_off(connection, transport, "stopped reading its response")
                transport.abort()  # what is buffered will never be read
            return
        connection.unsent = 0
        if now - connection.idle_since >= self._idle_timeout:
            self._cut_off(connection, transport, "sent no complete request")
            transport.close()

    def _cut_off(self, connection: _Connection, transport: asyncio.Transport, what: str) -> None:
        peer: Any = transport.get_extra_info("peername")
        where = f"{peer[0]} port {peer[1]}" if isinstance(peer, tuple) else "a client"
        self._throttle.log(
            _log,
            logging.INFO,
            f"stalled: {what}",
            f"closed the connection of {where}: it {what} for {self._idle_timeout:g} s",
        )
        self._forget(connection)
