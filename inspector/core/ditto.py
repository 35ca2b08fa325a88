"""`Ditto`: one peer over one persistence directory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import platformdirs

from inspector.core.errors import DittoClosedError
from inspector.core.identity import Identity
from inspector.core.lock import DirectoryLock
from inspector.core.replication import (
    NOT_CONFIGURED,
    ReplicationPolicy,
    ReplicationStatus,
    Replicator,
    check_big_peer_url,
)
from inspector.core.small_peer_info import ReplicationChanged, SmallPeerInfo, SmallPeerInfoSyncScope
from inspector.core.store import HistoryRetention, Store

__all__ = ["MIN_INTERVAL", "Ditto", "default_persistence_directory"]

log = logging.getLogger(__name__)

MIN_INTERVAL = 0.1
"""Shortest collection interval accepted (seconds); the SDK's default is 300."""

APP_NAME = "small-peer-inspector"


def default_persistence_directory() -> Path:
    """The platform's user data directory for the peer (created on first use)."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "peer"


class Ditto:
    """A small peer: its identity, store and `small_peer_info`, over one persistence directory.

    ``persistence_directory=None`` means `default_persistence_directory()`. The
    directory is created if missing and holds the whole state of the peer; one live
    `Ditto` may use it at a time, across processes
    (`PersistenceDirectoryLockedError` otherwise).

    Background work (collection, replication) runs as tasks on the running asyncio
    event loop. A `Ditto` made outside a running loop keeps its settings and starts
    that work when entered with ``async with``, at its first async call, or when
    collection is switched on inside a running loop.
    ``history_retention`` bounds the stored history (count and age);
    ``replication_policy`` sets batch size, queue bound and retry pacing.
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
        directory.mkdir(parents=True, exist_ok=True)
        self.persistence_directory = directory
        self._lock = DirectoryLock(directory)
        try:
            self._identity = Identity.load_or_create(directory)
            self.store = Store(directory, history_retention or HistoryRetention())
        except BaseException:
            self._lock.release()
            raise
        self.peer_key: str = self._identity.peer_key
        self.device_name: str = device_name or socket.gethostname() or "unknown device"
        self.big_peer_url = big_peer_url
        self._big_peer_token = big_peer_token
        self._on_close: list[Callable[[], None]] = []
        self._closing: asyncio.Future[None] | None = None
        self._replicator: Replicator | None = None
        self._closed = False
        self._small_peer_info = SmallPeerInfo._create(
            self,
            self.store.call(self.store.load_settings),
            float(small_peer_info_interval),
            self.store.call(self.store.last_ts),
        )
        if big_peer_url is not None:
            self._replicator = Replicator(
                big_peer_url,
                big_peer_token,
                self._identity,
                self.store,
                replication_policy or ReplicationPolicy(),
                lambda status: self._small_peer_info._emit(ReplicationChanged(status)),
            )
            self._replicator._enabled = self._small_peer_info._scope is SmallPeerInfoSyncScope.BIG_PEER_ONLY
        with contextlib.suppress(RuntimeError):  # no running loop: started by the first call in one
            asyncio.get_running_loop()
            self._start_background()

    @property
    def small_peer_info(self) -> SmallPeerInfo:
        """The one `SmallPeerInfo` of this instance."""
        return self._small_peer_info

    @property
    def replication_status(self) -> ReplicationStatus:
        """Connection to the Big Peer, queue length, drops and the last error."""
        return self._replicator.status if self._replicator is not None else NOT_CONFIGURED

    @property
    def is_closed(self) -> bool:
        return self._closed

    def _start_background(self) -> None:
        if self._closed:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._small_peer_info._enabled:
            self._small_peer_info._start_collection()
        if self._replicator is not None:
            self._replicator.start()

    async def _on_sync_scope_changed(self, scope: SmallPeerInfoSyncScope) -> None:
        if self._replicator is not None:
            await self._replicator.set_scope(scope is SmallPeerInfoSyncScope.BIG_PEER_ONLY)

    def _on_document_stored(self, seq: int, queued: bool) -> None:
        if queued and self._replicator is not None:
            self._replicator.wake()

    def _connection_facts(self) -> dict[str, Any]:
        if self._replicator is not None:
            return self._replicator.connection_facts()
        return {"connections_by_transport": {}, "big_peer_connection_history": []}

    async def close(self) -> None:
        """Stop background work and release the directory; idempotent."""
        if self._closed:
            if self._closing is not None:
                await asyncio.shield(self._closing)  # a close in progress: wait for its release
            return
        self._closed = True
        self._closing = asyncio.get_running_loop().create_future()
        try:
            await self._small_peer_info._stop()
            if self._replicator is not None:
                await self._replicator.close()
            for callback in self._on_close:
                callback()
            await self.store.close()
        finally:
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
        return (
            f"<Ditto {self.peer_key} {str(self.persistence_directory)!r}{' closed' if self._closed else ''}>"
        )
