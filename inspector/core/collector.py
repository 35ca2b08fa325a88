"""Collection: one small peer info document at once when enabled, then one every interval.

The `Collector` owns the schedule and the collection of a document; everything it
needs comes in as an explicit collaborator (the switches, the store, the clock, the
machine facts, the Big Peer link's facts), and everything it does goes out as
events. Per collection it does no work proportional to the metadata: the metadata
is a shared `MetadataValue`, referenced by the stored row, never re-encoded, copied
or parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from inspector.core.clock import Clock
from inspector.core.errors import DittoClosedError, PersistenceError
from inspector.core.events import (
    EMPTY_METADATA,
    DocumentCollected,
    DocumentStatesChanged,
    HistoryPruned,
    MetadataValue,
    Replication,
    ScheduleChanged,
    SmallPeerInfoEvent,
    SmallPeerInfoSyncScope,
)
from inspector.core.store import CollectedDocument, Store, StoredDocument, numeric_leaves
from inspector.core.timestamps import format_timestamp

__all__ = ["Collector", "Switches"]

log = logging.getLogger(__name__)


@dataclass
class Switches:
    """The peer's three settings as they are now (the store persists them behind the setters)."""

    enabled: bool = False
    metadata: MetadataValue = EMPTY_METADATA
    scope: SmallPeerInfoSyncScope = SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


class Collector:
    """Collects documents of one peer while its switch is on (see the module doc)."""

    def __init__(
        self,
        *,
        peer_key: str,
        device_name: str,
        interval: float,
        switches: Switches,
        store: Store,
        clock: Clock,
        facts: Callable[[], Awaitable[dict[str, Any]]],
        link_facts: Callable[[], dict[str, Any]],
        queue_bound: Callable[[], int | None],
        emit: Callable[[SmallPeerInfoEvent], None],
        on_stored: Callable[[StoredDocument, bool], None],
        on_failure: Callable[[PersistenceError | None], None],
        last_ts: int,
    ) -> None:
        """``queue_bound()`` is the outbox bound while documents may be queued for the Big Peer, else None."""
        self.peer_key = peer_key
        self.device_name = device_name
        self.interval = interval
        self._switches = switches
        self._store = store
        self._clock = clock
        self._facts = facts
        self._link_facts = link_facts
        self._queue_bound = queue_bound
        self._emit = emit
        self._on_stored = on_stored
        self._on_failure = on_failure
        self._last_ts = last_ts
        self.last_collected_at: float | None = last_ts / 1000 if last_ts else None
        self.next_collection_at: float | None = None
        self.lock = asyncio.Lock()
        """Held while a document is collected: a sync scope change waits for it."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closed = False
        self._failing = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start the schedule on the running loop (collects at once)."""
        if self._closed or self.running:
            return
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="small-peer-info-collection")

    def stop(self) -> None:
        """Stop the schedule: no collection starts after this returns."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self.next_collection_at is not None:
            self.next_collection_at = None
            self._emit(ScheduleChanged(self.last_collected_at, None))

    def wake(self) -> None:
        """Collect now rather than at the next interval (if running)."""
        self._wake.set()

    async def close(self) -> None:
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def collect_now(self) -> DocumentCollected | None:
        """Collect one document at once (when enabled); None while disabled."""
        return await self._collect()

    async def _loop(self) -> None:
        clock = self._clock
        while True:
            started = clock.time()
            try:
                await self._collect()
            except asyncio.CancelledError:
                raise
            except DittoClosedError:
                return
            except PersistenceError:
                pass  # said once through on_failure; the next interval tries again
            except Exception:
                log.exception("collecting small peer info failed; trying again next interval")
            due = started + self.interval
            self.next_collection_at = max(due, clock.time())
            self._emit(ScheduleChanged(self.last_collected_at, self.next_collection_at))
            waiting = asyncio.ensure_future(clock.sleep(max(0.0, due - clock.time())))
            woken = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait((waiting, woken), return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
                woken.cancel()
            self._wake.clear()

    async def _collect(self) -> DocumentCollected | None:
        async with self.lock:
            switches = self._switches
            if not switches.enabled or self._closed:
                return None
            facts = await self._facts()
            now_ms = int(self._clock.time() * 1000)
            ts_ms = max(now_ms, self._last_ts + 1)
            metadata = switches.metadata
            document: dict[str, Any] = {
                "_id": self.peer_key,
                "device_name": self.device_name,
                "ditto_sdk_language": facts.pop("ditto_sdk_language"),
                "ditto_sdk_platform": facts.pop("ditto_sdk_platform"),
                "ditto_sdk_version": facts.pop("ditto_sdk_version"),
                "last_updated_at": format_timestamp(ts_ms),
                **self._link_facts(),
                **facts,
            }
            body = orjson.dumps(document)
            numbers = numeric_leaves(document)
            bound = self._queue_bound()
            row = CollectedDocument(
                self.peer_key, ts_ms, body, metadata, numbers, queue=bound is not None, queue_bound=bound or 0
            )
            insert = asyncio.ensure_future(self._store.insert_collected(row))
            try:
                stored = await asyncio.shield(insert)
            except asyncio.CancelledError:
                # Disabled or closed while the row was being written: it is stored all the
                # same, so finish its bookkeeping (timestamps, observers, sender), then stop.
                with contextlib.suppress(Exception):
                    self._stored(await insert, row)
                raise
            except PersistenceError as error:
                if not self._failing:
                    self._failing = True
                    log.error("a collected document could not be stored: %s", error)
                    self._on_failure(error)
                raise
        return self._stored(stored, row)

    def _stored(self, stored: StoredDocument, row: CollectedDocument) -> DocumentCollected:
        self._last_ts = row.ts_ms
        self.last_collected_at = row.ts_ms / 1000
        if self._failing:
            self._failing = False
            self._on_failure(None)
        event = DocumentCollected(
            stored.seq,
            row.ts_ms,
            row.body,
            row.metadata,
            size=stored.size,
            replication=Replication.QUEUED if row.queue else Replication.LOCAL_ONLY,
            numbers=row.numbers,
            metadata_changed=stored.metadata_changed,
        )
        self._on_stored(stored, row.queue)
        self._emit(event)
        if stored.dropped_from_queue:
            self._emit(DocumentStatesChanged(stored.dropped_from_queue, Replication.DROPPED))
        if stored.pruned:
            self._emit(HistoryPruned(stored.oldest_seq))
        return event
