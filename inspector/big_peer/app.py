"""The Big Peer's HTTP API (aiohttp).

Every body is JSON. Every error is ``{"error": {"code": "...", "message": "..."}}``
with ``Content-Type: application/json``: the code is stable and machine-readable,
the message says what to fix.

``GET /healthz``
    ``200 {"status": "ok"}``; no token.

``POST /api/v1/small_peer_info``
    Needs ``Authorization: Bearer <device token>`` and a signed body
    ``{"documents": [doc, ...]}``; the signature headers (``X-Peer-Key``,
    ``X-Peer-Timestamp``, ``X-Peer-Nonce``, ``X-Peer-Signature``) are made by
    ``Identity.request_headers`` and checked by ``verify_request`` of
    `inspector.core.identity`. Checked in this order, the first failure answers:

    1. ``413 body_too_large``: ``Content-Length`` above ``--max-body-bytes``,
       decided before anything else (no token check, no read). Without a
       ``Content-Length`` (chunked) the limit stops the read. A client sending
       ``Expect: 100-continue`` gets the 413 before it sends the body.
    2. ``401 missing_token`` / ``401 wrong_token``: no bearer token, or not the
       device token. The admin token does not write: each endpoint accepts exactly
       one token, and any other is wrong (401).
    3. ``400 unsupported_content_encoding`` for a compressed body (never decoded);
       ``400 invalid_json`` / ``invalid_batch`` / ``invalid_document``: not JSON
       (or not UTF-8), not exactly ``{"documents": [...]}``, an empty list, a
       document that is not an object, lacks a string ``_id``, or lacks a
       ``last_updated_at`` like ``2026-11-26T05:38:12.345Z``, or has a summary field
       of a type no peer sends (``device_name`` not a string...). A document the
       Big Peer could not store unchanged, or that no peer could have sent:
       ``400 nesting_too_deep`` (past 128 levels), ``400 integer_out_of_range``
       (outside 64 bits), ``400 invalid_metadata`` (breaks a metadata rule; the
       message names the rule). ``400 unreadable_body`` for a body the HTTP layer
       cannot decode (broken chunked encoding).
    4. ``413 too_many_documents``: more than ``--max-documents`` documents.
    5. ``401 invalid_signature``: missing or malformed signature headers, a
       timestamp more than 5 minutes from the Big Peer's clock, or a signature
       that does not match the key, method, path and body.
    6. ``403 identity_mismatch``: a document's ``_id`` is not the peer key that
       signed the request; nothing of the batch is stored.
    7. ``401 replayed_nonce``: this peer key already used this nonce within the
       5-minute window, checked in the transaction that stores the batch, so a
       signed write is accepted once across restarts and across processes sharing
       the database. A replay is a failed proof of identity, hence 401 like the
       other identity failures; a peer signs every attempt afresh, so an honest
       retry never sees it. (``503 busy`` with ``Retry-After`` if more than 200,000
       signed writes arrived within the window.)
    8. ``200 {"accepted": N, "duplicates": M}``: ``N`` documents stored now, ``M``
       already stored (identified by ``_id`` and ``last_updated_at``; the first
       stored version wins). A retried batch answers 200 with everything counted
       as a duplicate, so the sender can drop it from its outbox.

    ``Content-Type`` is not checked. Storage is all or nothing per request.

    A body of which no byte arrives for ``--idle-timeout`` seconds, or that takes
    longer than the timeout plus one second per 16 KiB, is answered ``408
    body_timeout`` and its connection closed. Write bodies held in memory (being
    read, parsed or stored) add up to 8 times ``--max-body-bytes`` at most: a write
    whose body would pass that is answered ``503 busy`` with ``Retry-After`` and its
    connection closed, so no number of concurrent writers can run the service out
    of memory.

``GET /api/v1/devices``
    Admin token. ``200 {"devices": [doc, ...]}``: the latest document of each
    device, most recently updated first (ties by peer key).

``GET /api/v1/devices/{peer_key}``
    Admin token. ``200`` the latest document itself, or ``404 unknown_device``.

``GET /api/v1/devices/{peer_key}/history?limit=N&before=T``
    Admin token. ``200 {"documents": [doc, ...]}`` newest first; ``limit``
    defaults to 100 and is capped at 1000 (``400 invalid_parameter`` unless it is
    a whole number >= 1); ``before`` (a ``last_updated_at``) returns only older
    documents, for paging (``400 invalid_parameter`` if it is not one). ``404
    unknown_device`` for a device never seen; a known device with nothing older
    than ``before`` answers an empty list.

``GET /api/v1/fleet?limit=N&after=C&q=TEXT&sort=S``
    Admin token. ``200 {"devices": [summary, ...], "next": C or null, "total": N}``:
    one page of device summaries (`fleet` says what a summary holds, at most 4 KiB,
    and how the orders and ``q`` are defined). ``limit`` 1 to 1000 (default 100);
    ``sort`` ``device_name`` (default) or ``last_updated_at``; ``q`` at most 1000
    characters, empty keeps every device; ``after`` the ``next`` of the previous
    page of the same ``sort`` (keyset paging: a device that reports between two
    pages moves, but no device is skipped or shown twice because of the pages
    before it); an empty ``after`` is the first page. ``total`` counts the devices
    that match. ``400 invalid_parameter`` for anything else, including a cursor
    that is malformed or of the other ``sort``, and a parameter given twice.
    Unknown parameters are ignored. Costs what the page costs: 100 devices or
    100,000 answer alike, whatever their history (``q`` reads every device's
    search text once to count them).

Conditional reads: every ``200`` of the four reads above carries an ``ETag``
(``"1.<database id>.<version>"``: the storage's change version, global for the
fleet and the device list, the device's own for a device and its history, read
from the database in one index seek) and ``Cache-Control: private, no-cache``.
A request whose ``If-None-Match`` holds that tag (or ``*``) is answered ``304``
with the tag and no body, without running the query: a dashboard may poll every
second at the cost of a version lookup. Tags stay right when several processes
serve one database, and any stored document changes them. Parameters are checked
first (``400``), tokens before everything (``401``).

On every read endpoint: ``401 missing_token`` / ``401 wrong_token`` without the
admin token, the device token included (it cannot read). Every 401 carries
``WWW-Authenticate: Bearer``.

Anywhere: ``404 not_found`` for an unknown route, ``405 method_not_allowed``
(with ``Allow``) for a known route and another method, ``500 internal_error``
for a fault of the service (logged with its traceback; the service keeps
serving), ``503 database_unavailable`` with ``Retry-After`` while the database
cannot be reached (a write is never answered ``200`` unless it was stored; the
service recovers by itself when the database returns). Requests the HTTP parser
itself refuses (oversized header lines, broken request lines, conflicting
lengths) are answered ``400 malformed_request`` in the same JSON shape by
`JsonErrorsRequestHandler`, and their connection closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler

from inspector.big_peer.config import BigPeerConfig
from inspector.big_peer.connections import LogThrottle, track_requests
from inspector.big_peer.documents import BatchTooLargeError, MalformedBatchError, is_timestamp, parse_batch
from inspector.big_peer.fleet import (
    DEFAULT_FLEET_LIMIT,
    MAX_FLEET_LIMIT,
    MAX_QUERY_TEXT_CHARS,
    CursorError,
    FleetQuery,
    FleetSort,
    decode_cursor,
    encode_cursor,
)
from inspector.big_peer.replay import NonceClaim, NonceGuardFullError, ReplayedNonceError
from inspector.big_peer.storage import BigPeerStorage, StorageUnavailableError
from inspector.core.identity import verify_request

__all__ = [
    "BUFFERED_BODIES_FACTOR",
    "DATABASE_RETRY_AFTER_SECONDS",
    "DEFAULT_HISTORY_LIMIT",
    "IN_FLIGHT",
    "MAX_HISTORY_LIMIT",
    "MIN_BODY_BYTES_PER_SECOND",
    "WRITE_PATH",
    "ApiError",
    "InFlight",
    "JsonErrorsRequestHandler",
    "create_app",
]

WRITE_PATH = "/api/v1/small_peer_info"
DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000
MIN_BODY_BYTES_PER_SECOND = 16 * 1024
"""A body may take ``--idle-timeout`` plus one second per this many bytes to arrive."""
BUFFERED_BODIES_FACTOR = 8
"""Write bodies held in memory at once are bounded to this many times ``--max-body-bytes``."""
DATABASE_RETRY_AFTER_SECONDS = 2
"""``Retry-After`` of a ``503 database_unavailable``: a database restart takes seconds."""
_WWW_AUTHENTICATE = 'Bearer realm="inspector-big-peer"'
# Part of every ETag: a new revision of what the reads answer must not match an old tag.
_ANSWER_REVISION = "1"
_FLEET_PARAMETERS = ("limit", "after", "q", "sort")

_log = logging.getLogger("inspector.big_peer")
_UNAVAILABLE_LOG = LogThrottle()

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InFlight:
    """The requests being handled, so shutdown can wait for them while their bodies still arrive.

    aiohttp's own graceful shutdown stops reading from every connection at once,
    which would cut off a write whose body is still on its way; the service
    instead stops listening, waits here, and only then lets aiohttp close the
    connections.
    """

    def __init__(self) -> None:
        # Weak references by id (requests are unhashable): a request that dies between the
        # Expect handler and the handler drops out by itself instead of blocking shutdown.
        self._requests: dict[int, weakref.ref[web.Request]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._requests)

    def enter(self, request: web.Request) -> None:
        key = id(request)
        if key not in self._requests:
            self._requests[key] = weakref.ref(request, lambda _: self._forget(key))
            self._idle.clear()

    def leave(self, request: web.Request) -> None:
        self._forget(id(request))

    def _forget(self, key: int) -> None:
        self._requests.pop(key, None)
        if not self._requests:
            self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """From now on answers close their connections; wait until no request is in flight."""
        self.draining = True
        deadline = asyncio.get_running_loop().time() + timeout
        while self._requests:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), min(remaining, 0.5))
        return True

    @web.middleware
    async def middleware(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        self.enter(request)
        try:
            response = await handler(request)
        finally:
            self.leave(request)
        if self.draining:
            response.force_close()
        return response


IN_FLIGHT = web.AppKey("IN_FLIGHT", InFlight)
"""The `InFlight` tracker of an application made by `create_app`."""


def json_response(
    payload: Any, *, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(payload), status=status, content_type="application/json", headers=headers
    )


class ApiError(Exception):
    """An answer other than success; the middleware turns it into the JSON error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.close = close
        """Close the connection after answering (its request cannot be read to the end)."""

    def response(self) -> web.Response:
        response = json_response(
            {"error": {"code": self.code, "message": self.message}}, status=self.status, headers=self.headers
        )
        if self.close:
            response.force_close()
        return response


