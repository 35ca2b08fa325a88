"""One Big Peer process: the HTTP app over its storage, behind a `connections.Listener`.

`serve` is the whole service when it runs as one process (``--workers 1``), and
each worker's when it runs as several (`workers`). ``__main__`` is the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from inspector.big_peer.app import IN_FLIGHT, JsonErrorsRequestHandler, create_app
from inspector.big_peer.backends import StorageOpenError, describe_database, open_storage
from inspector.big_peer.config import BigPeerConfig
from inspector.big_peer.connections import DEFAULT_ACCEPT_BATCH, Listener, LogThrottle

__all__ = ["configure_logging", "serve", "tune_garbage_collection", "url_host"]

_log = logging.getLogger("inspector.big_peer")


def _install_signal_handlers(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Callable[[], None]:
    def request_stop(signal_name: str) -> None:
        if stop.is_set():
            _log.info("%s: already shutting down", signal_name)
        else:
            _log.info("%s: shutting down", signal_name)
            stop.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    try:
        for sig in signals:
            loop.add_signal_handler(sig, request_stop, sig.name)
    except NotImplementedError:  # Windows has no add_signal_handler.
        previous = {sig: signal.getsignal(sig) for sig in signals}

        def from_signal(number: int, _frame: object) -> None:
            loop.call_soon_threadsafe(request_stop, signal.Signals(number).name)

        for sig in signals:
            signal.signal(sig, from_signal)

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def remove() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return remove


class _ClientErrorsWithoutTraceback(logging.Filter):
    """Logs requests the HTTP parser refused (garbage, oversized headers) as one line, not a traceback.

    aiohttp logs them as errors with a traceback; they are the client's fault, and
    anyone can send them, so they must not flood the log or look like faults: of each
    kind, one line per 10 s at most, saying how many were left out.
    """

    def __init__(self) -> None:
        super().__init__()
        self._throttle = LogThrottle()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError) and exc.code < 500:
            held = self._throttle.admit(f"{exc.code} {type(exc).__name__}")
            if held is None:
                return False
            first_line = exc.message.splitlines()[0] if exc.message else ""
            record.msg = f"{record.getMessage()}: {exc.code} {first_line}{self._throttle.held_back(held)}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def url_host(host: str) -> str:
    """``host`` as it goes into a URL (IPv6 addresses in brackets)."""

    return f"[{host}]" if ":" in host else host


async def serve(config: BigPeerConfig, sockets: Sequence[socket.socket] | None = None) -> int:
    """Run the service until SIGTERM/SIGINT; return the process exit code.

    It listens on ``config.host`` and ``config.port``, or, in a worker of
    ``--workers``, accepts on ``sockets`` its supervisor bound.
    """
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(_install_signal_handlers(asyncio.get_running_loop(), stop))
        try:
            storage = await open_storage(config)
        except StorageOpenError as exc:
            _log.error("%s", exc)
            return 1
        stack.push_async_callback(storage.close)
        protocol_options: dict[str, Any] = {
            "access_log": logging.getLogger("aiohttp.access") if config.access_log else None,
            # Bodies are read as sent: no peer compresses them, and decoding lets a small body expand.
            "auto_decompress": False,
        }
        runner = web.AppRunner(
            create_app(config, storage),
            handle_signals=False,
            # Only requests that outlived the drain below are left when aiohttp shuts down.
            shutdown_timeout=1.0,
            **protocol_options,
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        server, loop = runner.server, asyncio.get_running_loop()
        assert server is not None
        listener = Listener(
            lambda: JsonErrorsRequestHandler(server, loop=loop, **protocol_options),
            max_connections=config.max_connections,
            idle_timeout=config.idle_timeout,
            # Sockets handed over by a supervisor are shared: take one connection per wakeup.
            accept_batch=1 if sockets is not None else DEFAULT_ACCEPT_BATCH,
        )
        try:
            if sockets is None:
                await listener.start(config.host, config.port)
            else:
                listener.adopt(sockets)
        except OSError as exc:
            _log.error("cannot listen on %s port %s: %s", config.host, config.port, exc)
            return 1
        stack.push_async_callback(listener.close)
        host, port = listener.addresses[0]
        print(f"listening on http://{url_host(host)}:{port}", flush=True)
        _log.info(
            "serving %s on http://%s:%s (at most %d connections, idle timeout %g s)",
            describe_database(config),
            url_host(host),
            port,
            config.max_connections,
            config.idle_timeout,
        )
        await stop.wait()
        await listener.stop_accepting()
        in_flight = runner.app[IN_FLIGHT]
        if not await in_flight.drain(config.shutdown_timeout):
            _log.warning(
                "%d requests still in flight after %s s; cutting them off",
                len(in_flight),
                config.shutdown_timeout,
            )
    _log.info("stopped; the database is closed")
    return 0


def tune_garbage_collection() -> None:
    """Collect cyclic garbage by the batch, not by the document.

    Parsing a write creates ~90 containers per document, all freed by reference
    counting; with the default threshold (700) a batch of 100 ran 14 young-generation
    collections over them and promoted the survivors into ever larger older ones.
    Measured with the ingest benchmark, the service's CPU per document went from 36-38
    to 29-30 us for batches of 100, and from 31 to 27-28 us for batches of 500 (the
    service before this round's checks used 28-29 and 24-25 us). Startup's objects
    (modules, the app) are frozen so that full collections skip them.
    """
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


def configure_logging(config: BigPeerConfig, worker: int | None = None) -> None:
    """Log to stderr at the configured level; a worker's lines say which worker wrote them."""
    origin = "" if worker is None else f"[worker {worker}] "
    logging.basicConfig(
        level=config.log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {origin}%(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.server").addFilter(_ClientErrorsWithoutTraceback())
