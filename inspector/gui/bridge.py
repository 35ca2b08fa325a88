"""`PeerBridge`: the one place where a peer's events become Qt signals.

Widgets connect to typed signals (``collectionChanged(bool)``, ...) instead of
observing the peer and sorting its events themselves. Events arrive on the event
loop's thread (qasync's, the GUI thread), so the signals are emitted directly. The
history views do not go through here: they read a `HistorySource`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from inspector.core.ditto import Ditto
from inspector.core.events import (
    CollectionChanged,
    DocumentCollected,
    MetadataChanged,
    PersistenceChanged,
    ReplicationChanged,
    ScheduleChanged,
    SmallPeerInfoEvent,
    SyncScopeChanged,
)

__all__ = ["PeerBridge"]


class PeerBridge(QObject):
    """Typed Qt signals for one `Ditto`'s events (see the module doc)."""

    collectionChanged = Signal(bool)
    metadataChanged = Signal(object)
    """The new `MetadataValue`."""
    syncScopeChanged = Signal(str)
    """The scope's string value."""
    scheduleChanged = Signal(object, object)
    """Last collection and next due time (Unix seconds, or None)."""
    documentCollected = Signal(object)
    """The `DocumentCollected` event."""
    replicationChanged = Signal(object)
    """The new `ReplicationStatus`."""
    persistenceChanged = Signal(object)
    """A `PersistenceError` the peer cannot get past, or None once it did."""

    def __init__(self, ditto: Ditto, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.ditto = ditto
        self.small_peer_info = ditto.small_peer_info
        routes: dict[type[Any], Callable[[Any], None]] = {
            CollectionChanged: lambda e: self.collectionChanged.emit(e.enabled),
            MetadataChanged: lambda e: self.metadataChanged.emit(e.metadata),
            SyncScopeChanged: lambda e: self.syncScopeChanged.emit(e.scope.value),
            ScheduleChanged: lambda e: self.scheduleChanged.emit(e.last_collected_at, e.next_collection_at),
            DocumentCollected: self.documentCollected.emit,
            ReplicationChanged: lambda e: self.replicationChanged.emit(e.status),
            PersistenceChanged: lambda e: self.persistenceChanged.emit(e.error),
        }
        self._routes = routes
        self._subscription = ditto.small_peer_info.observe(self._on_event)

    def _on_event(self, event: SmallPeerInfoEvent) -> None:
        route = self._routes.get(type(event))
        if route is not None:
            route(event)

    def close(self) -> None:
        """Stop following the peer (the window is closing)."""
        self._subscription.cancel()