def _invalid_parameter(message: str) -> ApiError:
    return ApiError(400, "invalid_parameter", message)


def _body_too_large(size: int | None, limit: int) -> ApiError:
    what = f"{size} bytes" if size is not None else "more bytes than that"
    return ApiError(413, "body_too_large", f"the body is limited to {limit} bytes; this one has {what}")


@web.middleware
async def _json_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except StorageUnavailableError as exc:
        # Every request fails alike while the database is away: one line per 10 s says so.
        _UNAVAILABLE_LOG.log(
            _log, logging.WARNING, "database unavailable", f"the database is unavailable: {exc}"
        )
        return ApiError(
            503,
            "database_unavailable",
            "the Big Peer cannot reach its database; nothing was changed, retry later",
            headers={hdrs.RETRY_AFTER: str(DATABASE_RETRY_AFTER_SECONDS)},
        ).response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if exc.status == 404:
            return ApiError(404, "not_found", f"no such route: {_shown(request.path)}").response()
        if exc.status == 405:
            allowed = exc.headers.get(hdrs.ALLOW, "")
            return ApiError(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {_shown(request.path)}; allowed: {allowed}",
                headers={hdrs.ALLOW: allowed},
            ).response()
        code = (exc.reason or "error").lower().replace(" ", "_")
        return ApiError(exc.status, code, exc.text or exc.reason).response()
    except Exception:
        _log.exception("failed to handle %s %s", request.method, _shown(request.path))
        return ApiError(
            500, "internal_error", "the Big Peer failed to handle this request; the fault is in its log"
        ).response()


