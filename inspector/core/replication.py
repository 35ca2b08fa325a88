"""Replication of small peer info to the Big Peer.

A document leaves the device only if the sync scope was ``BigPeerOnly`` when it was
collected (it is then put in the outbox, in the transaction that stores it) and
still is when it is sent. Switching to ``LocalPeerOnly`` cancels the request in
flight and drops the whole queue.

One sender task drains the outbox oldest first, one batch in flight at a time, and
removes documents only once the Big Peer's answer says it stored them: a ``200``
whose JSON body is ``{"accepted": N, "duplicates": M}`` with ``N + M`` the batch
size. Anything else (another 2xx, a redirect, which is never followed, a body of
another shape) keeps the batch queued and is the last error. While the Big Peer is
unreachable or failing it retries with exponential backoff and full jitter; the
queue survives restarts, and the Big Peer's idempotent ingestion makes a batch that
is sent again after a lost answer harmless. A batch the Big Peer refuses for good
(400, 403: the documents themselves are wrong) is dropped and counted, so one bad
document cannot block the queue; a 413 halves the batch; a 401 (wrong token) keeps
everything queued until the token is fixed, and the state says so.

Writes are signed with the peer's Ed25519 key (see `inspector.core.identity`): the
device token says who may write at all, the signature which documents. aiohttp is
imported only when a Big Peer is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from inspector.core.clock import Clock
from inspector.core.errors import DittoClosedError, PersistenceError
from inspector.core.timestamps import format_timestamp

if TYPE_CHECKING:
    import aiohttp

    from inspector.core.identity import Identity
    from inspector.core.store import Store

__all__ = [
    "NOT_CONFIGURED",
    "ConnectionState",
    "ReplicationPolicy",
    "ReplicationStatus",
    "Replicator",
    "check_big_peer_url",
]

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/small_peer_info"
TRANSPORT = "WebSocket"
"""The transport name the Big Peer link is counted under in ``connections_by_transport``."""


class ConnectionState(str, Enum):
    NOT_CONFIGURED = "not_configured"
    """No Big Peer URL was given: nothing can leave the device."""
    IDLE = "idle"
    """A Big Peer is configured but nothing was exchanged yet."""
    CONNECTED = "connected"
    """The Big Peer stored the last batch sent to it."""
    OFFLINE = "offline"
    """The Big Peer cannot be reached (refused, unresolvable, timed out); queued documents wait."""
    FAILING = "failing"
    """The Big Peer answers, but did not store the last batch (an error, a redirect, a strange answer)."""
    UNAUTHORIZED = "unauthorized"
    """The Big Peer refuses this device token (401); queued documents wait for the right one."""


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
    """The last failure, as a sentence (None once a batch was stored again)."""
    last_acknowledged_at: float | None = None
    sending: int = 0
    """Documents in the request in flight (0: nothing is being sent right now)."""


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
    """The Big Peer answered, but did not store the batch; the message is a sentence for people."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def describe_answer(status: int, body: bytes, content_type: str) -> str:
    """A sentence for an answer that is not an acknowledgement (never the raw body)."""
    detail = ""
    if "json" in content_type:
        with contextlib.suppress(orjson.JSONDecodeError, TypeError, AttributeError):
            error = orjson.loads(body).get("error", {})
            code, message = error.get("code"), error.get("message")
            if isinstance(message, str):
                detail = f": {message[:200]}" + (f" ({code})" if isinstance(code, str) else "")
    if status == 401:
        return "The Big Peer refuses this device token (401); set the right one and restart" + detail + "."
    if 300 <= status < 400:
        return (
            f"The Big Peer answered with a redirect ({status}), which is never followed: "
            "check the Big Peer URL."
        )
    if status == 404:
        return f"The Big Peer URL answers 404 (not found){detail}: check that it points at a Big Peer."
    if status >= 500:
        return f"The Big Peer failed to store the batch ({status}){detail}; it will be sent again."
    if status == 200:
        return "The Big Peer answered 200 without saying it stored the batch: check the Big Peer URL."
    return f"The Big Peer refused the batch ({status}){detail}."


