"""Devices writing to the real Big Peer service: tokens, signatures, bodies, limits, idempotency."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator

import orjson
import pytest
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    SHARED_MAX_BODY_BYTES,
    SHARED_MAX_DOCUMENTS,
    WRITE_PATH,
    BigPeerClient,
    raw_request,
    request_head,
    small_peer_info,
    timestamps,
)

from inspector.core.identity import Identity, signed_message

pytestmark = pytest.mark.timeout(60)


async def test_health_answers_without_a_token(client: BigPeerClient) -> None:
    answer = await client.request("GET", "/healthz")

    assert answer.status == 200
    assert answer.json == {"status": "ok"}


async def test_device_writes_its_documents_and_the_admin_reads_them_back(
    client: BigPeerClient, make_device
) -> None:
    device = make_device()
    documents = [small_peer_info(device.peer_key, at) for at in timestamps(3)]

    answer = await client.write(device, documents)

    assert answer.status == 200
    assert answer.json == {"accepted": 3, "duplicates": 0}
    history = await client.history(device)
    assert history.json == {"documents": documents[::-1]}


async def test_retried_batch_is_stored_once(client: BigPeerClient, make_device) -> None:
    device = make_device()
    documents = [small_peer_info(device.peer_key, at) for at in timestamps(4)]
    await client.write(device, documents[:2])

    retry = await client.write(device, documents)

    assert retry.status == 200
    assert retry.json == {"accepted": 2, "duplicates": 2}
    again = await client.write(device, documents)
    assert again.json == {"accepted": 0, "duplicates": 4}
    history = await client.history(device)
    assert [d["last_updated_at"] for d in history.json["documents"]] == timestamps(4)[::-1]


async def test_retry_with_other_content_keeps_the_first_version(client: BigPeerClient, make_device) -> None:
    device = make_device()
    (at,) = timestamps(1)
    await client.write(device, [small_peer_info(device.peer_key, at, device_name="first")])

    answer = await client.write(device, [small_peer_info(device.peer_key, at, device_name="second")])

    assert answer.json == {"accepted": 0, "duplicates": 1}
    latest = await client.read(f"/api/v1/devices/{device.peer_key}")
    assert latest.json["device_name"] == "first"


async def test_replayed_request_is_refused(client: BigPeerClient, make_device) -> None:
    device = make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})
    signed = device.request_headers("POST", WRITE_PATH, body)
    first = await client.write_body(device, body, signed_headers=signed)

    replay = await client.write_body(device, body, signed_headers=signed)

    assert first.status == 200
    assert replay.status == 401
    assert replay.error_code == "replayed_nonce"
    assert "Bearer" in replay.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, "missing_token"), ("not-the-token", "wrong_token"), (ADMIN_TOKEN, "wrong_token")],
    ids=["missing", "wrong", "admin token"],
)
async def test_write_without_the_device_token_is_refused(
    client: BigPeerClient, make_device, token: str | None, code: str
) -> None:
    device = make_device()
    (at,) = timestamps(1)

    answer = await client.write(device, [small_peer_info(device.peer_key, at)], token=token)

    assert answer.status == 401
    assert answer.error_code == code
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await client.history(device)).status == 404


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic ZGV2aWNlOnRva2Vu",
        f"Bearer{DEVICE_TOKEN}",
        "Bearer",
        "Bearer \xff\xfe",
        f"Bearer {DEVICE_TOKEN}x",
    ],
)
async def test_malformed_authorization_is_a_wrong_token(
    client: BigPeerClient, make_device, authorization: str
) -> None:
    device = make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})
    headers = device.request_headers("POST", WRITE_PATH, body)
    headers["Authorization"] = authorization
    headers["Content-Length"] = str(len(body))

    # Sent byte for byte: "\xff\xfe" travels as two bytes that are not UTF-8.
    answer = await raw_request(client.url, request_head(WRITE_PATH, headers) + body)

    assert answer.status == 401
    assert answer.error_code == "wrong_token"


async def test_unsigned_write_is_refused(client: BigPeerClient, make_device) -> None:
    device = make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})

    answer = await client.request(
        "POST", WRITE_PATH, data=body, headers={"Authorization": f"Bearer {DEVICE_TOKEN}"}
    )

    assert answer.status == 401
    assert answer.error_code == "invalid_signature"
    assert (await client.history(device)).status == 404


async def test_signature_over_another_body_is_refused(client: BigPeerClient, make_device) -> None:
    device = make_device()
    first, second = timestamps(2)
    signed_for = orjson.dumps({"documents": [small_peer_info(device.peer_key, first)]})
    sent = orjson.dumps({"documents": [small_peer_info(device.peer_key, second)]})

    answer = await client.write_body(
        device, sent, signed_headers=device.request_headers("POST", WRITE_PATH, signed_for)
    )

    assert answer.status == 401
    assert answer.error_code == "invalid_signature"


async def test_write_signed_too_long_ago_is_refused(client: BigPeerClient, make_device) -> None:
    device = make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})
    stale = str(int(time.time() * 1000) - 10 * 60 * 1000)
    nonce = "0123456789abcdef0123456789abcdef"
    signature = device.sign(signed_message("POST", WRITE_PATH, device.peer_key, stale, nonce, body))
    headers = {
        "X-Peer-Key": device.peer_key,
        "X-Peer-Timestamp": stale,
        "X-Peer-Nonce": nonce,
        "X-Peer-Signature": base64.urlsafe_b64encode(signature).rstrip(b"=").decode(),
    }

    answer = await client.write_body(device, body, signed_headers=headers)

    assert answer.status == 401
    assert answer.error_code == "invalid_signature"
    assert "clock" in answer.json["error"]["message"]


async def test_forged_document_for_another_device_is_refused(client: BigPeerClient, make_device) -> None:
    victim, forger = make_device(), make_device()
    first, second, third = timestamps(3)
    await client.write(victim, [small_peer_info(victim.peer_key, first)])
    batch = [
        small_peer_info(forger.peer_key, second),
        small_peer_info(victim.peer_key, third, device_name="forged"),
    ]

    answer = await client.write(forger, batch)

    assert answer.status == 403
    assert answer.error_code == "identity_mismatch"
    assert victim.peer_key in answer.json["error"]["message"]
    assert forger.peer_key in answer.json["error"]["message"]
    victim_history = await client.history(victim)
    assert [d["last_updated_at"] for d in victim_history.json["documents"]] == [first]
    assert (await client.history(forger)).status == 404, "nothing of the forged batch is stored"


async def test_forged_document_signed_with_the_victims_key_header_but_another_key_is_refused(
    client: BigPeerClient, make_device
) -> None:
    victim, forger = make_device(), make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(victim.peer_key, at)]})
    headers = forger.request_headers("POST", WRITE_PATH, body)
    headers["X-Peer-Key"] = victim.peer_key

    answer = await client.write_body(forger, body, signed_headers=headers)

    assert answer.status == 401
    assert answer.error_code == "invalid_signature"
    assert (await client.history(victim)).status == 404


def _batch(document: object) -> bytes:
    return orjson.dumps({"documents": [document]})


MALFORMED_BODIES = {
    "not JSON": (b"documents: yes", "invalid_json"),
    "empty body": (b"", "invalid_json"),
    "invalid UTF-8": (b'{"documents": ["\xff"]}', "invalid_json"),
    "truncated JSON": (b'{"documents": [{"_id": ', "invalid_json"),
    "NaN": (b'{"documents": [NaN]}', "invalid_json"),
    "number past the float range": (b'{"documents": [' + b"1" * 5000 + b"]}", "invalid_json"),
    "top level is a list": (b"[]", "invalid_batch"),
    "top level is a string": (b'"documents"', "invalid_batch"),
    "no documents key": (b'{"docs": []}', "invalid_batch"),
    "an extra key": (b'{"documents": [], "more": 1}', "invalid_batch"),
    "documents is an object": (b'{"documents": {}}', "invalid_batch"),
    "documents is null": (b'{"documents": null}', "invalid_batch"),
    "empty documents": (b'{"documents": []}', "invalid_batch"),
    "document is a list": (b'{"documents": [[]]}', "invalid_document"),
    "document is a string": (b'{"documents": ["doc"]}', "invalid_document"),
}


@pytest.mark.parametrize(("body", "code"), MALFORMED_BODIES.values(), ids=MALFORMED_BODIES.keys())
async def test_malformed_body_is_refused(client: BigPeerClient, make_device, body: bytes, code: str) -> None:
    answer = await client.write_body(make_device(), body)

    assert answer.status == 400
    assert answer.error_code == code


_ABSENT = object()
BAD_DOCUMENTS = {
    "no _id": {"_id": _ABSENT},
    "numeric _id": {"_id": 1},
    "null _id": {"_id": None},
    "no last_updated_at": {"last_updated_at": _ABSENT},
    "null last_updated_at": {"last_updated_at": None},
    "numeric last_updated_at": {"last_updated_at": 1764135492345},
    "no milliseconds": {"last_updated_at": "2026-11-26T05:38:12Z"},
    "offset instead of Z": {"last_updated_at": "2026-11-26T05:38:12.345+00:00"},
    "microseconds": {"last_updated_at": "2026-11-26T05:38:12.345678Z"},
    "month 13": {"last_updated_at": "2026-13-26T05:38:12.345Z"},
    "February 30": {"last_updated_at": "2026-02-30T05:38:12.345Z"},
    "non-ASCII digits": {"last_updated_at": "２026-11-26T05:38:12.345Z"},
    "trailing newline": {"last_updated_at": "2026-11-26T05:38:12.345Z\n"},
}


@pytest.mark.parametrize("fields", BAD_DOCUMENTS.values(), ids=BAD_DOCUMENTS.keys())
async def test_document_without_a_string_id_or_a_valid_timestamp_is_refused(
    client: BigPeerClient, make_device, fields: dict
) -> None:
    device = make_device()
    document = {"_id": device.peer_key, "last_updated_at": "2026-11-26T05:38:12.345Z", **fields}
    document = {key: value for key, value in document.items() if value is not _ABSENT}

    answer = await client.write_body(device, _batch(document))

    assert answer.status == 400
    assert answer.error_code == "invalid_document"
    assert "documents[0]" in answer.json["error"]["message"]


async def test_one_bad_document_refuses_the_whole_batch(client: BigPeerClient, make_device) -> None:
    device = make_device()
    good = [small_peer_info(device.peer_key, at) for at in timestamps(3)]
    bad = {**good[2], "last_updated_at": "yesterday"}

    answer = await client.write(device, [*good[:2], bad])

    assert answer.status == 400
    assert "documents[2]" in answer.json["error"]["message"]
    assert (await client.history(device)).status == 404


async def test_batch_at_the_document_limit_is_accepted_and_one_more_is_refused(
    client: BigPeerClient, make_device
) -> None:
    device = make_device()
    documents = [small_peer_info(device.peer_key, at) for at in timestamps(SHARED_MAX_DOCUMENTS + 1)]

    too_many = await client.write(device, documents)
    at_limit = await client.write(device, documents[:SHARED_MAX_DOCUMENTS])

    assert too_many.status == 413
    assert too_many.error_code == "too_many_documents"
    assert str(SHARED_MAX_DOCUMENTS) in too_many.json["error"]["message"]
    assert at_limit.status == 200
    assert at_limit.json["accepted"] == SHARED_MAX_DOCUMENTS


def _padded_body(device: Identity, size: int) -> bytes:
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})
    return body + b" " * (size - len(body))


async def test_body_at_the_size_limit_is_accepted_and_one_byte_more_is_refused(
    client: BigPeerClient, make_device
) -> None:
    device = make_device()

    too_large = await client.write_body(device, _padded_body(device, SHARED_MAX_BODY_BYTES + 1))
    at_limit = await client.write_body(device, _padded_body(device, SHARED_MAX_BODY_BYTES))

    assert too_large.status == 413
    assert too_large.error_code == "body_too_large"
    assert at_limit.status == 200


async def test_oversized_content_length_is_refused_before_the_body_is_read(client: BigPeerClient) -> None:
    body = b'{"documents": []}'
    headers = {"Content-Length": str(SHARED_MAX_BODY_BYTES * 50), "Content-Type": "application/json"}

    answer = await raw_request(client.url, request_head(WRITE_PATH, headers) + body)

    assert answer.status == 413
    assert answer.error_code == "body_too_large"
    assert str(SHARED_MAX_BODY_BYTES) in answer.json["error"]["message"]
    assert (await client.request("GET", "/healthz")).status == 200


async def test_oversized_chunked_body_is_refused_while_reading(client: BigPeerClient, make_device) -> None:
    device = make_device()

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"documents": [' + b" " * 65536
        for _ in range(2 * SHARED_MAX_BODY_BYTES // 65536):
            yield b" " * 65536
        yield b"]}"

    answer = await client.request(
        "POST", WRITE_PATH, data=chunks(), headers={"Authorization": f"Bearer {DEVICE_TOKEN}"}
    )

    assert answer.status == 413
    assert answer.error_code == "body_too_large"
    assert (await client.history(device)).status == 404


async def test_expect_continue_with_an_oversized_body_is_refused_before_it_is_sent(
    client: BigPeerClient,
) -> None:
    headers = {"Content-Length": str(SHARED_MAX_BODY_BYTES + 1), "Expect": "100-continue"}

    # No body follows: the service must answer on the head alone.
    answer = await raw_request(client.url, request_head(WRITE_PATH, headers))

    assert answer.status == 413
    assert answer.error_code == "body_too_large"


async def test_expect_continue_write_is_accepted(client: BigPeerClient, make_device) -> None:
    device = make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})
    headers = {
        **device.request_headers("POST", WRITE_PATH, body),
        "Authorization": f"Bearer {DEVICE_TOKEN}",
    }

    async with client.session.post(client.url + WRITE_PATH, data=body, headers=headers, expect100=True) as r:
        assert r.status == 200
        assert await r.json() == {"accepted": 1, "duplicates": 0}


GARBAGE = {
    "binary noise": bytes(range(256)) * 4 + b"\r\n\r\n",
    "bad request line": b"HELLO\r\n\r\n",
    "bad chunked encoding": request_head(WRITE_PATH, {"Transfer-Encoding": "chunked"})
    + b"zz\r\nxx\r\n0\r\n\r\n",
    "huge header line": request_head("/healthz", {"X-Filler": "x" * 100_000}, method="GET"),
    "negative content length": request_head(WRITE_PATH, {"Content-Length": "-5"}),
}


@pytest.mark.parametrize("data", GARBAGE.values(), ids=GARBAGE.keys())
async def test_garbage_leaves_the_service_healthy(client: BigPeerClient, make_device, data: bytes) -> None:
    answer = await raw_request(client.url, data)

    assert 400 <= answer.status < 500
    assert (await client.request("GET", "/healthz")).status == 200
    device = make_device()
    (at,) = timestamps(1)
    assert (await client.write(device, [small_peer_info(device.peer_key, at)])).status == 200


async def test_client_vanishing_mid_body_leaves_the_service_healthy(client: BigPeerClient) -> None:
    host, port = client.url.removeprefix("http://").rsplit(":", 1)
    head = request_head(WRITE_PATH, {"Content-Length": "1000", "Authorization": f"Bearer {DEVICE_TOKEN}"})
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + b'{"documents": [')
    await writer.drain()
    writer.close()
    await writer.wait_closed()

    assert (await client.request("GET", "/healthz")).status == 200


async def test_concurrent_writes_from_many_devices_are_all_stored(client: BigPeerClient, make_device) -> None:
    devices = [make_device() for _ in range(8)]
    moments = timestamps(5)

    answers = await asyncio.gather(
        *(
            client.write(device, [small_peer_info(device.peer_key, at)])
            for device in devices
            for at in moments
        )
    )

    assert {answer.status for answer in answers} == {200}
    for device in devices:
        history = await client.history(device)
        assert [d["last_updated_at"] for d in history.json["documents"]] == moments[::-1]


async def test_unknown_route_is_a_json_404(client: BigPeerClient) -> None:
    answer = await client.read("/api/v2/small_peer_info")

    assert answer.status == 404
    assert answer.error_code == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", WRITE_PATH, "POST"),
        ("PUT", WRITE_PATH, "POST"),
        ("DELETE", "/api/v1/devices", "GET"),
        ("POST", "/healthz", "GET"),
    ],
)
async def test_wrong_method_is_a_json_405(
    client: BigPeerClient, method: str, path: str, allowed: str
) -> None:
    answer = await client.request(method, path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert answer.status == 405
    assert answer.error_code == "method_not_allowed"
    assert allowed in answer.headers["Allow"]


def _nested(depth: int) -> dict:
    """A JSON object ``depth`` levels deep (``{}`` is depth 1)."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_document_nested_past_128_levels_is_refused_and_not_stored(
    client: BigPeerClient, make_device
) -> None:
    device = make_device()
    (at,) = timestamps(1)
    head = orjson.dumps(small_peer_info(device.peer_key, at))[:-1]
    # 253 levels is where orjson could no longer encode the document for storage (it answered 500).
    body = b'{"documents":[' + head + b',"deep":' + b"[" * 253 + b"]" * 253 + b"}]}"

    answer = await client.write_body(device, body)

    assert answer.status == 400
    assert answer.error_code == "nesting_too_deep"
    assert "128" in answer.json["error"]["message"]
    assert (await client.history(device)).status == 404