def _shown(text: str, limit: int = 60) -> str:
    """``text`` cut for a message, quoted as Python would (control characters escaped)."""
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


_CHALLENGE = {str(hdrs.WWW_AUTHENTICATE): _WWW_AUTHENTICATE}


class JsonErrorsRequestHandler(RequestHandler):
    """aiohttp's HTTP protocol, answering what its parser refuses in the API's JSON error shape.

    A request line or header aiohttp cannot read (garbage, a line over 8190 bytes,
    conflicting lengths) never reaches the application; this answers it ``400
    malformed_request`` (``500 internal_error`` for a fault) and closes the
    connection, as aiohttp does with its plain-text answer.
    """

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs it, refuses if an answer began
        if status >= 500:
            return ApiError(
                status, "internal_error", "the Big Peer failed to read this request; the fault is in its log"
            ).response()
        detail = exc.message if isinstance(exc, HttpProcessingError) else message
        reason = detail.strip().splitlines()[0].rstrip(" :") if detail and detail.strip() else "not HTTP/1.1"
        return ApiError(
            status,
            "malformed_request",
            f"the request cannot be read: {reason[:200]}; the connection is closed",
            close=True,
        ).response()


def _check_token(request: web.Request, expected: str, what: str) -> None:
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        raise ApiError(
            401, "missing_token", f"{what} needs Authorization: Bearer <token>", headers=_CHALLENGE
        )
    scheme, _, token = header.strip().partition(" ")
    # Headers arrive as UTF-8 with surrogate escapes; any byte sequence must compare, never raise.
    given = token.strip().encode("utf-8", "surrogateescape")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given, expected.encode()):
        raise ApiError(401, "wrong_token", f"{what} needs a different bearer token", headers=_CHALLENGE)


