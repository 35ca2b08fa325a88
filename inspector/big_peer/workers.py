"""``--workers N``: N processes serve one port, watched by a supervisor.

One Big Peer process runs one event loop on one core; with ``--workers N`` the
command's process becomes a supervisor that serves nothing itself:

* **One port for all.** The supervisor binds the listening sockets once, exactly as
  a single Big Peer would (`connections.listening_sockets`: every address of the
  host, ``--port 0`` a real port), and each worker accepts on those same sockets
  (`connections.Listener.adopt`). The kernel hands each new connection to one of
  the workers waiting on them. The supervisor keeps the sockets open, so
  connections that arrive while a worker restarts wait in the queue for the
  others instead of being refused. (``SO_REUSEPORT`` sockets of each worker's own
  would split ``--port 0`` into N ports, and lose the connections queued on the
  socket of a worker that dies.)
* **Workers are fresh interpreters**, started with `subprocess` as
  ``python -m inspector.big_peer.workers NUMBER FDS``; the sockets are passed as
  file descriptors (``pass_fds``), the configuration (tokens included, which must
  not show on a command line) is pickled to the worker's stdin. No fork of a
  running event loop, threads or database connection, and nothing of
  multiprocessing's machinery (its socket sharing needs a server thread in the
  parent): POSIX only, which is what the service runs on.
* **Each worker is today's `service.serve`**, with its own storage (its own
  database connections: one pool per process) and its own bound on connections:
  ``--max-connections`` and ``--idle-timeout`` apply to each worker, so N workers
  hold up to N times ``--max-connections``.
* **Ready means serving.** A worker prints the same ``listening on`` line a single
  Big Peer prints, into a pipe the supervisor reads; the supervisor prints its own
  once every worker has. The first worker starts alone, so that it alone creates or
  migrates the database (SQLite's migration races when processes open a new file
  at once); the others start together after it.
* **Failures.** A worker that cannot start stops the whole service, exit code 1;
  its own log line says why. A worker that dies later (a crash, ``kill -9``) is
  logged in one line and replaced, after a pause that doubles with each death in
  quick succession; a replacement that cannot start is retried the same way. While
  another worker serves, that goes on for as long as it takes (a database that is
  away comes back; the serving workers answer 503 meanwhile); with none serving,
  the supervisor gives up after `_MAX_START_FAILURES` in a row (exit code 1). The
  connections the dead worker had accepted are lost; the others are not affected.
* **Stopping.** SIGTERM/SIGINT to the supervisor closes its sockets and passes the
  signal on to every worker, which drains as a single Big Peer does; the
  supervisor exits 0 once all have stopped, or 1 if it had to kill one that took
  longer than ``--shutdown-timeout`` plus `_SHUTDOWN_MARGIN`. Workers run in a
  process group of their own, so a Ctrl-C at a terminal reaches them once, from
  the supervisor; a worker whose supervisor is gone (its stdin closes) stops too.
* **Logs.** Workers log to the same stderr, each line tagged ``[worker K]``; the
  supervisor's lines about a worker name it the same way (``worker K``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from inspector.big_peer.backends import describe_database
from inspector.big_peer.config import BigPeerConfig
from inspector.big_peer.connections import listening_sockets
from inspector.big_peer.service import configure_logging, serve, tune_garbage_collection, url_host

__all__ = ["supervise"]

_log = logging.getLogger("inspector.big_peer")

_READY_PREFIX = b"listening on "
# A worker that served this long before dying was not crash-looping: its replacement waits the least.
_STABLE_SECONDS = 30.0
_FIRST_RESTART_DELAY = 0.1
_MAX_RESTART_DELAY = 10.0
# Replacements of one worker that failed to start, in a row, before the supervisor gives up.
_MAX_START_FAILURES = 5
# Beyond --shutdown-timeout: aiohttp's own cut-off for what outlived the drain, closing the database.
_SHUTDOWN_MARGIN = 5.0
# How a worker ends when it was told to stop: drained (0), or stopped before it had set up.
_CLEAN_STOPS = {0, 130, -signal.SIGTERM, -signal.SIGINT}


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


@dataclass(slots=True)
class _Worker:
    number: int
    process: asyncio.subprocess.Process

    @property
    def name(self) -> str:
        return f"worker {self.number} (pid {self.process.pid})"


class _Supervisor:
    """Starts the workers, replaces the ones that die, and stops them all on a signal."""

    def __init__(self, config: BigPeerConfig, sockets: list[socket.socket]) -> None:
        self._config = config
        self._sockets = sockets
        self._loop = asyncio.get_running_loop()
        self._workers: dict[int, _Worker] = {}
        self._serving_now: set[int] = set()
        """Numbers of the workers serving now (ready, not ended)."""
        self._keepers: list[asyncio.Task[None]] = []
        self._ending = asyncio.Event()
        """Set on a signal, or when the service cannot go on: no worker starts from then on."""
        self._stop_signal = signal.SIGTERM
        self._exit_code = 0

    async def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            if await self._start():
                host, port = self._sockets[0].getsockname()[:2]
                print(f"listening on http://{url_host(host)}:{port}", flush=True)
                _log.info(
                    "serving %s on http://%s:%s with %d workers (each: at most %d connections, "
                    "idle timeout %g s)",
                    describe_database(self._config),
                    url_host(host),
                    port,
                    self._config.workers,
                    self._config.max_connections,
                    self._config.idle_timeout,
                )
                await self._ending.wait()
            await self._stop()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._loop.remove_signal_handler(sig)
        _log.info("stopped; every worker has stopped")
        return self._exit_code

    def _on_signal(self, sig: signal.Signals) -> None:
        if self._ending.is_set():
            _log.info("%s: already shutting down", sig.name)
            return
        _log.info("%s: shutting down %d workers", sig.name, len(self._workers))
        self._stop_signal = sig
        self._ending.set()

    def _fail(self, reason: str) -> None:
        """The service cannot go on: stop it, exit code 1."""
        if not self._ending.is_set():
            _log.error("%s; stopping the other workers", reason)
            self._exit_code = 1
            self._ending.set()

    # --- starting -------------------------------------------------------------------------------

    async def _start(self) -> bool:
        """Whether every worker got ready (False: one could not start, or a signal came first)."""
        first = [self._keep(1)]
        if not await self._ready(first):
            return False
        return await self._ready([self._keep(number) for number in range(2, self._config.workers + 1)])

    def _keep(self, number: int) -> asyncio.Future[bool]:
        """Run worker ``number``, replacing it whenever it dies; the future says if its first start worked."""
        ready: asyncio.Future[bool] = self._loop.create_future()
        self._keepers.append(self._loop.create_task(self._keep_running(number, ready)))
        return ready

    async def _ready(self, started: list[asyncio.Future[bool]]) -> bool:
        ending: asyncio.Future[Any] = self._loop.create_task(self._ending.wait())
        all_ready: asyncio.Future[Any] = asyncio.gather(*started)
        try:
            await asyncio.wait([all_ready, ending], return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
        return not self._ending.is_set() and all(await asyncio.gather(*started))

    async def _spawn(self, number: int) -> _Worker | None:
        fds = [sock.fileno() for sock in self._sockets]
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                __name__,
                str(number),
                ",".join(map(str, fds)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                pass_fds=fds,
                process_group=0,
            )
        except OSError as exc:
            _log.error("cannot start worker %d: %s", number, exc)
            return None
        worker = self._workers[number] = _Worker(number, process)
        assert process.stdin is not None
        # The configuration, then nothing: the worker stops when this pipe closes (the supervisor is gone).
        process.stdin.write(pickle.dumps(self._config))
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        if self._ending.is_set():
            # Told to stop while it was starting: it gets the signal the others got.
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(self._stop_signal)
        return worker

    async def _serving(self, worker: _Worker) -> bool:
        """Wait until the worker says it serves (True) or ends first (False)."""
        assert worker.process.stdout is not None
        try:
            line = await worker.process.stdout.readline()
        except (ValueError, ConnectionError):  # a line past the reader's limit, or a broken pipe
            return False
        return line.startswith(_READY_PREFIX)

    async def _keep_running(self, number: int, ready: asyncio.Future[bool]) -> None:
        start_failures = 0
        quick_deaths = 0
        while not self._ending.is_set():
            started_at = self._loop.time()
            worker = await self._spawn(number)
            serving = worker is not None and await self._serving(worker)
            if serving:
                assert worker is not None
                start_failures = 0
                self._serving_now.add(number)
                _log.info("%s is serving", worker.name)
                if not ready.done():
                    ready.set_result(True)
            if worker is not None:
                code = await worker.process.wait()
                del self._workers[number]
                self._serving_now.discard(number)
                assert worker.process.stdin is not None
                worker.process.stdin.close()
                if self._ending.is_set():
                    if code not in _CLEAN_STOPS:
                        _log.error("%s %s while stopping", worker.name, _describe_exit(code))
                        self._exit_code = 1
                    return
                what = f"{worker.name} {_describe_exit(code)}"
                if not serving:
                    what += " before it was ready"
            else:
                what = f"worker {number} could not be started"
            if not serving:
                start_failures += 1
                if not ready.done():
                    self._fail(f"{what}: the service cannot start")
                    ready.set_result(False)
                    return
                # While another worker serves, the service is up: a replacement that cannot
                # start (its database away, say) is tried again for as long as it takes, every
                # _MAX_RESTART_DELAY at most. With none serving the service is down: give up.
                if start_failures >= _MAX_START_FAILURES and not self._serving_now:
                    self._fail(f"{what}, {start_failures} times in a row: giving up")
                    return
            if self._loop.time() - started_at >= _STABLE_SECONDS:
                quick_deaths = 0
            delay = min(_MAX_RESTART_DELAY, _FIRST_RESTART_DELAY * 2**quick_deaths)
            quick_deaths += 1
            if serving:
                _log.warning("%s; starting another in %g s", what, delay)
            elif self._serving_now:
                _log.warning(
                    "%s (try %d; the other workers serve meanwhile); trying again in %g s",
                    what,
                    start_failures,
                    delay,
                )
            else:
                _log.warning(
                    "%s (%d of %d tries); trying again in %g s",
                    what,
                    start_failures,
                    _MAX_START_FAILURES,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ending.wait(), delay)

    # --- stopping -------------------------------------------------------------------------------

    async def _stop(self) -> None:
        """Pass the stop signal on to every worker, and wait (within limits) for all to end."""
        # New connections are refused once the workers stopped accepting, as with one process.
        for sock in self._sockets:
            sock.close()
        for worker in self._workers.values():
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(self._stop_signal)
        if not self._keepers:
            return
        limit = self._config.shutdown_timeout + _SHUTDOWN_MARGIN
        _, late = await asyncio.wait(self._keepers, timeout=limit)
        if late:
            for worker in list(self._workers.values()):
                _log.error("%s did not stop within %g s; killed it", worker.name, limit)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
            self._exit_code = 1
            await asyncio.wait(late)
        for keeper in self._keepers:
            keeper.result()  # a bug in the supervisor shows, rather than passing for a clean stop


async def supervise(config: BigPeerConfig) -> int:
    """Serve with ``config.workers`` worker processes until SIGTERM/SIGINT; return the exit code."""
    if os.name != "posix":
        _log.error("--workers needs a POSIX system (it passes the listening sockets to the workers)")
        return 1
    try:
        sockets = await listening_sockets(config.host, config.port)
    except OSError as exc:
        _log.error("cannot listen on %s port %s: %s", config.host, config.port, exc)
        return 1
    try:
        return await _Supervisor(config, sockets).run()
    finally:
        for sock in sockets:
            sock.close()


# --- a worker process -----------------------------------------------------------------------------


async def _serve_as_worker(config: BigPeerConfig, sockets: list[socket.socket]) -> int:
    loop = asyncio.get_running_loop()

    def stdin_readable() -> None:
        if not os.read(sys.stdin.fileno(), 4096):
            loop.remove_reader(sys.stdin.fileno())
            _log.warning("the supervisor is gone; shutting down")
            signal.raise_signal(signal.SIGTERM)

    loop.add_reader(sys.stdin.fileno(), stdin_readable)
    return await serve(config, sockets)


def _run_worker(argv: Sequence[str]) -> int:
    """A worker's process: ``NUMBER FD,FD...`` on its command line, the configuration on stdin."""
    try:
        number, fds = int(argv[0]), [int(fd) for fd in argv[1].split(",")]
        config = pickle.load(sys.stdin.buffer)
    except (IndexError, ValueError, EOFError, pickle.UnpicklingError):
        print("a worker of inspector-big-peer --workers N, not to be started by hand", file=sys.stderr)
        return 2
    assert isinstance(config, BigPeerConfig)
    configure_logging(config, worker=number)
    tune_garbage_collection()
    sockets = [socket.socket(fileno=fd) for fd in fds]
    try:
        return asyncio.run(_serve_as_worker(config, sockets))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(_run_worker(sys.argv[1:]))
