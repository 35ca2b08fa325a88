"""`SmallPeerInfo`: the switches and the collection of one peer's small peer info.

Collection and sharing are independent: `is_enabled` decides whether documents are
collected at all, the sync scope whether they may leave the device.

Observers hear about each collected document and each change of a setting, on the
event loop's thread, without polling: `observe(callback)` or ``async for event in
small_peer_info.events()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

import orjson

from inspector.core.collector import format_timestamp, machine_facts, parse_timestamp
from inspector.core.errors import DittoClosedError, MetadataValidationError, MetadataValidationReason
from inspector.core.metadata import validate
from inspector.core.replication import ReplicationStatus

if TYPE_CHECKING:
    from inspector.core.ditto import Ditto

__all__ = [
    "DocumentCollected",
    "ReplicationChanged",
    "SettingChanged",
    "SmallPeerInfo",
    "SmallPeerInfoEvent",
    "SmallPeerInfoSyncScope",
    "Subscription",
]

log = logging.getLogger(__name__)

# Settings keys in the peer's store.
IS_ENABLED = "is_enabled"
METADATA = "metadata"
SYNC_SCOPE = "sync_scope"


class SmallPeerInfoSyncScope(str, Enum):
    """Which kind of peers small peer info replicates to."""

    BIG_PEER_ONLY = "BigPeerOnly"
    """Replicate collected documents to the Big Peer."""
    LOCAL_PEER_ONLY = "LocalPeerOnly"
    """Keep them on this device (the default)."""


@dataclass(frozen=True, slots=True)
class DocumentCollected:
    """A document was collected and stored; ``seq`` numbers it in the history."""

    seq: int
    document: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SettingChanged:
    """``name`` (``"is_enabled"``, ``"metadata"``, ``"sync_scope"``) now has ``value``."""

    name: str
    value: Any


@dataclass(frozen=True, slots=True)
class ReplicationChanged:
    """Replication to the Big Peer changed: connection, queue, or the state of stored documents."""

    status: ReplicationStatus


SmallPeerInfoEvent = DocumentCollected | SettingChanged | ReplicationChanged


class Subscription:
    """Returned by `SmallPeerInfo.observe`; `cancel()` stops the callbacks."""

    def __init__(self, observers: list[Callable[[Any], None]], callback: Callable[[Any], None]) -> None:
        self._observers = observers
        self._callback = callback

    def cancel(self) -> None:
        with contextlib.suppress(ValueError):
            self._observers.remove(self._callback)


_CONSTRUCTING = object()


class SmallPeerInfo:
    """The entry point for small peer info collection of one `Ditto` (``ditto.small_peer_info``).

    It cannot be instantiated directly; every member raises `DittoClosedError`
    once its Ditto is closed.
    """

    __slots__ = (
        "__weakref__",
        "_collect_lock",
        "_ditto",
        "_enabled",
        "_interval",
        "_last_collected_at",
        "_last_ts",
        "_metadata",
        "_next_collection_at",
        "_observers",
        "_scope",
        "_task",
        "_wake",
    )

    def __new__(cls, *args: Any, **kwargs: Any) -> SmallPeerInfo:
        raise TypeError("SmallPeerInfo cannot be instantiated directly; use ditto.small_peer_info")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("SmallPeerInfo cannot be instantiated directly; use ditto.small_peer_info")

    def __reduce__(self) -> Any:
        raise TypeError("SmallPeerInfo cannot be copied or pickled")

    @classmethod
    def _create(
        cls, ditto: Ditto, settings: dict[str, bytes], interval: float, last_ts: int
    ) -> SmallPeerInfo:
        self = object.__new__(cls)
        self._ditto = ditto
        self._interval = interval
        self._enabled = settings.get(IS_ENABLED) == b"1"
        self._metadata: bytes = settings.get(METADATA, b"{}")
        try:
            self._scope = SmallPeerInfoSyncScope(settings.get(SYNC_SCOPE, b"LocalPeerOnly").decode())
        except ValueError:
            self._scope = SmallPeerInfoSyncScope.LOCAL_PEER_ONLY
        self._observers: list[Callable[[Any], None]] = []
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._collect_lock = asyncio.Lock()  # binds to a loop only when first contended
        self._last_ts = last_ts
        self._last_collected_at: float | None = last_ts / 1000 if last_ts else None
        self._next_collection_at: float | None = None
        return self

    def _check_open(self) -> None:
        if self._ditto.is_closed:
            raise DittoClosedError()

    def _check_open_in_loop(self) -> None:
        """For async members: also start background work of a Ditto made outside a loop."""
        self._check_open()
        self._ditto._start_background()

    # --- the switches ----------------------------------------------------------------------------

    @property
    def is_enabled(self) -> bool:
        """Whether collection is on (default False). Takes a `bool` only."""
        self._check_open()
        return self._enabled

    @is_enabled.setter
    def is_enabled(self, value: bool) -> None:
        self._check_open()
        if not isinstance(value, bool):
            raise TypeError(f"is_enabled takes a bool, not {type(value).__name__} ({value!r})")
        if value == self._enabled:
            return
        self._enabled = value
        self._ditto.store.save_setting_later(IS_ENABLED, b"1" if value else b"0")
        if value:
            self._ditto._start_background()
        else:
            self._stop_collection()
        self._emit(SettingChanged(IS_ENABLED, value))

    @property
    def metadata(self) -> dict[str, Any]:
        """The user's metadata (default ``{}``); the getter returns a copy."""
        self._check_open()
        return orjson.loads(self._metadata)

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
        return self._metadata.decode("utf-8")

    @metadata_json_string.setter
    def metadata_json_string(self, value: str) -> None:
        self._check_open()
        if not isinstance(value, str):
            raise TypeError(f"metadata_json_string takes a str, not {type(value).__name__}")
        self._set_metadata(validate(value).encoded)

    def _set_metadata(self, encoded: bytes) -> None:
        if encoded == self._metadata:
            return
        self._metadata = encoded
        self._ditto.store.save_setting_later(METADATA, encoded)
        self._emit(SettingChanged(METADATA, encoded.decode("utf-8")))

    async def get_sync_scope(self) -> SmallPeerInfoSyncScope:
        """Where collected documents may go; default `LOCAL_PEER_ONLY`."""
        self._check_open_in_loop()
        return self._scope

    async def set_sync_scope(self, scope: SmallPeerInfoSyncScope | str) -> None:
        """Set the sync scope: a member or its string value (``"BigPeerOnly"``, ``"LocalPeerOnly"``)."""
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
        if new is self._scope:
            return
        # Under the collection lock: no document is half-collected under the old scope.
        async with self._collect_lock:
            self._check_open()
            store = self._ditto.store
            if new is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY:
                # With or without a Big Peer configured, nothing queued may ever leave now.
                await store.run(store.save_local_scope, new.value.encode())
            else:
                await store.run(store.save_setting, SYNC_SCOPE, new.value.encode())
            self._scope = new
            self._check_open()  # closed meanwhile: the scope is saved, start no sender
            await self._ditto._on_sync_scope_changed(new)
        self._emit(SettingChanged(SYNC_SCOPE, new))
        if new is SmallPeerInfoSyncScope.BIG_PEER_ONLY and self._enabled:
            self._wake_collector()

    # --- history and observation ---------------------------------------------------------------

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
        return await self._ditto.store.run(self._ditto.store.history, limit, before_ts)

    def observe(self, callback: Callable[[SmallPeerInfoEvent], None]) -> Subscription:
        """Call ``callback(event)`` on the event loop for every collection and setting change."""
        self._check_open()
        self._observers.append(callback)
        return Subscription(self._observers, callback)

    async def events(self) -> AsyncIterator[SmallPeerInfoEvent]:
        """The same events as `observe`, as an async iterator (ends when the Ditto closes)."""
        self._check_open()
        queue: asyncio.Queue[SmallPeerInfoEvent | None] = asyncio.Queue()
        subscription = self.observe(queue.put_nowait)

        def end() -> None:
            queue.put_nowait(None)

        self._ditto._on_close.append(end)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            subscription.cancel()
            with contextlib.suppress(ValueError):
                self._ditto._on_close.remove(end)

    def _emit(self, event: SmallPeerInfoEvent) -> None:
        for callback in list(self._observers):
            try:
                callback(event)
            except Exception:
                log.exception("a small peer info observer failed on %r", event)

    # --- collection ------------------------------------------------------------------------------

    @property
    def interval(self) -> float:
        """Seconds between two collections."""
        self._check_open()
        return self._interval

    @property
    def last_collected_at(self) -> float | None:
        """Unix time of the newest stored document, or None."""
        self._check_open()
        return self._last_collected_at

    @property
    def next_collection_at(self) -> float | None:
        """Unix time the next collection is due, or None while collection is off."""
        self._check_open()
        return self._next_collection_at if self._enabled else None

    async def collect_now(self) -> dict[str, Any] | None:
        """Collect one document at once (when enabled); returns it, or None while disabled."""
        self._check_open_in_loop()
        if not self._enabled:
            return None
        return await self._collect()

    def _start_collection(self) -> None:
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._collection_loop(), name="small-peer-info-collection"
            )

    def _stop_collection(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._next_collection_at = None

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _wake_collector(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def _collection_loop(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._collect()
            except asyncio.CancelledError:
                raise
            except DittoClosedError:
                return
            except Exception:
                log.exception("collecting small peer info failed; trying again next interval")
            due = started + self._interval
            self._next_collection_at = time.time() + max(0.0, due - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, due - loop.time()))
            self._wake.clear()

    async def _collect(self) -> dict[str, Any] | None:
        async with self._collect_lock:
            if not self._enabled or self._ditto.is_closed:
                return None
            ditto = self._ditto
            store = ditto.store
            metadata = self._metadata
            facts = await asyncio.to_thread(
                machine_facts, ditto.persistence_directory, store.database_bytes()
            )
            ts_ms = max(int(time.time() * 1000), self._last_ts + 1)
            scope = self._scope
            document: dict[str, Any] = {
                "_id": ditto.peer_key,
                "device_name": ditto.device_name,
                "ditto_sdk_language": facts.pop("ditto_sdk_language"),
                "ditto_sdk_platform": facts.pop("ditto_sdk_platform"),
                "ditto_sdk_version": facts.pop("ditto_sdk_version"),
                "last_updated_at": format_timestamp(ts_ms),
                **ditto._connection_facts(),
                **facts,
            }
            body = orjson.dumps(document)
            queue = scope is SmallPeerInfoSyncScope.BIG_PEER_ONLY and ditto._replicator is not None
            bound = ditto._replicator.policy.max_queue if queue else 0
            insert = asyncio.ensure_future(
                store.run(store.insert_collected, ditto.peer_key, ts_ms, body, metadata, queue, bound)
            )
            try:
                seq = await asyncio.shield(insert)
            except asyncio.CancelledError:
                # Disabled or closed while the row was being written: it is stored all the
                # same, so finish its bookkeeping (timestamps, observers, sender), then stop.
                self._stored(await insert, ts_ms, document, metadata, queue)
                raise
        return self._stored(seq, ts_ms, document, metadata, queue)

    def _stored(
        self, seq: int, ts_ms: int, document: dict[str, Any], metadata: bytes, queued: bool
    ) -> dict[str, Any]:
        self._last_ts = ts_ms
        self._last_collected_at = ts_ms / 1000
        document["metadata"] = orjson.loads(metadata)
        self._ditto._on_document_stored(seq, queued)
        self._emit(DocumentCollected(seq, document))
        return document

    def __repr__(self) -> str:
        state = "closed" if self._ditto.is_closed else ("enabled" if self._enabled else "disabled")
        return f"<SmallPeerInfo {state} scope={self._scope.value}>"
