"""A Big Peer read over HTTP: `BigPeerClient` (the admin reads) and `BigPeerHistory` (one device's history).

Qt-free (aiohttp on the running asyncio loop), so the fleet window adapts it and
plain async tests cover it.

`BigPeerClient` speaks the Big Peer's admin API (`inspector.big_peer.app` documents
it): the fleet query and a device's history, each a conditional read (an ``ETag``
answered ``304`` when nothing changed, which costs the Big Peer one version
lookup). One ``aiohttp.ClientSession`` per client, made on first use; every request
has a deadline; redirects are never followed (an admin token must not travel to
another address). Whatever goes wrong is one of the `BigPeerError` subclasses, with
a message written for people.

`BigPeerHistory` is a `HistorySource` for one device at the Big Peer: see its doc.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import socket
import time
import urllib.parse
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import orjson

from inspector._version import __version__
from inspector.core.series import SeriesBuckets, bucketize, empty_series
from inspector.core.store import Marker, numeric_leaves
from inspector.core.timestamps import format_timestamp, parse_timestamp
from inspector.history.source import (
    HistoryChange,
    HistoryRow,
    RowsAppended,
    SourceReset,
    Unsubscribe,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "MAX_PAGE",
    "USER_AGENT",
    "BigPeerClient",
    "BigPeerError",
    "BigPeerHistory",
    "BigPeerProtocolError",
    "BigPeerServerError",
    "BigPeerTimeoutError",
    "BigPeerUnreachableError",
    "FleetDevice",
    "FleetPage",
    "FleetSortOrder",
    "HistoryPage",
    "TokenRefusedError",
    "UnknownDeviceError",
]

DEFAULT_TIMEOUT = 10.0
"""Seconds a request may take, connecting included, before it counts as failed."""
MAX_PAGE = 1000
"""The most documents or devices the Big Peer answers in one page."""
MAX_ANSWER_BYTES = 256 * 1024 * 1024
"""A larger answer is refused unread (1000 documents of the largest metadata fit)."""
USER_AGENT = f"small-peer-inspector/{__version__} (fleet)"

T = TypeVar("T")


# --- errors ------------------------------------------------------------------------------------


class BigPeerError(Exception):
    """A read of the Big Peer failed; ``str(error)`` says why, for people."""


class TokenRefusedError(BigPeerError):
    """``401``: the Big Peer refused the admin token (wrong or missing)."""


class BigPeerUnreachableError(BigPeerError):
    """No connection: refused, reset, the name does not resolve, the address is wrong."""


class BigPeerTimeoutError(BigPeerError):
    """The Big Peer did not answer in time."""


class BigPeerServerError(BigPeerError):
    """A ``5xx``: the Big Peer (or a proxy in front of it) failed; ``status`` is the HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BigPeerProtocolError(BigPeerError):
    """An answer that is not the Big Peer's: a redirect, an unexpected status, a body that is not its JSON."""


class UnknownDeviceError(BigPeerError):
    """``404 unknown_device``: the Big Peer has no document of this device."""


class FleetSortOrder:
    """The orders the fleet query knows (its ``sort`` parameter)."""

    DEVICE_NAME = "device_name"
    """Device name ascending (code point order), ties by peer key."""
    LAST_UPDATED_AT = "last_updated_at"
    """Newest ``last_updated_at`` first."""


# --- what the reads answer ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FleetDevice:
    """One device summary of the fleet query (`inspector.big_peer.fleet` defines its fields).

    ``metadata`` is None when the summary left it out for its size (``metadata_bytes``
    then says how large it is) or when the device has none. ``fields`` is the
    summary as received.
    """

    peer_key: str
    device_name: str | None
    sdk_language: str | None
    sdk_platform: str | None
    sdk_version: str | None
    last_updated_at: str
    last_updated_ms: int
    received_ms: int | None
    document_count: int
    interval_seconds: float | None
    device_available: float | None
    metadata: Any
    metadata_bytes: int | None
    fields: Mapping[str, Any]

    @property
    def title(self) -> str:
        """The device name, or the peer key of a device without one."""
        return self.device_name or self.peer_key


@dataclass(frozen=True, slots=True)
class FleetPage:
    """One page of the fleet query: its devices, the cursor of the next page, how many match."""

    devices: tuple[FleetDevice, ...]
    next: str | None
    total: int
    etag: str | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """Documents of a device's history, newest first: compact JSON and decoded, side by side."""

    documents: tuple[bytes, ...]
    decoded: tuple[dict[str, Any], ...]
    etag: str | None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _number(value: Any) -> float | None:
    return float(value) if type(value) in (int, float) else None