async def test_document_128_levels_deep_is_stored_and_one_more_is_refused(
    client: BigPeerClient, make_device
) -> None:
    device = make_device()
    fits, too_deep = timestamps(2)
    # The document is level 1, so the field holds 127 levels.
    deepest = small_peer_info(device.peer_key, fits, extra=_nested(127))

    over = await client.write(device, [small_peer_info(device.peer_key, too_deep, extra=_nested(128))])
    at_limit = await client.write(device, [deepest])

    assert over.status == 400
    assert over.error_code == "nesting_too_deep"
    assert at_limit.status == 200
    assert (await client.read(f"/api/v1/devices/{device.peer_key}")).json == deepest


@pytest.mark.parametrize(
    "literal",
    [b"123456789012345678901234567890", b"18446744073709551616", b"-9223372036854775809"],
    ids=["30 digits", "2**64", "-2**63 - 1"],
)
async def test_integer_outside_64_bits_is_refused_never_stored_altered(
    client: BigPeerClient, make_device, literal: bytes
) -> None:
    device = make_device()
    (at,) = timestamps(1)
    head = orjson.dumps(small_peer_info(device.peer_key, at))[:-1]
    body = b'{"documents":[' + head + b',"counters":{"big":[' + literal + b"]}}]}"

    answer = await client.write_body(device, body)

    assert answer.status == 400
    assert answer.error_code == "integer_out_of_range"
    assert (await client.history(device)).status == 404


