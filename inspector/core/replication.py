"""Replication of small peer info to the Big Peer.

A document leaves the device only if the sync scope was ``BigPeerOnly`` when it was
collected (it is then put in the outbox, in the transaction that stores it) and
still is when it is sent. Switching to ``LocalPeerOnly`` cancels the request in
flight and drops the whole queue.

One sender task drains the outbox oldest first, one batch in flight at a time,
and removes documents only once the Big Peer acknowledged them. While the Big Peer
is unreachable or failing it retries with exponential backoff and full jitter; the
queue survives restarts, and the Big Peer's idempotent ingestion makes a batch
that is sent again after a lost answer harmless. A batch the Big Peer refuses for
good (400, 403: the documents themselves are wrong) is dropped and counted, so one
bad document cannot block the queue; a 413 halves the batch; a 401 (wrong token)
keeps everything queued until the token is fixed.

Writes are signed with the peer's Ed25519 key (see `inspector.core.identity`): the
device token says who may write at all, the signature which documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp

from inspector.core.collector import format_timestamp
from inspector.core.errors import DittoClosedError

if TYPE_CHECKING:
    from inspector.core.identity import Identity
    from inspector.core.store import Store

__all__ = ["ConnectionState", "ReplicationPolicy", "ReplicationStatus", "Replicator"]

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/small_peer_info"
TRANSPORT = "WebSocket"
"""The transport name the Big Peer link is counted under in ``connections_by_transport``."""


class ConnectionState(str, Enum):
    NOT_CONFIGURED = "not_configured"
    """No Big Peer URL was given: nothing can leave the device."""
    CONNECTED = "connected"
    """The last exchange with the Big Peer succeeded."""
    OFFLINE = "offline"
    """The Big Peer is unreachable or failing; queued documents wait."""
    IDLE = "idle"
    """A Big Peer is configured but nothing was exchanged yet."""


@dataclass(frozen=True, slots=True)
class ReplicationStatus:
    """What the window shows about replication."""

    state: ConnectionState
    queue_length: int = 0
    dropped: int = 0
    """Queued documents dropped unsent, ever: the queue was full (oldest go first), or they aged
    out of the history before the Big Peer could be reached."""
    acknowledged: int = 0
    """Documents the Big Peer acknowledged since the peer opened."""
    last_error: str | None = None
    last_acknowledged_at: float | None = None


NOT_CONFIGURED = ReplicationStatus(ConnectionState.NOT_CONFIGURED)


@dataclass(frozen=True, slots=True)
class ReplicationPolicy:
    """How a peer replicates: batch size, queue bound, retry pacing, request timeout."""

    batch_size: int = 100
    max_queue: int = 10_000
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    request_timeout: float = 15.0
    connection_history: int = 20

    def __post_init__(self) -> None:
        if not (isinstance(self.batch_size, int) and isinstance(self.max_queue, int)):
            raise TypeError("batch_size and max_queue are integers")
        if self.batch_size < 1 or self.max_queue < 1 or self.connection_history < 1:
            raise ValueError("batch_size, max_queue and connection_history must be at least 1")
        if not (0 < self.backoff_base <= self.backoff_cap) or not self.request_timeout > 0:
            raise ValueError("need 0 < backoff_base <= backoff_cap and a positive request_timeout")


def check_big_peer_url(url: str) -> None:
    """Raise ValueError unless ``url`` is an http(s) URL of a host."""
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"the Big Peer URL must be http://host[:port] or https://host[:port], not {url!r}")


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"the Big Peer answered {status}: {message}")
        self.status = status


class Replicator:
    """Sends queued documents of one peer to its Big Peer."""

    def __init__(
        self,
        url: str,
        token: str | None,
        identity: Identity,
        store: Store,
        policy: ReplicationPolicy,
        emit: Callable[[ReplicationStatus], None],
    ) -> None:
        check_big_peer_url(url)
        self.url = url.rstrip("/")
        self._token = token
        self._identity = identity
        self._store = store
        self.policy = policy
        self._emit = emit
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._enabled = False  # the sync scope is BigPeerOnly
        self._closed = False
        self._history: deque[dict[str, str]] = deque(maxlen=policy.connection_history)
        self._refresh_task: asyncio.Task[None] | None = None
        queued, dropped = store.call(store.outbox_state)
        self.status = ReplicationStatus(ConnectionState.IDLE, queue_length=queued, dropped=dropped)

    # --- what the peer calls ---------------------------------------------------------------------

    async def set_scope(self, big_peer_only: bool) -> None:
        """Follow the sync scope: start sending, or stop at once and drop the queue."""
        self._enabled = big_peer_only
        if big_peer_only:
            self.start()
            return
        if self._task is not None:
            self._task.cancel()  # the request in flight, if any, goes with it
            self._task = None
        await self._store.run(self._store.drop_outbox)
        await self._refresh()

    def start(self) -> None:
        """Start the sender (on the running loop) if the scope allows sending."""
        if self._closed:
            return
        if self._enabled and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="small-peer-info-replication"
            )
        self.wake()

    def wake(self) -> None:
        self._wake.set()
        if self._enabled and self._task is not None and self._task.done():
            self.start()  # never leave the queue without a sender
        self._schedule_refresh()

    def connection_facts(self) -> dict[str, Any]:
        connected = self.status.state is ConnectionState.CONNECTED
        return {
            "connections_by_transport": {TRANSPORT: 1 if connected else 0},
            "big_peer_connection_history": list(self._history),
        }

    async def close(self) -> None:
        self._closed = True
        for task in (self._task, self._refresh_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._refresh_task = None
        if self.status.state is ConnectionState.CONNECTED:
            self._record("disconnected")
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- the sender ------------------------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        batch_size = self.policy.batch_size
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._enabled:
                try:
                    batch = await self._store.run(self._store.outbox_batch, batch_size)
                    if not batch:
                        await self._refresh()
                        break
                    accepted = await self._send([body for _, body in batch])
                except _Refused as refused:
                    if refused.status == 413 and batch_size > 1:
                        batch_size = max(1, batch_size // 2)
                        continue
                    if refused.status in (400, 403, 413):
                        await self._store.run(self._store.drop_outbox, [seq for seq, _ in batch])
                        self._failed(str(refused), connected=True)
                        log.error("the Big Peer refused %d documents for good: %s", len(batch), refused)
                        continue
                    self._failed(str(refused), connected=True)
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    self._failed(f"cannot reach the Big Peer at {self.url}: {exc or type(exc).__name__}")
                except DittoClosedError:
                    return
                except Exception as exc:  # keep the sender alive whatever happens; say what it was
                    log.exception("replication to %s failed", self.url)
                    self._failed(f"replication failed: {exc!r}")
                else:
                    attempt = 0
                    await self._store.run(self._store.acknowledge, [seq for seq, _ in batch])
                    self._succeeded(accepted)
                    continue
                attempt += 1
                delay = random.uniform(0, min(self.policy.backoff_cap, self.policy.backoff_base * 2**attempt))
                await asyncio.sleep(delay)  # new documents do not cut the pause short

    async def _send(self, documents: list[bytes]) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.policy.request_timeout),
                headers={"User-Agent": "small-peer-inspector"},
            )
        body = b'{"documents":[' + b",".join(documents) + b"]}"
        headers = self._identity.request_headers("POST", INGEST_PATH, body)
        headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        async with self._session.post(self.url + INGEST_PATH, data=body, headers=headers) as response:
            text = await response.text(errors="replace")
            if response.status >= 300:
                raise _Refused(response.status, text[:300])
        return len(documents)

    # --- status ----------------------------------------------------------------------------------

    def _record(self, event: str, error: str | None = None) -> None:
        entry = {"event": event, "timestamp": format_timestamp(int(time.time() * 1000))}
        if error:
            entry["error"] = error
        self._history.append(entry)

    def _succeeded(self, accepted: int) -> None:
        if self.status.state is not ConnectionState.CONNECTED:
            self._record("connected")
        self.status = replace(
            self.status,
            state=ConnectionState.CONNECTED,
            acknowledged=self.status.acknowledged + accepted,
            last_error=None,
            last_acknowledged_at=time.time(),
        )
        self._schedule_refresh()

    def _failed(self, message: str, *, connected: bool = False) -> None:
        state = ConnectionState.CONNECTED if connected else ConnectionState.OFFLINE
        if self.status.state is ConnectionState.CONNECTED and not connected:
            self._record("disconnected")
        self._record("error", message)
        self.status = replace(self.status, state=state, last_error=message)
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        """Re-read the queue and tell observers, once, soon (many calls coalesce)."""
        if self._refresh_task is None or self._refresh_task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: nobody to tell yet
                self._refresh_task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            queued, dropped = await self._store.run(self._store.outbox_state)
        except Exception:  # closed meanwhile
            return
        status = replace(self.status, queue_length=queued, dropped=dropped)
        self.status = status
        self._emit(status)