def _device(fields: Any) -> FleetDevice:
    if not isinstance(fields, dict) or not isinstance(fields.get("peer_key"), str):
        raise BigPeerProtocolError("a device of the fleet answer is not a device summary")
    try:
        updated = str(fields.get("last_updated_at"))
        updated_ms = parse_timestamp(updated)
        received = fields.get("received_at")
        received_ms = parse_timestamp(received) if isinstance(received, str) else None
    except ValueError as exc:
        raise BigPeerProtocolError(f"a device summary has a malformed time: {exc}") from None
    disk = fields.get("device_disk_usage")
    count = fields.get("document_count")
    size = fields.get("metadata_bytes")
    return FleetDevice(
        peer_key=fields["peer_key"],
        device_name=_text(fields.get("device_name")),
        sdk_language=_text(fields.get("ditto_sdk_language")),
        sdk_platform=_text(fields.get("ditto_sdk_platform")),
        sdk_version=_text(fields.get("ditto_sdk_version")),
        last_updated_at=updated,
        last_updated_ms=updated_ms,
        received_ms=received_ms,
        document_count=count if type(count) is int and count >= 0 else 0,
        interval_seconds=_number(fields.get("interval_seconds")),
        device_available=_number(disk.get("device_available")) if isinstance(disk, dict) else None,
        metadata=fields.get("metadata"),
        metadata_bytes=size if type(size) is int else None,
        fields=fields,
    )


def _fleet_page(body: bytes, etag: str | None) -> FleetPage:
    answer = _json(body)
    if (
        not isinstance(answer, dict)
        or not isinstance(answer.get("devices"), list)
        or type(answer.get("total")) is not int
        or not (answer.get("next") is None or isinstance(answer.get("next"), str))
    ):
        raise BigPeerProtocolError("the fleet answer is not {devices, next, total}")
    return FleetPage(tuple(_device(d) for d in answer["devices"]), answer["next"], answer["total"], etag)


def _history_page(body: bytes, etag: str | None) -> HistoryPage:
    answer = _json(body)
    if not isinstance(answer, dict) or not isinstance(answer.get("documents"), list):
        raise BigPeerProtocolError("the history answer is not {documents: [...]}")
    decoded = tuple(answer["documents"])
    for document in decoded:
        if not isinstance(document, dict) or not isinstance(document.get("last_updated_at"), str):
            raise BigPeerProtocolError("a document of the history answer has no last_updated_at")
    return HistoryPage(tuple(orjson.dumps(d) for d in decoded), decoded, etag)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BigPeerProtocolError(f"the answer is not JSON ({exc.msg} at line {exc.lineno})") from None


def _error_text(body: bytes) -> str:
    """The message of the Big Peer's JSON error body, or the start of whatever the body is."""
    with contextlib.suppress(orjson.JSONDecodeError):
        answer = orjson.loads(body)
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            message = answer["error"].get("message")
            if isinstance(message, str):
                return message[:300]
    text = body[:120].decode("utf-8", "replace").strip()
    return " ".join(text.split())


# --- the client --------------------------------------------------------------------------------