async def test_64_bit_integers_and_digits_in_strings_are_stored_exactly(
    client: BigPeerClient, make_device
) -> None:
    device = make_device()
    (at,) = timestamps(1)
    document = small_peer_info(
        device.peer_key,
        at,
        limits=[2**64 - 1, -(2**63), 10**18],
        serial="123456789012345678901234567890",
        quoted='say \\"123456789012345678901234567890\\"',
        huge_float=1.2345678901234568e29,
    )

    answer = await client.write(device, [document])

    assert answer.status == 200
    latest = await client.read(f"/api/v1/devices/{device.peer_key}")
    assert latest.json == document
    assert b"18446744073709551615" in latest.body


BAD_METADATA = {
    "a list": [],
    "null": None,
    "a string": "site=lab",
    "65 levels": _nested(65),
    "128 KiB": {"blob": "x" * 131072},
}


@pytest.mark.parametrize("metadata", BAD_METADATA.values(), ids=BAD_METADATA.keys())
async def test_metadata_no_peer_could_have_sent_is_refused(
    client: BigPeerClient, make_device, metadata: object
) -> None:
    device = make_device()
    good, bad = timestamps(2)
    batch = [small_peer_info(device.peer_key, good), small_peer_info(device.peer_key, bad, metadata=metadata)]

    answer = await client.write(device, batch)

    assert answer.status == 400
    assert answer.error_code == "invalid_metadata"
    assert "documents[1].metadata" in answer.json["error"]["message"]
    assert (await client.history(device)).status == 404, "nothing of the batch is stored"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("device_name", 42),
        ("device_name", ["laptop"]),
        ("ditto_sdk_version", {"major": 1}),
        ("device_disk_usage", [1, 2]),
        ("connections_by_transport", "WebSocket"),
    ],
)
async def test_summary_field_of_a_type_no_peer_sends_is_refused(
    client: BigPeerClient, make_device, field: str, value: object
) -> None:
    device = make_device()
    (at,) = timestamps(1)

    answer = await client.write(device, [small_peer_info(device.peer_key, at, **{field: value})])

    assert answer.status == 400
    assert answer.error_code == "invalid_document"
    assert f"documents[0].{field}" in answer.json["error"]["message"]
