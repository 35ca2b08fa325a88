"""`SmallPeerInfo`: the switches of one peer's small peer info, and what it has collected.

Collection and sharing are independent: `is_enabled` decides whether documents are
collected at all, the sync scope whether they may leave the device. This class is
the API's front: it validates, keeps the switches (`Switches`), hands their
persistence to the store and their effect to the `Collector` and the replicator,
and tells observers; it does none of that work itself.

Observers hear about each collected document and each change, on the event loop's
thread, without polling: `observe(callback)` or ``async for event in
small_peer_info.events()`` (the events are in `inspector.core.events`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from inspector.core.collector import Collector, Switches
from inspector.core.errors import DittoClosedError, MetadataValidationError, MetadataValidationReason
from inspector.core.events import (
    CollectionChanged,
    DocumentStatesChanged,
    EventHub,
    MetadataChanged,
    MetadataValue,
    Replication,
    SmallPeerInfoEvent,
    SmallPeerInfoSyncScope,
    Subscription,
    SyncScopeChanged,
)
from inspector.core.metadata import validate
from inspector.core.store import Store
from inspector.core.timestamps import parse_timestamp

if TYPE_CHECKING:
    from inspector.core.replication import Replicator

__all__ = ["SmallPeerInfo", "SmallPeerInfoSyncScope", "Subscription"]

# Settings keys in the peer's store.
IS_ENABLED = "is_enabled"
METADATA = "metadata"

_CONSTRUCTION = object()
_MAX_HISTORY_LIMIT = 2**62
"""A larger history limit is read as this one (SQLite integers are 64-bit; no history is this long)."""
"""Only `Ditto` holds this: `SmallPeerInfo` cannot be made directly."""


class SmallPeerInfo:
    """The entry point for small peer info collection of one `Ditto` (``ditto.small_peer_info``).

    It cannot be instantiated directly; every member raises `DittoClosedError`
    once its Ditto is closed.
    """

    __slots__ = (
        "__weakref__",
        "_collector",
        "_ensure_started",
        "_hub",
        "_is_closed",
        "_replicator",
        "_store",
        "_switches",
    )

    def __new__(cls, *args: Any, _construction: object = None, **kwargs: Any) -> SmallPeerInfo:
        if _construction is not _CONSTRUCTION:
            raise TypeError("SmallPeerInfo cannot be instantiated directly; use ditto.small_peer_info")
        return super().__new__(cls)

    def __init__(
        self,
        *args: Any,
        _construction: object = None,
        switches: Switches | None = None,
        store: Store | None = None,
        collector: Collector | None = None,
        replicator: Replicator | None = None,
        hub: EventHub | None = None,
        is_closed: Callable[[], bool] | None = None,
        ensure_started: Callable[[], None] | None = None,
    ) -> None:
        if (
            args
            or _construction is not _CONSTRUCTION
            or switches is None
            or store is None
            or collector is None
            or hub is None
            or is_closed is None
            or ensure_started is None
        ):
            raise TypeError("SmallPeerInfo cannot be instantiated directly; use ditto.small_peer_info")
        self._switches = switches
        self._store = store
        self._collector = collector
        self._replicator = replicator
        self._hub = hub
        self._is_closed = is_closed
        self._ensure_started = ensure_started

    def __reduce__(self) -> Any:
        raise TypeError("SmallPeerInfo cannot be copied or pickled")

    def _check_open(self) -> None:
        if self._is_closed():
            raise DittoClosedError()

    def _check_open_in_loop(self) -> None:
        """For async members: also start background work of a Ditto made outside a loop."""
        self._check_open()
        self._ensure_started()

    # --- the switches ----------------------------------------------------------------------------

    @property
    def is_enabled(self) -> bool:
        """Whether collection is on (default False). Takes a `bool` only."""
        self._check_open()
        return self._switches.enabled

    @is_enabled.setter
    def is_enabled(self, value: bool) -> None:
        self._check_open()
        if not isinstance(value, bool):
            raise TypeError(f"is_enabled takes a bool, not {type(value).__name__} ({value!r})")
        if value == self._switches.enabled:
            return
        self._switches.enabled = value
        self._store.save_later(IS_ENABLED, b"1" if value else b"0")
        if value:
            self._ensure_started()
        else:
            self._collector.stop()
        self._hub.emit(CollectionChanged(value))

    @property
    def metadata(self) -> dict[str, Any]:
        """The user's metadata (default ``{}``); the getter returns a copy."""
        self._check_open()
        return self._switches.metadata.copy()

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self._check_open()
        if isinstance(value, str):
            raise MetadataValidationError(
                MetadataValidationReason.NOT_AN_OBJECT,
                "metadata must be a dict (a JSON object), not str; use metadata_json_string for JSON text",
            )
        self._set_metadata(validate(value).encoded)

    @property
    def metadata_json_string(self) -> str:
        """The metadata as compact JSON text; the setter takes `str` only, parses and validates it."""
        self._check_open()
        return self._switches.metadata.text

    @metadata_json_string.setter
    def metadata_json_string(self, value: str) -> None:
        self._check_open()
        if not isinstance(value, str):
            raise TypeError(f"metadata_json_string takes a str, not {type(value).__name__}")
        self._set_metadata(validate(value).encoded)

    def _set_metadata(self, encoded: bytes) -> None:
        if encoded == self._switches.metadata.encoded:
            return
        metadata = MetadataValue(encoded)
        self._switches.metadata = metadata
        self._store.save_later(METADATA, metadata)
        self._hub.emit(MetadataChanged(metadata))

    async def get_sync_scope(self) -> SmallPeerInfoSyncScope:
        """Where collected documents may go; default `LOCAL_PEER_ONLY`."""
        self._check_open_in_loop()
        return self._switches.scope

    async def set_sync_scope(self, scope: SmallPeerInfoSyncScope | str) -> None:
        """Set the sync scope: a member or its string value (``"BigPeerOnly"``, ``"LocalPeerOnly"``).

        Waits until the scope is saved; a failure (`PersistenceError`) changes nothing.
        """
        self._check_open_in_loop()
        if not isinstance(scope, str):
            raise TypeError(
                f"the sync scope is a SmallPeerInfoSyncScope or its string value, not {type(scope).__name__}"
            )
        try:
            new = SmallPeerInfoSyncScope(scope)
        except ValueError:
            allowed = ", ".join(repr(s.value) for s in SmallPeerInfoSyncScope)
            raise ValueError(f"unknown sync scope {scope!r}; expected one of {allowed}") from None
        lock = self._collector.lock
        if new is self._switches.scope and not lock.locked():
            return  # nothing to do, and no earlier request is still on its way
        local = new is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY
        # Under the collection lock: no document is half-collected under the old scope.
        async with lock:
            self._check_open()
            if new is self._switches.scope:
                return  # decided again under the lock: the last request wins
            if local and self._replicator is not None:
                self._replicator.follow_scope(False)  # the request in flight goes first
            try:
                # With or without a Big Peer configured, nothing queued may ever leave now.
                dropped = await self._store.save_sync_scope(new.value, drop_queue=local)
            except BaseException:
                if local and self._replicator is not None and not self._is_closed():
                    self._replicator.follow_scope(True)  # nothing changed: keep sending
                raise
            self._switches.scope = new
            self._check_open()  # closed meanwhile: the scope is saved, start no sender
            if self._replicator is not None:
                if local:
                    await self._replicator.refresh()  # the queue is empty now: say so before returning
                else:
                    self._replicator.follow_scope(True)
        self._hub.emit(SyncScopeChanged(new))
        if dropped:
            self._hub.emit(DocumentStatesChanged(dropped, Replication.DROPPED))
        if not local and self._switches.enabled:
            self._collector.wake()

    # --- history and observation -----------------------------------------------------------------

    async def history(self, limit: int = 100, before: str | datetime | None = None) -> list[dict[str, Any]]:
        """Collected documents, newest first.

        ``before`` pages backwards: pass the ``last_updated_at`` of the last document
        of a page (or a timezone-aware `datetime`) to get the documents older than it.
        """
        self._check_open_in_loop()
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise TypeError("limit must be an int")
        if limit < 0:
            raise ValueError("limit must not be negative")
        limit = min(limit, _MAX_HISTORY_LIMIT)  # more than a history can hold means all of it
        before_ts: int | None
        if before is None:
            before_ts = None
        elif isinstance(before, datetime):
            if before.tzinfo is None:
                raise ValueError("before must be timezone-aware")
            before_ts = int(before.timestamp() * 1000)
        elif isinstance(before, str):
            before_ts = parse_timestamp(before)
        else:
            raise TypeError("before is a last_updated_at string, a datetime or None")
        if limit == 0:
            return []
        return await self._store.history(limit, before_ts)

    def observe(self, callback: Callable[[SmallPeerInfoEvent], None]) -> Subscription:
        """Call ``callback(event)`` on the event loop for every collection and change."""
        self._check_open()
        return self._hub.observe(callback)

    async def events(self) -> AsyncIterator[SmallPeerInfoEvent]:
        """The same events as `observe`, as an async iterator (ends when the Ditto closes)."""
        self._check_open()
        async for event in self._hub.events():
            yield event

    # --- collection ------------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        """Seconds between two collections."""
        self._check_open()
        return self._collector.interval

    @property
    def last_collected_at(self) -> float | None:
        """Unix time of the newest stored document, or None."""
        self._check_open()
        return self._collector.last_collected_at

    @property
    def next_collection_at(self) -> float | None:
        """Unix time the next collection is due, or None while collection is off."""
        self._check_open()
        return self._collector.next_collection_at if self._switches.enabled else None

    async def collect_now(self) -> dict[str, Any] | None:
        """Collect one document at once (when enabled); returns it, or None while disabled."""
        self._check_open_in_loop()
        event = await self._collector.collect_now()
        return None if event is None else event.document

    def __repr__(self) -> str:
        if self._is_closed():
            return "<SmallPeerInfo closed>"
        state = "enabled" if self._switches.enabled else "disabled"
        return f"<SmallPeerInfo {state} scope={self._switches.scope.value}>"


def make_small_peer_info(
    *,
    switches: Switches,
    store: Store,
    collector: Collector,
    replicator: Replicator | None,
    hub: EventHub,
    is_closed: Callable[[], bool],
    ensure_started: Callable[[], None],
) -> SmallPeerInfo:
    """The one `SmallPeerInfo` of a `Ditto` (only `Ditto` calls this)."""
    return SmallPeerInfo(
        _construction=_CONSTRUCTION,
        switches=switches,
        store=store,
        collector=collector,
        replicator=replicator,
        hub=hub,
        is_closed=is_closed,
        ensure_started=ensure_started,
    )