class Replicator:
    """Sends queued documents of one peer to its Big Peer (see the module doc)."""

    def __init__(
        self,
        url: str,
        token: str | None,
        identity: Identity,
        store: Store,
        policy: ReplicationPolicy,
        clock: Clock,
        on_status: Callable[[ReplicationStatus], None],
        on_states: Callable[[Sequence[int], bool], None],
    ) -> None:
        """``on_status`` hears every status change; ``on_states(seqs, acknowledged)`` every batch done."""
        check_big_peer_url(url)
        self.url = url.rstrip("/")
        self.policy = policy
        self._token = token
        self._identity = identity
        self._store = store
        self._clock = clock
        self._on_status = on_status
        self._on_states = on_states
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._enabled = False  # the sync scope is BigPeerOnly
        self._closed = False
        self._history: deque[dict[str, str]] = deque(maxlen=policy.connection_history)
        self._refresh_task: asyncio.Task[None] | None = None
        queued, dropped = store.outbox_state_blocking()
        self.status = ReplicationStatus(ConnectionState.IDLE, queue_length=queued, dropped=dropped)

    # --- what the peer calls ---------------------------------------------------------------------

    def follow_scope(self, big_peer_only: bool) -> None:
        """Follow the sync scope: start sending, or stop at once (the request in flight goes with it)."""
        self._enabled = big_peer_only
        if big_peer_only:
            self.start()
            return
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._set(sending=0)
        self._schedule_refresh()

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
        import aiohttp  # only a peer with a Big Peer pays for it

        attempt = 0
        batch_size = self.policy.batch_size
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._enabled:
                try:
                    batch = await self._store.outbox_batch(batch_size)
                    if not batch:
                        await self.refresh()
                        break
                    self._set(sending=len(batch))
                    try:
                        await self._send([body for _, body in batch])
                    finally:
                        self._set(sending=0)
                except _Refused as refused:
                    if refused.status == 413 and batch_size > 1:
                        batch_size = max(1, batch_size // 2)
                        continue
                    if refused.status in (400, 403, 413):
                        dropped = await self._store.drop_outbox([seq for seq, _ in batch])
                        self._on_states(dropped, False)
                        self._failed(ConnectionState.FAILING, str(refused))
                        log.error("the Big Peer refused %d documents for good: %s", len(batch), refused)
                        continue
                    state = ConnectionState.UNAUTHORIZED if refused.status == 401 else ConnectionState.FAILING
                    self._failed(state, str(refused))
                except TimeoutError:
                    self._failed(
                        ConnectionState.OFFLINE,
                        f"The Big Peer at {self.url} did not answer within "
                        f"{self.policy.request_timeout:g} s; the batch will be sent again.",
                    )
                except PersistenceError as exc:
                    # The queue cannot be read or updated: nothing to send now; try again later.
                    if exc.message != self.status.last_error:
                        log.error("replication paused: %s", exc)
                    self._set(last_error=exc.message)
                except (aiohttp.ClientError, OSError) as exc:
                    reason = str(exc) or type(exc).__name__
                    self._failed(
                        ConnectionState.OFFLINE, f"Cannot reach the Big Peer at {self.url}: {reason}."
                    )
                except DittoClosedError:
                    return
                else:
                    attempt = 0
                    seqs = [seq for seq, _ in batch]
                    await self._store.acknowledge(seqs)
                    self._on_states(seqs, True)
                    self._succeeded(len(batch))
                    continue
                attempt += 1
                delay = random.uniform(0, min(self.policy.backoff_cap, self.policy.backoff_base * 2**attempt))
                await self._clock.sleep(delay)  # new documents do not cut the pause short

    async def _send(self, documents: list[bytes]) -> None:
        """POST one batch; return only if the Big Peer's answer says it stored every document."""
        import aiohttp

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
        async with self._session.post(
            self.url + INGEST_PATH, data=body, headers=headers, allow_redirects=False
        ) as response:
            answer = await response.content.read(64 * 1024)
            content_type = response.headers.get("Content-Type", "")
            if response.status == 200 and _acknowledges(answer, len(documents)):
                return
            raise _Refused(response.status, describe_answer(response.status, answer, content_type))

    # --- status ----------------------------------------------------------------------------------

    def _record(self, event: str, error: str | None = None) -> None:
        ts_ms = int(self._clock.time() * 1000)
        entry = {"event": event, "timestamp": format_timestamp(ts_ms)}
        if error:
            entry["error"] = error
        self._history.append(entry)
        self._store.record_marker_later(ts_ms, event, error or "")

    def _set(self, **changes: Any) -> None:
        status = replace(self.status, **changes)
        if status != self.status:
            self.status = status
            self._on_status(status)

    def _succeeded(self, accepted: int) -> None:
        if self.status.state is not ConnectionState.CONNECTED:
            self._record("connected")
        self._set(
            state=ConnectionState.CONNECTED,
            acknowledged=self.status.acknowledged + accepted,
            last_error=None,
            last_acknowledged_at=self._clock.time(),
        )
        self._schedule_refresh()

    def _failed(self, state: ConnectionState, message: str) -> None:
        if self.status.state is ConnectionState.CONNECTED:
            self._record("disconnected")
        if message != self.status.last_error or state is not self.status.state:
            self._record("error", message)
        self._set(state=state, last_error=message)
        self._schedule_refresh()

    def _schedule_refresh(self) -> None:
        """Re-read the queue and tell observers, once, soon (many calls coalesce)."""
        if self._refresh_task is None or self._refresh_task.done():
            with contextlib.suppress(RuntimeError):  # no running loop: nobody to tell yet
                self._refresh_task = asyncio.get_running_loop().create_task(self.refresh())

    async def refresh(self) -> None:
        """Read the queue's length and drops again, and tell observers if they moved."""
        try:
            queued, dropped = await self._store.outbox_state()
        except (DittoClosedError, PersistenceError):
            return
        self._set(queue_length=queued, dropped=dropped)


def _acknowledges(answer: bytes, size: int) -> bool:
    """Whether an answer body is ``{"accepted": N, "duplicates": M}`` with ``N + M == size``."""
    try:
        payload = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return False
    if not isinstance(payload, dict) or set(payload) != {"accepted", "duplicates"}:
        return False
    accepted, duplicates = payload["accepted"], payload["duplicates"]
    return (
        type(accepted) is int
        and type(duplicates) is int
        and accepted >= 0
        and duplicates >= 0
        and accepted + duplicates == size
    )
