"""`Ditto`: one peer over one persistence directory, and the parts it wires together.

`Ditto` owns the directory lock, the identity, the `Store`, the `Collector`, the
`Replicator` (when a Big Peer is configured), the `EventHub` and one small executor
for reading the machine's facts; `SmallPeerInfo` is the API's front over them. No
part reaches into another: each gets its collaborators when it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import platformdirs

from inspector.core.clock import SYSTEM_CLOCK, Clock
from inspector.core.collector import Collector, Switches
from inspector.core.database import classify
from inspector.core.errors import DittoClosedError, PersistenceError, PersistenceProblem
from inspector.core.events import (
    DocumentStatesChanged,
    EventHub,
    PersistenceChanged,
    Replication,
    ReplicationChanged,
    SmallPeerInfoSyncScope,
)
from inspector.core.facts import machine_facts
from inspector.core.identity import Identity
from inspector.core.limits import MIN_INTERVAL
from inspector.core.lock import LOCK_FILE, DirectoryLock
from inspector.core.replication import (
    NOT_CONFIGURED,
    ReplicationPolicy,
    ReplicationStatus,
    check_big_peer_url,
)
from inspector.core.small_peer_info import SmallPeerInfo, make_small_peer_info
from inspector.core.store import HistoryRetention, Store, StoredDocument

if TYPE_CHECKING:
    from inspector.core.replication import Replicator

__all__ = ["MIN_INTERVAL", "Ditto", "default_persistence_directory"]

log = logging.getLogger(__name__)

APP_NAME = "small-peer-inspector"


def default_persistence_directory() -> Path:
    """The platform's user data directory for the peer (created on first use)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "peer"


