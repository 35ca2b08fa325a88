"""Hostile HTTP against the real Big Peer service: every answer is a 4xx in JSON, or the connection is cut.

Garbage request lines, huge headers, lying lengths, chunked bombs, slow heads, deep
JSON, big integers, wrong types everywhere, and junk in paths and query strings.
After each, the service still serves (the module's service must exit cleanly, with no
traceback in its log: the shared fixture checks it).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    SHARED_SERVICE_ARGS,
    WRITE_PATH,
    Answer,
    BigPeerClient,
    BigPeerProcess,
    raw_exchange,
    request_head,
    small_peer_info,
    start_big_peer,
    timestamps,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.core.identity import Identity

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def big_peer(backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigPeerProcess]:
    """The module's service: the shared limits and a short idle timeout, so lies about lengths end soon."""
    workdir = tmp_path_factory.mktemp("big-peer-hostile")
    running = start_big_peer(
        workdir / "data",
        workdir / "service.log",
        [*SHARED_SERVICE_ARGS, "--idle-timeout", "1"],
        database_url=backend.new_database(),
    )
    yield running
    code = running.stop()
    assert code == 0, f"the Big Peer exited with {code}:\n{running.log()}"
    assert "Traceback" not in running.log(), running.log()


def assert_refused_in_json(answer: Answer | None, *, harmless: bytes | None = None) -> None:
    """A 4xx with the API's JSON error, or no answer at all (the connection was cut).

    ``harmless``: the body of a 200 that is fine too (a request that turned out readable after all).
    """
    if answer is None or (harmless is not None and answer.status == 200 and answer.body == harmless):
        return
    assert 400 <= answer.status < 500, (answer.status, answer.body[:300])
    assert answer.headers["content-type"].startswith("application/json"), answer.headers
    error = orjson.loads(answer.body)["error"]
    assert isinstance(error["code"], str)
    assert error["message"]


async def assert_healthy(client: BigPeerClient) -> None:
    assert (await client.request("GET", "/healthz")).status == 200


def auth(token: str = DEVICE_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


REQUEST_LINES = {
    "binary noise": bytes(range(256)) * 8 + b"\r\n\r\n",
    "NUL bytes": b"\x00" * 1000 + b"\r\n\r\n",
    "TLS hello": bytes.fromhex("160301020001000200030100") + b"\x00" * 200,
    "no path": b"GET\r\n\r\n",
    "HTTP/0.9": b"GET /healthz\r\n\r\n",
    "HTTP/9.9": b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n",
    "lowercase method": b"get /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "made-up method": b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "non-ASCII method": "GËT /healthz HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    "CONNECT": b"CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n",
    "absolute form": b"GET http://elsewhere.example/healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    "tabs for spaces": b"GET\t/healthz\tHTTP/1.1\r\nHost: x\r\n\r\n",
    "100 KB path": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "NUL in path": b"GET /health\x00z HTTP/1.1\r\nHost: x\r\n\r\n",
    "invalid UTF-8 path": b"GET /api/v1/devices/\xff\xfe\xfd HTTP/1.1\r\nHost: x\r\n\r\n",
    "bare LF": b"GET /healthz HTTP/1.1\nHost: x\n\n",
}


@pytest.mark.parametrize("data", REQUEST_LINES.values(), ids=REQUEST_LINES.keys())
async def test_garbage_request_lines(client: BigPeerClient, data: bytes) -> None:
    # aiohttp reads HTTP/0.9 and absolute-form targets as plain requests for /healthz: no harm.
    assert_refused_in_json(await raw_exchange(client.url, data), harmless=b'{"status":"ok"}')
    await assert_healthy(client)


HEADERS = {
    "a 100 KB header": request_head("/healthz", {"X-Filler": "x" * 100_000}, method="GET"),
    "10,000 headers": request_head("/healthz", {f"X-H{i}": "v" for i in range(10_000)}, method="GET"),
    "a header without a colon": b"GET /healthz HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n",
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "folded header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  folded\r\n\r\n",
    "space in a name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX Y: z\r\n\r\n",
    "a 1 MB token": request_head("/api/v1/fleet", auth("t" * 1_000_000), method="GET"),
    "token of control bytes": request_head(
        "/api/v1/fleet", {"Authorization": "Bearer \x01\x02\x7f"}, method="GET"
    ),
}


@pytest.mark.parametrize("data", HEADERS.values(), ids=HEADERS.keys())
async def test_hostile_headers(client: BigPeerClient, data: bytes) -> None:
    assert_refused_in_json(await raw_exchange(client.url, data), harmless=b'{"status":"ok"}')
    await assert_healthy(client)


LENGTHS = {
    "two different lengths": {"Content-Length": ["5", "6"]},
    "length and chunked": {"Content-Length": ["5"], "Transfer-Encoding": ["chunked"]},
    "length in words": {"Content-Length": ["five"]},
    "length with a sign": {"Content-Length": ["+5"]},
    "length with a list": {"Content-Length": ["5, 5"]},
    "length past 64 bits": {"Content-Length": ["99999999999999999999999999"]},
    "negative length": {"Content-Length": ["-1"]},
    "unknown transfer coding": {"Transfer-Encoding": ["gzip, chunked, bogus"]},
}


@pytest.mark.parametrize("headers", LENGTHS.values(), ids=LENGTHS.keys())
async def test_lying_and_conflicting_lengths(client: BigPeerClient, headers: dict[str, list[str]]) -> None:
    lines = [f"POST {WRITE_PATH} HTTP/1.1", "Host: x", f"Authorization: Bearer {DEVICE_TOKEN}"]
    lines += [f"{name}: {value}" for name, values in headers.items() for value in values]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"documents": []}'

    assert_refused_in_json(await raw_exchange(client.url, data))
    await assert_healthy(client)


