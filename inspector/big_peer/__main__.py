"""``inspector-big-peer`` / ``python -m inspector.big_peer``: run the Big Peer until SIGTERM or SIGINT.

Once it accepts connections it prints exactly one line to stdout,
``listening on http://HOST:PORT`` (the real port when started with ``--port 0``),
and flushes it; logs go to stderr. On SIGTERM or SIGINT it stops accepting
connections, lets requests in flight finish (at most ``--shutdown-timeout``
seconds), closes the database and exits with code 0.

Exit codes: 0 after a signal, 1 if it cannot start (address in use, data
directory or database unusable), 2 for an unusable command line (missing
tokens included), 130 for an interrupt before it was set up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from inspector.big_peer.app import IN_FLIGHT, JsonErrorsRequestHandler, create_app
from inspector.big_peer.config import BigPeerConfig, parse_config
from inspector.big_peer.connections import Listener, LogThrottle
from inspector.big_peer.sqlite_storage import DATABASE_FILE, SQLiteStorage

__all__ = ["main", "serve"]

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
            more = f" (and {held} like it in the last 10 s)" if held else ""
            record.msg = f"{record.getMessage()}: {exc.code} {first_line}{more}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


async def serve(config: BigPeerConfig) -> int:
    """Run the service until SIGTERM/SIGINT; return the process exit code."""
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(_install_signal_handlers(asyncio.get_running_loop(), stop))
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            storage = await SQLiteStorage.open(config.data_dir / DATABASE_FILE)
        except (OSError, sqlite3.Error, RuntimeError) as exc:
            _log.error("cannot open the database in %s: %s", config.data_dir, exc)
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
        )
        try:
            await listener.start(config.host, config.port)
        except OSError as exc:
            _log.error("cannot listen on %s port %s: %s", config.host, config.port, exc)
            return 1
        stack.push_async_callback(listener.close)
        host, port = listener.addresses[0]
        print(f"listening on http://{_url_host(host)}:{port}", flush=True)
        _log.info(
            "serving %s on http://%s:%s (at most %d connections, idle timeout %g s)",
            config.data_dir / DATABASE_FILE,
            _url_host(host),
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


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    logging.basicConfig(
        level=config.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("aiohttp.server").addFilter(_ClientErrorsWithoutTraceback())
    try:
        return asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