class Ditto:
    """A small peer: its identity, store and `small_peer_info`, over one persistence directory.

    ``persistence_directory=None`` means `default_persistence_directory()`. The
    directory is created if missing and holds the whole state of the peer; one live
    `Ditto` may use it at a time, across processes
    (`PersistenceDirectoryLockedError` otherwise). A directory or database that
    cannot be used raises `PersistenceError`, changing nothing and leaving the
    directory unlocked.

    Background work (collection, replication) runs as tasks on the running asyncio
    event loop. A `Ditto` made outside a running loop keeps its settings and starts
    that work when entered with ``async with``, at its first async call, or when
    collection is switched on inside a running loop.
    ``history_retention`` bounds the stored history (count, age and bytes);
    ``replication_policy`` sets batch size, queue bound and retry pacing; ``clock``
    is the time the peer reads and waits by (tests pass a `ManualClock`).
    """

    def __init__(
        self,
        persistence_directory: str | Path | None = None,
        *,
        device_name: str | None = None,
        small_peer_info_interval: float = 300.0,
        big_peer_url: str | None = None,
        big_peer_token: str | None = None,
        history_retention: HistoryRetention | None = None,
        replication_policy: ReplicationPolicy | None = None,
        clock: Clock | None = None,
    ) -> None:
        if device_name is not None and (not isinstance(device_name, str) or not device_name.strip()):
            raise ValueError("device_name must be a non-empty string")
        if isinstance(small_peer_info_interval, bool) or not isinstance(
            small_peer_info_interval, int | float
        ):
            raise TypeError("small_peer_info_interval is a number of seconds")
        if not small_peer_info_interval >= MIN_INTERVAL or small_peer_info_interval == float("inf"):
            raise ValueError(f"small_peer_info_interval must be at least {MIN_INTERVAL} s and finite")
        if big_peer_url is not None:
            check_big_peer_url(big_peer_url)
        self._closed = True  # until fully open, so a failed start leaves nothing half-alive
        directory = Path(persistence_directory) if persistence_directory is not None else None
        directory = (directory or default_persistence_directory()).expanduser().absolute()
        _make_directory(directory)
        self.persistence_directory = directory
        self.clock: Clock = clock or SYSTEM_CLOCK
        try:
            self._lock = DirectoryLock(directory)
        except (
            OSError
        ) as exc:  # a lock file that is a directory, unreadable...; a locked one is already typed
            raise (
                classify(directory / LOCK_FILE, exc, what="The persistence directory's lock file") or exc
            ) from exc
        try:
            identity = Identity.load(directory)
            self.store = Store(directory, history_retention or HistoryRetention())
            try:
                stored = self.store.load_settings()
                self._identity = identity or Identity.create(directory)
            except BaseException:
                self.store.close_blocking()
                raise
        except BaseException as exc:
            self._lock.release()
            if isinstance(exc, OSError) and not isinstance(exc, PersistenceError):
                raise classify(directory, exc, what="The persistence directory") or exc from exc
            raise
        self.peer_key: str = self._identity.peer_key
        self.device_name: str = device_name or socket.gethostname() or "unknown device"
        self.big_peer_url = big_peer_url
        self._facts_executor = ThreadPoolExecutor(1, thread_name_prefix="inspector-facts")
        self._closing: asyncio.Future[None] | None = None
        self._started = False
        self._problems: dict[str, PersistenceError | None] = {
            "damage": None,
            "settings": None,
            "collection": None,
        }
        self._hub = EventHub()
        try:
            scope = SmallPeerInfoSyncScope(stored.sync_scope or SmallPeerInfoSyncScope.LOCAL_PEER_ONLY.value)
        except ValueError:
            scope = SmallPeerInfoSyncScope.LOCAL_PEER_ONLY
        self._switches = Switches(enabled=stored.enabled, metadata=stored.metadata, scope=scope)
        self._replicator: Replicator | None = None
        if big_peer_url is not None:
            from inspector.core.replication import Replicator  # aiohttp only when a Big Peer is set

            self._replicator = Replicator(
                big_peer_url,
                big_peer_token,
                self._identity,
                self.store,
                replication_policy or ReplicationPolicy(),
                self.clock,
                on_status=lambda status: self._hub.emit(ReplicationChanged(status)),
                on_states=self._on_replicated,
            )
        self._collector = Collector(
            peer_key=self.peer_key,
            device_name=self.device_name,
            interval=float(small_peer_info_interval),
            switches=self._switches,
            store=self.store,
            clock=self.clock,
            facts=self._read_facts,
            link_facts=self._link_facts,
            queue_bound=self._queue_bound,
            emit=self._hub.emit,
            on_stored=self._on_stored,
            on_failure=lambda error: self._set_problem("collection", error),
            last_ts=stored.last_ts,
        )
        self._small_peer_info = make_small_peer_info(
            switches=self._switches,
            store=self.store,
            collector=self._collector,
            replicator=self._replicator,
            hub=self._hub,
            is_closed=lambda: self._closed,
            ensure_started=self._start_background,
        )
        self.store.on_write_problem(lambda error: self._set_problem("settings", error))
        self._closed = False
        with contextlib.suppress(RuntimeError):  # no running loop: started by the first call in one
            asyncio.get_running_loop()
            self._start_background()

    @property
    def small_peer_info(self) -> SmallPeerInfo:
        """The one `SmallPeerInfo` of this instance."""
        return self._small_peer_info

    @property
    def replication_status(self) -> ReplicationStatus:
        """Connection to the Big Peer, queue length, drops, the request in flight and the last error."""
        return self._replicator.status if self._replicator is not None else NOT_CONFIGURED

    @property
    def persistence_problem(self) -> PersistenceError | None:
        """Why the peer cannot write (or read) its database right now, or None."""
        return next((error for error in self._problems.values() if error is not None), None)

    @property
    def is_closed(self) -> bool:
        return self._closed

    # --- wiring ----------------------------------------------------------------------------------

    def _start_background(self) -> None:
        if self._closed:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if not self._started:
            self._started = True
            self.store.attach(loop)
            self.store.on_failure = lambda error: self._from_store_thread(loop, "damage", error)
            if self._replicator is not None:
                self._replicator.follow_scope(self._switches.scope is SmallPeerInfoSyncScope.BIG_PEER_ONLY)
        if self._switches.enabled:
            self._collector.start()

    def _from_store_thread(
        self, loop: asyncio.AbstractEventLoop, source: str, error: PersistenceError
    ) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: the peer is closing
            loop.call_soon_threadsafe(self._set_problem, source, error)

    def _set_problem(self, source: str, error: PersistenceError | None) -> None:
        before = self.persistence_problem
        self._problems[source] = error
        after = self.persistence_problem
        if after is not before and not self._closed:
            self._hub.emit(PersistenceChanged(after))

    async def _read_facts(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        directory, store = self.persistence_directory, self.store
        return await loop.run_in_executor(
            self._facts_executor, lambda: machine_facts(directory, store.database_bytes())
        )

    def _link_facts(self) -> dict[str, Any]:
        if self._replicator is not None:
            return self._replicator.connection_facts()
        return {"connections_by_transport": {}, "big_peer_connection_history": []}

    def _queue_bound(self) -> int | None:
        if self._replicator is None or self._switches.scope is not SmallPeerInfoSyncScope.BIG_PEER_ONLY:
            return None
        return self._replicator.policy.max_queue

    def _on_stored(self, stored: StoredDocument, queued: bool) -> None:
        if queued and self._replicator is not None:
            self._replicator.wake()

    def _on_replicated(self, seqs: Sequence[int], acknowledged: bool) -> None:
        if seqs:
            state = Replication.ACKNOWLEDGED if acknowledged else Replication.DROPPED
            self._hub.emit(DocumentStatesChanged(tuple(seqs), state))

    # --- closing ---------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stop background work and release the directory; idempotent.

        Raises `PersistenceError` if a setting accepted in this session never landed
        on disk (a full disk that never freed up); the directory is released anyway.
        """
        if self._closed:
            if self._closing is not None:
                await asyncio.shield(self._closing)  # a close in progress: wait for its release
            return
        self._closed = True
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._collector.close()
            if self._replicator is not None:
                await self._replicator.close()
            self._hub.close()
            await self.store.close()
        finally:
            self._facts_executor.shutdown(wait=False)
            self._lock.release()
            self._closing.set_result(None)

    async def __aenter__(self) -> Ditto:
        if self._closed:
            raise DittoClosedError()
        self._start_background()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        closed = " closed" if self._closed else ""
        return f"<Ditto {getattr(self, 'peer_key', '?')} {str(self.persistence_directory)!r}{closed}>"


def _make_directory(directory: Path) -> None:
    """Create the persistence directory, or raise `PersistenceError` saying why it cannot be used."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise PersistenceError(
            directory,
            PersistenceProblem.NOT_A_DIRECTORY,
            f"The persistence directory {directory} is a file, not a directory. "
            "Choose another path, or move the file aside.",
        ) from None
    except OSError as exc:
        if exc.errno == errno.ENOTDIR:
            raise PersistenceError(
                directory,
                PersistenceProblem.NOT_A_DIRECTORY,
                f"The persistence directory {directory} cannot be created: a part of its path is a file. "
                "Choose another path.",
            ) from None
        raise classify(directory, exc, what="The persistence directory") or exc from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PersistenceError(
            directory,
            PersistenceProblem.READ_ONLY,
            f"The persistence directory {directory} cannot be written. "
            "Fix its permissions so this user can write to it, or choose another directory.",
        )