async def test_a_body_shorter_than_its_length_is_refused_after_the_idle_timeout(
    client: BigPeerClient,
) -> None:
    head = request_head(WRITE_PATH, {**auth(), "Content-Length": "5000"})

    answer = await raw_exchange(client.url, head + b'{"documents": [')

    assert answer is not None
    assert answer.status == 408
    assert_refused_in_json(answer)


async def test_a_body_longer_than_its_length_leaves_garbage_that_is_refused_too(
    client: BigPeerClient,
) -> None:
    host, port = client.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            request_head(WRITE_PATH, {**auth(), "Content-Length": "5"}) + b'{"documents": "and much more"}'
        )
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()

    # The first five bytes are the body; the rest reads as a broken second request, which
    # aiohttp may refuse before it answers the first.
    answers = received.split(b"HTTP/1.")[1:]
    assert 1 <= len(answers) <= 2
    assert all(a[2:5] == b"400" and b"application/json" in a for a in answers), received
    await assert_healthy(client)


def chunked(*chunks: bytes, end: bytes = b"0\r\n\r\n") -> bytes:
    return b"".join(f"{len(c):x}\r\n".encode() + c + b"\r\n" for c in chunks) + end


CHUNKED = {
    "200,000 one-byte chunks": chunked(*[b" "] * 200_000),
    "a chunk size past 64 bits": b"fffffffffffffffffffffff\r\n" + b"x" * 100 + b"\r\n0\r\n\r\n",
    "a negative chunk size": b"-5\r\nxxxxx\r\n0\r\n\r\n",
    "a 100 KB chunk extension": b"5;" + b"e" * 100_000 + b"\r\nxxxxx\r\n0\r\n\r\n",
    "huge trailers": b"0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 1000) for i in range(500)) + b"\r\n",
    "a chunk longer than it says": b"2\r\nxxxxxxxx\r\n0\r\n\r\n",
    "chunks past the body limit": chunked(*[b" " * 60_000] * 40),
    "no last chunk": chunked(b'{"documents": [', end=b""),
}


@pytest.mark.parametrize("body", CHUNKED.values(), ids=CHUNKED.keys())
async def test_chunked_bombs(client: BigPeerClient, body: bytes) -> None:
    head = request_head(WRITE_PATH, {**auth(), "Transfer-Encoding": "chunked"})

    assert_refused_in_json(await raw_exchange(client.url, head + body))
    await assert_healthy(client)


async def test_a_compressed_body_is_refused_unread(client: BigPeerClient) -> None:
    import gzip

    bomb = gzip.compress(b" " * 50_000_000)  # 50 MB of spaces in about 50 KB
    head = request_head(WRITE_PATH, {**auth(), "Content-Encoding": "gzip", "Content-Length": str(len(bomb))})

    answer = await raw_exchange(client.url, head + bomb)

    assert answer is not None
    assert_refused_in_json(answer)
    assert orjson.loads(answer.body)["error"]["code"] == "unsupported_content_encoding"


async def test_many_slow_heads_leave_the_service_serving(client: BigPeerClient) -> None:
    host, port = client.url.removeprefix("http://").rsplit(":", 1)
    head = request_head("/healthz", {"X-Slow": "s" * 100}, method="GET")
    connections = [await asyncio.open_connection(host, int(port)) for _ in range(50)]
    try:
        for step in range(10):
            for _, writer in connections:
                with contextlib.suppress(ConnectionError):
                    writer.write(head[step : step + 1])
            await assert_healthy(client)
            await asyncio.sleep(0.05)
    finally:
        for _, writer in connections:
            writer.close()


DEEP_BODIES = {
    "a million brackets": b'{"documents": [' + b"[" * 1_000_000 + b"]}",
    "nested objects": b'{"documents": [' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"]}",
    "deep but balanced": b'{"documents": [{"_id": "x", "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}]}",
}