class _BodyBytes:
    """The write bodies held in memory (read, parsed, waiting to be stored), bounded.

    Without a bound, clients holding the device token could send full-size bodies on
    every connection at once and run the service out of memory; past it a write is
    answered ``503 busy`` at once (a peer retries later), never queued.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @contextlib.contextmanager
    def holding(self) -> Iterator[Callable[[int], None]]:
        """A function counting one request's bytes against the bound; they are released on exit."""
        mine = 0

        def hold(count: int) -> None:
            nonlocal mine
            if self.held + count > self.limit:
                raise ApiError(
                    503,
                    "busy",
                    f"the Big Peer holds {self.limit // 2**20} MiB of write bodies in memory at most, and "
                    "other writes fill it now; retry in a moment",
                    headers={hdrs.RETRY_AFTER: "1"},
                    close=True,
                )
            self.held += count
            mine += count

        try:
            yield hold
        finally:
            self.held -= mine


class _BigPeerApi:
    def __init__(self, config: BigPeerConfig, storage: BigPeerStorage, in_flight: InFlight) -> None:
        self._config = config
        self._storage = storage
        self._in_flight = in_flight
        self._bodies = _BodyBytes(BUFFERED_BODIES_FACTOR * config.max_body_bytes)

    async def healthz(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def expect_continue(self, request: web.Request) -> web.StreamResponse | None:
        """Refuses an oversized write before the client sends its body."""
        length = request.content_length
        if length is not None and length > self._config.max_body_bytes:
            return _body_too_large(length, self._config.max_body_bytes).response()
        if request.version == HttpVersion11:
            if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
                return ApiError(
                    417, "expectation_failed", "only Expect: 100-continue is understood"
                ).response()
            # From "100 Continue" on, the client sends its body: the request is in flight.
            self._in_flight.enter(request)
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0
        return None

    async def write(self, request: web.Request) -> web.Response:
        limit = self._config.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _body_too_large(request.content_length, limit)
        _check_token(request, self._config.device_token, "writing")
        encoding = request.headers.get(hdrs.CONTENT_ENCODING, "identity").strip().lower()
        if encoding not in ("", "identity"):
            # No peer compresses its writes, and decoding would let a small body expand.
            raise ApiError(
                400,
                "unsupported_content_encoding",
                f"the body must be sent as is, without Content-Encoding {_shown(encoding)}",
            )
        with self._bodies.holding() as hold:
            body = await self._read_body(request, limit, hold)
            return await self._store(request, body)

    async def _store(self, request: web.Request, body: bytes) -> web.Response:
        try:
            documents = parse_batch(body, self._config.max_documents)
        except MalformedBatchError as exc:
            raise ApiError(400, exc.code, exc.message) from None
        except BatchTooLargeError as exc:
            raise ApiError(413, "too_many_documents", str(exc)) from None
        try:
            peer_key, nonce, timestamp_ms = verify_request("POST", request.path, request.headers, body)
        except ValueError as exc:
            raise ApiError(
                401, "invalid_signature", f"the write is not signed by its peer: {exc}", headers=_CHALLENGE
            ) from None
        for index, document in enumerate(documents):
            if document["_id"] != peer_key:
                raise ApiError(
                    403,
                    "identity_mismatch",
                    f"documents[{index}] has _id {_shown(document['_id'])} but the write is signed by "
                    f"{peer_key}; a device may write only its own documents, "
                    "so nothing of this batch was stored",
                )
        try:
            result = await self._storage.ingest(
                documents, NonceClaim.of_request(peer_key, nonce, timestamp_ms)
            )
        except ReplayedNonceError as exc:
            raise ApiError(401, "replayed_nonce", str(exc), headers=_CHALLENGE) from None
        except NonceGuardFullError as exc:
            raise ApiError(503, "busy", str(exc), headers={hdrs.RETRY_AFTER: "5"}) from None
        return json_response({"accepted": result.accepted, "duplicates": result.duplicates})

    async def devices(self, request: web.Request) -> web.StreamResponse:
        _check_token(request, self._config.admin_token, "reading")
        version = await self._storage.version()
        if self._unchanged(request, version):
            return self._not_modified(version)
        found = await self._storage.devices()
        return self._json_text('{"devices":[' + ",".join(found.value) + "]}", found.version)

    async def device(self, request: web.Request) -> web.StreamResponse:
        _check_token(request, self._config.admin_token, "reading")
        peer_key = request.match_info["peer_key"]
        version = await self._storage.version(peer_key)
        if version is None:
            raise _unknown_device(peer_key)
        if self._unchanged(request, version):
            return self._not_modified(version)
        found = await self._storage.latest(peer_key)
        if found is None:
            raise _unknown_device(peer_key)
        return self._json_text(found.value, found.version)

    async def history(self, request: web.Request) -> web.StreamResponse:
        _check_token(request, self._config.admin_token, "reading")
        peer_key = request.match_info["peer_key"]
        limit = _limit(request.query.get("limit"), DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, cap=True)
        before = request.query.get("before")
        if before is not None and not is_timestamp(before):
            raise _invalid_parameter(
                f"before must be a last_updated_at like 2026-11-26T05:38:12.345Z, not {_shown(before)}"
            )
        version = await self._storage.version(peer_key)
        if version is None:
            raise _unknown_device(peer_key)
        if self._unchanged(request, version):
            return self._not_modified(version)
        found = await self._storage.history(peer_key, limit, before)
        if found is None:
            raise _unknown_device(peer_key)
        return self._json_text('{"documents":[' + ",".join(found.value) + "]}", found.version)

    async def fleet(self, request: web.Request) -> web.StreamResponse:
        _check_token(request, self._config.admin_token, "reading")
        query = _fleet_query(request.query)
        version = await self._storage.version()
        assert version is not None
        if self._unchanged(request, version):
            return self._not_modified(version)
        found = await self._storage.fleet(query)
        page = found.value
        following = "null" if page.next is None else f'"{encode_cursor(page.next)}"'
        text = f'{{"devices":[{",".join(page.summaries)}],"next":{following},"total":{page.total}}}'
        return self._json_text(text, found.version)

    def _etag(self, version: int | None) -> str:
        return f'"{_ANSWER_REVISION}.{self._storage.database_id}.{version}"'

    def _unchanged(self, request: web.Request, version: int | None) -> bool:
        """Whether the request's If-None-Match holds the tag of ``version`` (weak comparison)."""
        header = request.headers.get(hdrs.IF_NONE_MATCH)
        if header is None:
            return False
        etag = self._etag(version)
        return any(tag.strip() in ("*", etag, "W/" + etag) for tag in header.split(","))

    def _not_modified(self, version: int | None) -> web.Response:
        return web.Response(status=304, headers=self._cache_headers(version))

    def _json_text(self, text: str, version: int) -> web.Response:
        return web.Response(
            body=text.encode(), content_type="application/json", headers=self._cache_headers(version)
        )

    def _cache_headers(self, version: int | None) -> dict[str, str]:
        # private: answers depend on the admin token; no-cache: a client revalidates every time.
        return {hdrs.ETAG: self._etag(version), hdrs.CACHE_CONTROL: "private, no-cache"}

    async def _read_body(self, request: web.Request, limit: int, hold: Callable[[int], None]) -> bytes:
        body = bytearray()
        idle = self._config.idle_timeout
        loop = asyncio.get_running_loop()
        # A body trickling in a byte at a time never stops arriving, yet holds its connection
        # (and its slot) for hours: it must also keep an average pace.
        expected = request.content_length if request.content_length is not None else limit
        deadline = loop.time() + idle + expected / MIN_BODY_BYTES_PER_SECOND
        try:
            while True:
                async with asyncio.timeout(min(idle, deadline - loop.time())):
                    chunk = await request.content.readany()
                if not chunk:
                    break
                hold(len(chunk))
                body += chunk
                if len(body) > limit:
                    raise _body_too_large(None, limit)
        except TimeoutError:
            raise ApiError(
                408,
                "body_timeout",
                f"the body did not arrive in time (no byte for {idle:g} s, or slower than "
                f"{MIN_BODY_BYTES_PER_SECOND // 1024} KiB/s on average); the connection is closed",
                close=True,
            ) from None
        except HttpProcessingError as exc:
            raise ApiError(400, "unreadable_body", f"the body could not be read: {exc.message}") from None
        except ConnectionResetError:
            # Nobody is left to read the answer; it only shows in the access log.
            raise ApiError(
                400, "incomplete_body", "the connection closed before the body was complete"
            ) from None
        return bytes(body)


def _unknown_device(peer_key: str) -> ApiError:
    return ApiError(404, "unknown_device", f"the Big Peer has no document from {_shown(peer_key)}")


def _limit(text: str | None, default: int, maximum: int, *, cap: bool) -> int:
    """A ``limit`` parameter: a whole number >= 1; above ``maximum`` it is capped or refused."""
    if text is None:
        return default
    digits = text.lstrip("0")
    # Compare lengths first: int() of thousands of digits is slow (and refused past 4300).
    if text.isascii() and text.isdigit() and digits and (cap or len(digits) <= 6):
        value = maximum if len(digits) > 6 else int(digits)
        if cap or value <= maximum:
            return min(value, maximum)
    wanted = "a whole number >= 1" if cap else f"a whole number from 1 to {maximum}"
    raise _invalid_parameter(f"limit must be {wanted}, not {_shown(text)}")


def _fleet_query(parameters: Mapping[str, str]) -> FleetQuery:
    """The fleet query of a request's parameters, or ``400 invalid_parameter``."""
    getall = getattr(parameters, "getall", None)
    for name in _FLEET_PARAMETERS:
        if getall is not None and len(getall(name, ())) > 1:
            raise _invalid_parameter(f"{name} may be given once")
    limit = _limit(parameters.get("limit"), DEFAULT_FLEET_LIMIT, MAX_FLEET_LIMIT, cap=False)
    sort_name = parameters.get("sort", FleetSort.DEVICE_NAME.value)
    if sort_name not in FleetSort._value2member_map_:
        choices = " or ".join(sort.value for sort in FleetSort)
        raise _invalid_parameter(f"sort must be {choices}, not {_shown(sort_name)}")
    sort = FleetSort(sort_name)
    text = parameters.get("q", "")
    if len(text) > MAX_QUERY_TEXT_CHARS:
        raise _invalid_parameter(
            f"q is {len(text)} characters long; at most {MAX_QUERY_TEXT_CHARS} are searched"
        )
    after = None
    if cursor := parameters.get("after"):
        try:
            after = decode_cursor(cursor, sort)
        except CursorError as exc:
            raise _invalid_parameter(str(exc)) from None
    return FleetQuery(limit=limit, sort=sort, after=after, text=text)


def create_app(config: BigPeerConfig, storage: BigPeerStorage) -> web.Application:
    """The aiohttp application serving the API over ``storage``; the caller owns and closes it."""
    in_flight = InFlight()
    api = _BigPeerApi(config, storage, in_flight)
    # client_max_size backs up the explicit limit in case a handler ever calls request.read().
    app = web.Application(
        middlewares=[in_flight.middleware, track_requests, _json_errors],
        client_max_size=config.max_body_bytes,
    )
    app[IN_FLIGHT] = in_flight
    app.router.add_get("/healthz", api.healthz)
    app.router.add_post(WRITE_PATH, api.write, expect_handler=api.expect_continue)
    app.router.add_get("/api/v1/devices", api.devices)
    app.router.add_get("/api/v1/devices/{peer_key}", api.device)
    app.router.add_get("/api/v1/devices/{peer_key}/history", api.history)
    app.router.add_get("/api/v1/fleet", api.fleet)
    return app