class BigPeerClient:
    """The admin reads of one Big Peer with one token (see the module doc).

    ``server_offset`` estimates the Big Peer's clock minus this machine's (seconds,
    from the ``Date`` of its answers: good to a second), so that "received 3 s ago"
    is measured on the clock that stamped ``received_at``. ``requests`` counts the
    requests sent. Close it with ``await close()``.
    """

    def __init__(self, url: str, token: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self.requests = 0
        self.server_offset = 0.0

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close the connections (idempotent); later reads raise `BigPeerError`."""
        self._closed = True
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise BigPeerError("the connection to the Big Peer was closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
                connector=aiohttp.TCPConnector(limit=4),
            )
        return self._session

    async def _get(self, path: str, params: Mapping[str, str], etag: str | None) -> tuple[bytes, str] | None:
        """GET ``path``: (body, ETag) of a ``200``, None for a ``304``; else a `BigPeerError`."""
        session = self._get_session()
        headers = {"Authorization": f"Bearer {self._token}"}
        if etag is not None:
            headers["If-None-Match"] = etag
        query = urllib.parse.urlencode(params)
        address = f"{self.url}{path}" + (f"?{query}" if query else "")
        self.requests += 1
        sent = time.time()
        try:
            async with asyncio.timeout(self.timeout):
                async with session.get(address, headers=headers, allow_redirects=False) as response:
                    length = response.content_length
                    if length is not None and length > MAX_ANSWER_BYTES:
                        raise BigPeerProtocolError(f"the answer is too large ({length:,} bytes)")
                    body = await _read_body(response)
                    status, answer_headers = response.status, response.headers
        except TimeoutError:
            raise BigPeerTimeoutError(f"the Big Peer did not answer within {self.timeout:g} s") from None
        except aiohttp.InvalidURL:
            raise BigPeerUnreachableError(f"{self.url} is not a URL the inspector can reach") from None
        except (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError) as exc:
            raise BigPeerUnreachableError(
                f"the Big Peer at {self.url} cannot be reached ({_reason(exc)})"
            ) from None
        except aiohttp.ClientError as exc:
            raise BigPeerUnreachableError(
                f"the connection to the Big Peer at {self.url} failed ({_reason(exc)})"
            ) from None
        self._note_date(answer_headers.get("Date"), sent)
        if status == 304 and etag is not None:
            return None
        if status == 200:
            return body, answer_headers.get("ETag", "")
        if status == 401:
            raise TokenRefusedError("The admin token was refused")
        if 300 <= status < 400:
            where = answer_headers.get("Location", "elsewhere")
            raise BigPeerProtocolError(
                f"the Big Peer answered with a redirect ({status} to {where}); the inspector never follows "
                "one with the admin token: give it the address the Big Peer serves on"
            )
        if status >= 500:
            raise BigPeerServerError(f"the Big Peer failed (HTTP {status}: {_error_text(body)})", status)
        if status == 404 and b"unknown_device" in body:
            raise UnknownDeviceError(_error_text(body))
        raise BigPeerProtocolError(
            f"unexpected answer HTTP {status} ({_error_text(body)}); is {self.url} a Big Peer?"
        )

    def _note_date(self, header: str | None, sent: float) -> None:
        if not header:
            return
        with contextlib.suppress(TypeError, ValueError):
            moment = email.utils.parsedate_to_datetime(header).timestamp()
            # Date is truncated to the second: its middle is the best guess of the moment it names.
            received = time.time()
            self.server_offset = moment + 0.5 - (sent + received) / 2

    async def fleet(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        q: str = "",
        sort: str = FleetSortOrder.DEVICE_NAME,
        etag: str | None = None,
    ) -> FleetPage | None:
        """One page of the fleet query; None when ``etag`` still holds (nothing stored since)."""
        params = {"limit": str(limit), "sort": sort}
        if q:
            params["q"] = q
        if after:
            params["after"] = after
        answer = await self._get("/api/v1/fleet", params, etag)
        return None if answer is None else _fleet_page(*answer)

    async def history(
        self, peer_key: str, *, limit: int = 100, before: str | None = None, etag: str | None = None
    ) -> HistoryPage | None:
        """Documents of a device, newest first, older than ``before``; None when ``etag`` still holds."""
        params = {"limit": str(limit)}
        if before is not None:
            params["before"] = before
        path = f"/api/v1/devices/{urllib.parse.quote(peer_key, safe='')}/history"
        answer = await self._get(path, params, etag)
        return None if answer is None else _history_page(*answer)

    async def find_device(self, peer_key: str) -> FleetDevice | None:
        """The summary of one device, or None if the Big Peer does not know it.

        The fleet query has no lookup by key: its ``q`` matches peer keys, so this
        pages through the (few) devices whose name, key or metadata contain the key.
        """
        after: str | None = None
        for _ in range(100):
            page = await self.fleet(limit=MAX_PAGE, q=peer_key, after=after)
            assert page is not None
            for device in page.devices:
                if device.peer_key == peer_key:
                    return device
            if page.next is None:
                return None
            after = page.next
        return None


async def _read_body(response: aiohttp.ClientResponse) -> bytes:
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise BigPeerProtocolError(f"the answer is larger than {MAX_ANSWER_BYTES:,} bytes")
    return bytes(body)


def _reason(exc: BaseException) -> str:
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused: is it running, on this port?"
    if isinstance(os_error, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "it closed the connection"
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror[:1].lower() + os_error.strerror[1:]
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


# --- one device's history ----------------------------------------------------------------------

WINDOW_DOCUMENTS = 5000
"""`BigPeerHistory` plots, searches and marks the newest this many documents of a device…"""
WINDOW_BYTES = 64 * 1024 * 1024
"""…or fewer, when their compact JSON passes this many bytes."""
OLDER_DOCUMENTS = 4000
"""Documents older than the window kept after a read (the timeline scrolled back, an export)."""
POLL_INTERVAL = 2.5
"""Seconds between two conditional reads of the device's newest documents while subscribed."""
POLL_PAGE = 20
"""Documents asked for per poll; when all of them are new, older pages follow until a known one."""
MAX_POLL_NEW = 5000
"""More new documents than this at once: the history is read again (`SourceReset`) instead."""
FIRST_PAGE = 200
"""Documents read with the device's count when the history is first read."""
_ANCHOR_ATTEMPTS = 4


class _Document:
    """What the history keeps of one document: its JSON and what the views ask of it."""

    __slots__ = ("connection_events", "metadata_key", "numbers", "size", "text", "ts_ms")

    def __init__(self, text: bytes, decoded: Mapping[str, Any]) -> None:
        self.text = text
        self.size = len(text)
        self.ts_ms = parse_timestamp(decoded["last_updated_at"])
        metadata = decoded.get("metadata")
        self.metadata_key = hashlib.blake2b(orjson.dumps(metadata), digest_size=16).digest()
        self.numbers = numeric_leaves(decoded)
        events: list[tuple[int, str, str]] = []
        history = decoded.get("big_peer_connection_history")
        if isinstance(history, list):
            for entry in history:
                if isinstance(entry, dict) and isinstance(entry.get("event"), str):
                    with contextlib.suppress(ValueError):
                        at = parse_timestamp(str(entry.get("timestamp")))
                        events.append((at, entry["event"], str(entry.get("error") or "")))
        self.connection_events = tuple(events)

    def row(self, index: int) -> HistoryRow:
        return HistoryRow(
            index,
            self.ts_ms,
            self.size,
            self.metadata_key,
            self.numbers.get("device_disk_usage.device_available"),
            self.numbers.get("device_disk_usage.ditto_total"),
            None,
            self.numbers,
        )


class _HistoryChanged(BigPeerError):
    """The device's history is not what the indices were built on (an older document arrived)."""


class BigPeerHistory:
    """The history of device ``peer_key`` at a Big Peer, as a `HistorySource` (read-only).

    Indices are ordinals counting from the oldest document (1) to the newest (the
    device's ``document_count``): the Big Peer never deletes a document, so an index
    names the same document for good. Pages are read from the newest with
    ``before`` (the API's only way back); the boundary of every page read is kept,
    so a later read of older documents starts from the nearest one instead of the
    newest. If an older document arrives after newer ones (the indices shift), the
    source says `SourceReset` and numbers everything again.

    Bounded memory: the *window* is the newest `WINDOW_DOCUMENTS` documents (fewer
    if their JSON passes `WINDOW_BYTES`); up to `OLDER_DOCUMENTS` more are kept from
    reads further back, least recently used first out. `series`, `markers`,
    `marker_columns`, `numeric_paths`, `index_at_or_before`, `time_bounds` and
    `search` answer over the window (read in full on first use): the plot shows the
    newest documents, and the timeline's filter searches their whole JSON text,
    ASCII case-insensitively. `rows`, `document` and `documents` reach every
    document, however old.

    Markers are computed from the documents: a metadata change between two
    consecutive documents of the window, and the entries of each document's
    ``big_peer_connection_history`` (each event once, however many documents repeat
    it).

    Live: while anyone is subscribed, the device's newest documents are read every
    `POLL_INTERVAL` seconds with ``If-None-Match`` (a ``304`` costs the Big Peer one
    version lookup), and new ones arrive as `RowsAppended` with their rows. After
    a failed read the next successful poll says `SourceReset`, so views that gave
    up on a page read it again: the source recovers by itself when the Big Peer does.
    """

    def __init__(
        self,
        client: BigPeerClient,
        peer_key: str,
        *,
        title: str | None = None,
        summary: FleetDevice | None = None,
        window: int = WINDOW_DOCUMENTS,
        window_bytes: int = WINDOW_BYTES,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self._client = client
        self.peer_key = peer_key
        self._title = title or (summary.title if summary is not None else peer_key)
        self._summary = summary
        self._window_size = max(1, window)
        self._window_bytes = window_bytes
        self.poll_interval = poll_interval
        self._newest = 0
        self._anchored = False
        self._etag: str | None = None
        self._window: dict[int, _Document] = {}
        self._window_complete = False  # every document of the window was read
        self._older: OrderedDict[int, _Document] = OrderedDict()
        self._boundaries: dict[int, str] = {}  # index -> last_updated_at, of page ends outside the window
        self._reading = asyncio.Lock()
        self._listeners: list[Callable[[HistoryChange], None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._failed = False
        self._closed = False
        self.error: BigPeerError | None = None
        """Why the last read failed, or None once one succeeded."""
        self.polls = 0
        """How many polls were made (for tests)."""

    # --- what it is ----------------------------------------------------------------------------

    @property
    def title(self) -> str:
        return self._title

    @property
    def has_replication(self) -> bool:
        return False

    @property
    def window_size(self) -> int:
        """The most documents `series`, `markers` and `search` look at (the newest ones)."""
        return self._window_size

    def close(self) -> None:
        """Stop polling and forget the listeners (the client stays open: its owner closes it)."""
        self._closed = True
        self._listeners.clear()
        if self._poller is not None:
            self._poller.cancel()

    async def wait_closed(self) -> None:
        """After `close`: wait until the poll has stopped."""
        self.close()
        if self._poller is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None

    # --- reading -------------------------------------------------------------------------------

    async def _read(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a read under the lock, noting failures so the next successful poll resets the views."""
        async with self._reading:
            try:
                if not self._anchored:
                    await self._anchor()
                result = await operation()
            except _HistoryChanged:
                self._anchored = False
                self._failed = True
                raise
            except BigPeerError as exc:
                self._failed = True
                self.error = exc
                raise
            self.error = None
            return result

    async def _anchor(self) -> None:
        """Number the history: the device's count and its newest documents, read consistently."""
        summary = self._summary
        self._summary = None  # a summary is used once: a later anchor asks for a fresh one
        for _ in range(_ANCHOR_ATTEMPTS):
            if summary is None:
                summary = await self._client.find_device(self.peer_key)
                if summary is None:
                    raise UnknownDeviceError(f"the Big Peer has no document from {self.peer_key}")
            page = await self._client.history(self.peer_key, limit=FIRST_PAGE)
            assert page is not None
            texts = [d["last_updated_at"] for d in page.decoded]
            if summary.last_updated_at in texts:
                # The summary's newest document is number document_count; newer ones came since.
                position = texts.index(summary.last_updated_at)
                newest = summary.document_count + position
            elif not texts:
                newest = 0
            else:
                summary = None  # too many arrived since the summary, or it is from another time
                continue
            self._newest = newest
            self._window.clear()
            self._older.clear()
            self._boundaries.clear()
            self._window_complete = newest == 0
            for offset, (text, decoded) in enumerate(zip(page.documents, page.decoded, strict=True)):
                self._keep(newest - offset, _Document(text, decoded))
            if newest and len(page.documents) < FIRST_PAGE and newest - len(page.documents) + 1 != 1:
                raise _HistoryChanged("the device's history is shorter than its count")
            if len(page.documents) == newest:
                self._window_complete = True
            self._etag = page.etag
            self._anchored = True
            return
        raise BigPeerProtocolError("the device's history kept changing while it was read; try again")

    def _window_floor(self) -> int:
        return max(1, self._newest - self._window_size + 1)

    def _keep(self, index: int, document: _Document) -> None:
        if index >= self._window_floor():
            self._window[index] = document
        else:
            self._older[index] = document
            self._older.move_to_end(index)
            while len(self._older) > OLDER_DOCUMENTS:
                self._older.popitem(last=False)

    def _known(self, index: int) -> _Document | None:
        found = self._window.get(index)
        if found is None:
            found = self._older.get(index)
            if found is not None:
                self._older.move_to_end(index)
        return found

    def _stamp(self, index: int) -> str | None:
        """The ``last_updated_at`` of document ``index``, if known (to page back from it)."""
        known = self._known(index)
        if known is not None:
            return format_timestamp(known.ts_ms)
        return self._boundaries.get(index)

    async def _ensure(self, first: int, last: int) -> None:
        """Read every document of ``first..last`` that is not kept (under the lock)."""
        first, last = max(1, first), min(self._newest, last)
        index = last
        while index >= first:
            if self._known(index) is not None:
                index -= 1
                continue
            low = index  # the run of missing documents: low..index
            while low - 1 >= first and self._known(low - 1) is None:
                low -= 1
            # Page back from the nearest document above with a known time (none: from the newest).
            above = index + 1
            while above <= self._newest and self._stamp(above) is None:
                above += 1
            before = self._stamp(above) if above <= self._newest else None
            while above > low:
                limit = min(MAX_PAGE, above - low)
                page = await self._client.history(self.peer_key, limit=limit, before=before)
                assert page is not None
                if len(page.documents) < limit:
                    raise _HistoryChanged("the device's history has fewer documents than its count")
                for offset, (text, decoded) in enumerate(zip(page.documents, page.decoded, strict=True)):
                    self._keep(above - 1 - offset, _Document(text, decoded))
                above -= len(page.documents)
                before = page.decoded[-1]["last_updated_at"]
                if above < self._window_floor():
                    self._boundaries[above] = before
            index = low - 1

    async def _read_window(
        self, operation: Callable[[], Awaitable[T]], progress: Callable[[float], None] | None = None
    ) -> T:
        """``operation`` over the window, read first a page per turn of the lock.

        A timeline's first screen then waits for one page of the window, not the whole of it.
        """
        while not await self._read(lambda: self._window_step(progress)):
            pass
        return await self._read(operation)

    async def _window_step(self, progress: Callable[[float], None] | None = None) -> bool:
        """Read the next page of the window, newest first; True once it is complete.

        Complete also when the window's documents pass `WINDOW_BYTES`.
        """
        if self._window_complete:
            return True
        floor = self._window_floor()
        index = self._newest
        while index >= floor and index in self._window:
            index -= 1
        used = sum(document.size for document in self._window.values())
        if index < floor or used > self._window_bytes:
            self._window_complete = True
            self._trim_window()
            return True
        low = max(floor, index - MAX_PAGE + 1)
        await self._ensure(low, index)
        if progress is not None:
            progress((self._newest - low + 1) / max(1, self._newest - floor + 1))
        return False

    async def _ensure_window(self) -> None:
        """Complete the window under the lock (normally done already by `_read_window`)."""
        while not await self._window_step():
            pass

    def _trim_window(self) -> None:
        """Keep the window within its count and bytes: the oldest go to the older documents."""
        floor = self._window_floor()
        indices = sorted(self._window, reverse=True)
        used = 0
        for index in indices:
            used += self._window[index].size
            if index < floor or (used > self._window_bytes and index != indices[0]):
                self._keep_older(index, self._window.pop(index))

    def _keep_older(self, index: int, document: _Document) -> None:
        self._older[index] = document
        while len(self._older) > OLDER_DOCUMENTS:
            self._older.popitem(last=False)

    def _window_items(self) -> list[tuple[int, _Document]]:
        """The window's documents, oldest first (contiguous from the newest down)."""
        items = []
        index = self._newest
        while index >= 1 and (document := self._window.get(index)) is not None:
            items.append((index, document))
            index -= 1
        items.reverse()
        return items

    # --- the HistorySource protocol -----------------------------------------------------------

    async def bounds(self) -> tuple[int, int]:
        async def read() -> tuple[int, int]:
            return (1, self._newest) if self._newest else (0, 0)

        return await self._read(read)

    async def rows(self, first: int, last: int) -> list[HistoryRow]:
        async def read() -> list[HistoryRow]:
            await self._ensure(first, last)
            found = []
            for index in range(min(last, self._newest), max(1, first) - 1, -1):
                document = self._known(index)
                if document is not None:
                    found.append(document.row(index))
            return found

        return await self._read(read)

    async def document(self, index: int) -> bytes | None:
        async def read() -> bytes | None:
            if not 1 <= index <= self._newest:
                return None
            await self._ensure(index, index)
            known = self._known(index)
            return None if known is None else known.text

        return await self._read(read)

    async def documents(self, first: int, last: int) -> list[tuple[int, bytes]]:
        async def read() -> list[tuple[int, bytes]]:
            await self._ensure(first, last)
            found = []
            for index in range(min(last, self._newest), max(1, first) - 1, -1):
                document = self._known(index)
                if document is not None:
                    found.append((index, document.text))
            return found

        return await self._read(read)

    async def search(self, needle: str, limit: int, newer_than: int = 0) -> tuple[list[int], tuple[int, int]]:
        """Indices of the window's documents whose JSON contains ``needle`` (ASCII case-insensitively)."""

        async def read() -> tuple[list[int], tuple[int, int]]:
            await self._ensure_window()
            lowered = needle.encode("utf-8").lower()
            found: list[int] = []
            for index, document in reversed(self._window_items()):
                if index <= newer_than or len(found) >= limit:
                    break
                if lowered in document.text.lower():
                    found.append(index)
            return found, ((1, self._newest) if self._newest else (0, 0))

        return await self._read_window(read)

    async def index_at_or_before(self, ts_ms: int) -> int | None:
        async def read() -> int | None:
            await self._ensure_window()
            items = self._window_items()
            if not items:
                return None
            position = bisect_right([document.ts_ms for _, document in items], ts_ms)
            return items[max(0, position - 1)][0]

        return await self._read_window(read)

    async def time_bounds(self) -> tuple[int, int] | None:
        """The times of the window's oldest and newest documents (the span the plot covers)."""

        async def read() -> tuple[int, int] | None:
            await self._ensure_window()
            items = self._window_items()
            return (items[0][1].ts_ms, items[-1][1].ts_ms) if items else None

        return await self._read_window(read)

    async def numeric_paths(self) -> list[str]:
        async def read() -> list[str]:
            await self._ensure_window()
            document_paths: dict[str, None] = {}
            metadata_paths: set[str] = set()
            for _, document in reversed(self._window_items()):
                for path in document.numbers:
                    if path.startswith("metadata."):
                        metadata_paths.add(path)
                    else:
                        document_paths.setdefault(path)
            return [*document_paths, *sorted(metadata_paths)]

        return await self._read_window(read)

    async def series(
        self,
        paths: Sequence[str],
        first_ms: int,
        last_ms: int,
        buckets: int,
        progress: Callable[[float], None] | None = None,
    ) -> dict[str, SeriesBuckets]:
        import numpy as np

        async def read() -> dict[str, SeriesBuckets]:
            await self._ensure_window()
            kept = [d for _, d in self._window_items() if first_ms <= d.ts_ms <= last_ms]
            if not kept:
                return {path: empty_series(path) for path in paths}
            times = np.fromiter((d.ts_ms for d in kept), dtype=np.int64, count=len(kept))
            ones = np.ones(len(kept), dtype=np.int64)
            out = {}
            for path in paths:
                values = np.fromiter(
                    (d.numbers.get(path, np.nan) for d in kept), dtype=np.float64, count=len(kept)
                )
                out[path] = bucketize(
                    path, first_ms, last_ms, max(1, buckets), times, times, ones, values, values
                )
            return out

        return await self._read_window(read, progress)

    def _markers(self) -> list[Marker]:
        items = self._window_items()
        markers: list[Marker] = []
        previous: _Document | None = None
        events: set[tuple[int, str, str]] = set()
        for _, document in items:
            if previous is not None and document.metadata_key != previous.metadata_key:
                markers.append(Marker(document.ts_ms, "metadata", _metadata_change(previous, document)))
            events.update(document.connection_events)
            previous = document
        markers.extend(Marker(at, kind, detail) for at, kind, detail in events)
        markers.sort(key=lambda marker: marker.ts_ms)
        return markers

    async def markers(self, first_ms: int, last_ms: int) -> list[Marker]:
        async def read() -> list[Marker]:
            await self._ensure_window()
            return [m for m in self._markers() if first_ms <= m.ts_ms <= last_ms]

        return await self._read_window(read)

    async def marker_columns(self, first_ms: int, last_ms: int, buckets: int) -> list[tuple[str, int, int]]:
        async def read() -> list[tuple[str, int, int]]:
            await self._ensure_window()
            buckets_ = max(1, buckets)
            span = max(1, last_ms - first_ms + 1)
            columns: dict[tuple[str, int], list[int]] = {}
            for marker in self._markers():
                if first_ms <= marker.ts_ms <= last_ms:
                    key = (marker.kind, (marker.ts_ms - first_ms) * buckets_ // span)
                    column = columns.setdefault(key, [marker.ts_ms, 0])
                    column[1] += 1
            return sorted(
                ((kind, at, count) for (kind, _), (at, count) in columns.items()), key=lambda c: c[1]
            )

        return await self._read_window(read)

    async def timestamps(self, indices: Sequence[int]) -> dict[int, int]:
        async def read() -> dict[int, int]:
            wanted = sorted({i for i in indices if 1 <= i <= self._newest})
            missing = [i for i in wanted if self._known(i) is None]
            if 0 < len(missing) <= 64:  # a selection or two; a filter's matches are in the window
                for index in missing:
                    await self._ensure(index, index)
            found = {}
            for index in wanted:
                document = self._known(index)
                if document is not None:
                    found[index] = document.ts_ms
            return found

        return await self._read(read)

    # --- live ----------------------------------------------------------------------------------

    def subscribe(self, listener: Callable[[HistoryChange], None]) -> Unsubscribe:
        """Hear about new documents (polling the Big Peer while anyone listens)."""
        self._listeners.append(listener)
        if self._poller is None and not self._closed:
            self._poller = asyncio.get_running_loop().create_task(
                self._poll_loop(), name=f"big peer history: poll {self.peer_key[:12]}"
            )

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)
            if not self._listeners and self._poller is not None:
                self._poller.cancel()
                self._poller = None

        return unsubscribe

    def _tell(self, change: HistoryChange) -> None:
        for listener in list(self._listeners):
            listener(change)

    async def _poll_loop(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.poll_interval)
            with contextlib.suppress(BigPeerError):
                await self.poll()

    async def poll(self) -> None:
        """Read the device's newest documents once (conditionally) and tell listeners what is new."""
        self.polls += 1
        change: HistoryChange | None
        async with self._reading:
            try:
                change = await self._poll_once()
            except _HistoryChanged:
                self._anchored = False
                change = SourceReset()
            except BigPeerError as exc:
                self._failed = True
                self.error = exc
                raise
            self.error = None
            if self._failed:  # views gave up on what they could not read: have them read again
                change = SourceReset()
                self._failed = False
        if change is not None and not self._closed:
            self._tell(change)

    async def _poll_once(self) -> HistoryChange | None:
        if not self._anchored:
            await self._anchor()
            return None
        page = await self._client.history(self.peer_key, limit=POLL_PAGE, etag=self._etag)
        if page is None:
            return None
        newest = self._known(self._newest) if self._newest else None
        newest_ms = newest.ts_ms if newest is not None else -1
        fresh: list[tuple[bytes, dict[str, Any]]] = []
        while True:
            new = [
                (text, decoded)
                for text, decoded in zip(page.documents, page.decoded, strict=True)
                if parse_timestamp(decoded["last_updated_at"]) > newest_ms
            ]
            fresh.extend(new)
            if len(new) < len(page.documents) or not page.documents or not self._newest:
                break
            if len(fresh) > MAX_POLL_NEW:
                raise _HistoryChanged("more new documents than a poll reads")
            # Every document of the page is new: the ones between it and the known newest follow.
            older = await self._client.history(
                self.peer_key, limit=MAX_PAGE, before=page.decoded[-1]["last_updated_at"]
            )
            assert older is not None
            page = HistoryPage(older.documents, older.decoded, page.etag)
        if not fresh or (self._newest and newest is None):
            # The tag moved without a newer document: if the count moved too, an older one
            # arrived and every index above it shifted.
            device = await self._client.find_device(self.peer_key)
            if device is None or device.document_count != self._newest:
                raise _HistoryChanged("the device's history changed below its newest document")
            self._etag = page.etag
            return None
        self._newest += len(fresh)
        rows = []
        for offset, (text, decoded) in enumerate(fresh):
            index = self._newest - offset
            document = _Document(text, decoded)
            self._window[index] = document
            rows.append(document.row(index))
        self._etag = page.etag
        self._trim_window()
        return RowsAppended(self._newest, tuple(rows))


def _metadata_change(previous: _Document, document: _Document) -> str:
    """What changed in the metadata, for a marker's tooltip: the top-level keys."""
    try:
        old = orjson.loads(previous.text).get("metadata")
        new = orjson.loads(document.text).get("metadata")
    except (orjson.JSONDecodeError, AttributeError):
        return "metadata changed"
    if not isinstance(old, dict) or not isinstance(new, dict):
        return "metadata changed"
    parts = []
    for label, keys in (
        ("changed", [k for k in new if k in old and new[k] != old[k]]),
        ("added", [k for k in new if k not in old]),
        ("removed", [k for k in old if k not in new]),
    ):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) or "metadata changed"