@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
async def test_deep_json(client: BigPeerClient, make_device, body: bytes) -> None:
    answer = await client.write_body(make_device(), body[:1_000_000])

    assert_refused_in_json(answer)
    await assert_healthy(client)


# --- wrong types everywhere ---------------------------------------------------------------------

_any_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document a value can be replaced."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replaced(document: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    parent: Any = changed
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return changed


_IDENTITIES: dict[str, Identity] = {}


def _fuzz_device(tmp_path_factory: pytest.TempPathFactory) -> Identity:
    if "device" not in _IDENTITIES:
        _IDENTITIES["device"] = Identity.load_or_create(tmp_path_factory.mktemp("fuzz-device"))
    return _IDENTITIES["device"]


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url + WRITE_PATH, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers["Content-Type"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), value=_any_json)
def test_wrong_types_anywhere_in_a_signed_document(
    big_peer: BigPeerProcess, tmp_path_factory: pytest.TempPathFactory, data: st.DataObject, value: Any
) -> None:
    device = _fuzz_device(tmp_path_factory)
    document = small_peer_info(device.peer_key, timestamps(1)[0], metadata={"site": "lab", "tags": ["a", 1]})
    path = data.draw(st.sampled_from(_paths(document)))
    # The standard library encodes integers of any size, which orjson refuses to.
    body = json.dumps({"documents": [_replaced(document, path, value)]}).encode()
    headers = {**device.request_headers("POST", WRITE_PATH, body), **auth()}

    status, answer, content_type = _post(big_peer.url, body, headers)

    assert status == 200 or 400 <= status < 500, (status, answer[:300])
    assert content_type.startswith("application/json")
    if status != 200:
        assert orjson.loads(answer)["error"]["message"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.binary(max_size=2000)
    | _any_json.map(lambda v: json.dumps(v).encode())
    | _any_json.map(lambda v: json.dumps({"documents": v}).encode())
)
def test_any_signed_body_is_stored_or_refused_in_json(
    big_peer: BigPeerProcess, tmp_path_factory: pytest.TempPathFactory, body: bytes
) -> None:
    device = _fuzz_device(tmp_path_factory)
    headers = {**device.request_headers("POST", WRITE_PATH, body), **auth()}

    status, answer, content_type = _post(big_peer.url, body, headers)

    assert 400 <= status < 500, (status, answer[:300])
    assert content_type.startswith("application/json")


# --- junk in paths and query strings ------------------------------------------------------------

JUNK = [
    "%FF%FE%FD",
    "%00",
    "%",
    "%zz",
    "😀",
    "%F0%9F%98%80",
    "\u202eevil\u202c",
    "e\u0301\u0301\u0301",
    "..%2F..%2Fetc%2Fpasswd",
    "../../etc/passwd",
    "%2e%2e%2f",
    "a" * 5000,
    "%C0%AF",
    "%ED%A0%80",
    "\t",
    "null",
    "[]",
    "{}",
    "-1",
    "1e999",
]
READ_TEMPLATES = [
    "/api/v1/devices/{junk}",
    "/api/v1/devices/{junk}/history",
    "/api/v1/devices/pk/history?limit={junk}",
    "/api/v1/devices/pk/history?before={junk}",
    "/api/v1/fleet?q={junk}",
    "/api/v1/fleet?sort={junk}",
    "/api/v1/fleet?after={junk}",
    "/api/v1/fleet?limit={junk}",
    "/api/v1/fleet?{junk}={junk}",
    "/{junk}",
]


@pytest.mark.parametrize("template", READ_TEMPLATES)
async def test_junk_in_paths_and_query_strings(client: BigPeerClient, template: str) -> None:
    for junk in JUNK:
        target = template.format(junk=urllib.parse.quote(junk, safe="%/.") if " " not in junk else junk)
        answer = await raw_exchange(client.url, request_head(target, auth(ADMIN_TOKEN), method="GET"))
        assert answer is not None, target
        if answer.status != 200:
            assert_refused_in_json(answer)
        else:
            assert answer.headers["content-type"].startswith("application/json")
    await assert_healthy(client)


async def test_raw_non_ascii_bytes_in_a_query_string(client: BigPeerClient) -> None:
    for raw in (b"q=\xff\xfe", b"q=\xc3\x28", b"sort=\xe2\x82", b"after=\xf0\x9f\x98\x80", b"limit=\x00"):
        data = (
            b"GET /api/v1/fleet?"
            + raw
            + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + ADMIN_TOKEN.encode()
        )
        answer = await raw_exchange(client.url, data + b"\r\n\r\n")
        assert answer is not None
        assert answer.status in (200, 400), answer.body
        assert answer.headers["content-type"].startswith("application/json")
    await assert_healthy(client)
