"""Dashboards reading from the real Big Peer service: devices, latest document, history."""

from __future__ import annotations

import pytest
from big_peer_harness import DEVICE_TOKEN, BigPeerClient, small_peer_info, timestamps

pytestmark = pytest.mark.timeout(60)


async def test_device_list_holds_the_latest_document_of_each_device(
    client: BigPeerClient, make_device
) -> None:
    first, second = make_device(), make_device()
    moments = timestamps(4)
    await client.write(first, [small_peer_info(first.peer_key, at) for at in moments[:3]])
    await client.write(second, [small_peer_info(second.peer_key, moments[3], device_name="second")])

    answer = await client.read("/api/v1/devices")

    assert answer.status == 200
    devices = {document["_id"]: document for document in answer.json["devices"]}
    assert devices[first.peer_key] == small_peer_info(first.peer_key, moments[2])
    assert devices[second.peer_key] == small_peer_info(second.peer_key, moments[3], device_name="second")
    listed = [document["last_updated_at"] for document in answer.json["devices"]]
    assert listed == sorted(listed, reverse=True), "most recently updated first"


async def test_latest_document_is_returned_as_it_was_sent(client: BigPeerClient, make_device) -> None:
    device = make_device()
    (at,) = timestamps(1)
    document = small_peer_info(
        device.peer_key,
        at,
        device_name="Ünïcødé 🛰",
        metadata={"nested": {"list": [1, 2.5, None, True, "x"]}, "big": 2**63 - 1},
        os_version="6.8.0",
    )
    await client.write(device, [document])

    answer = await client.read(f"/api/v1/devices/{device.peer_key}")

    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.json == document


async def test_latest_document_stays_the_newest_when_an_older_one_arrives_late(
    client: BigPeerClient, make_device
) -> None:
    device = make_device()
    older, newer = timestamps(2)
    await client.write(device, [small_peer_info(device.peer_key, newer)])
    await client.write(device, [small_peer_info(device.peer_key, older)])

    latest = await client.read(f"/api/v1/devices/{device.peer_key}")
    history = await client.history(device)

    assert latest.json["last_updated_at"] == newer
    assert [d["last_updated_at"] for d in history.json["documents"]] == [newer, older]


async def test_unknown_device_is_a_404(client: BigPeerClient, make_device) -> None:
    stranger = make_device()

    latest = await client.read(f"/api/v1/devices/{stranger.peer_key}")
    history = await client.history(stranger)

    assert latest.status == 404
    assert latest.error_code == "unknown_device"
    assert history.status == 404
    assert history.error_code == "unknown_device"


async def test_history_is_newest_first_and_limited(client: BigPeerClient, make_device) -> None:
    device = make_device()
    moments = timestamps(7)
    await client.write(device, [small_peer_info(device.peer_key, at) for at in moments])

    everything = await client.history(device)
    three = await client.history(device, "?limit=3")

    assert [d["last_updated_at"] for d in everything.json["documents"]] == moments[::-1]
    assert [d["last_updated_at"] for d in three.json["documents"]] == moments[::-1][:3]


async def test_history_pages_backwards_with_before(client: BigPeerClient, make_device) -> None:
    device = make_device()
    moments = timestamps(7)
    await client.write(device, [small_peer_info(device.peer_key, at) for at in moments])
    pages: list[list[str]] = []
    query = "?limit=3"

    while True:
        page = [d["last_updated_at"] for d in (await client.history(device, query)).json["documents"]]
        if not page:
            break
        pages.append(page)
        query = f"?limit=3&before={page[-1]}"

    assert pages == [moments[6:3:-1], moments[3:0:-1], moments[0:1]]


async def test_history_limit_above_the_cap_returns_what_there_is(client: BigPeerClient, make_device) -> None:
    device = make_device()
    moments = timestamps(3)
    await client.write(device, [small_peer_info(device.peer_key, at) for at in moments])

    for limit in ("1000", "1001", "99999999999999999999999999"):
        answer = await client.history(device, f"?limit={limit}")
        assert answer.status == 200
        assert len(answer.json["documents"]) == 3


@pytest.mark.parametrize(
    "query", ["?limit=abc", "?limit=0", "?limit=-1", "?limit=1.5", "?limit=", "?limit=0000"]
)
async def test_history_with_a_bad_limit_is_a_400(client: BigPeerClient, make_device, query: str) -> None:
    device = make_device()
    await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])

    answer = await client.history(device, query)

    assert answer.status == 400
    assert answer.error_code == "invalid_parameter"


@pytest.mark.parametrize("before", ["yesterday", "2026-11-26", "2026-11-26T05:38:12Z", ""])
async def test_history_with_a_bad_before_is_a_400(client: BigPeerClient, make_device, before: str) -> None:
    device = make_device()
    await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])

    answer = await client.history(device, f"?before={before}")

    assert answer.status == 400
    assert answer.error_code == "invalid_parameter"


async def test_known_device_with_nothing_before_is_an_empty_page(client: BigPeerClient, make_device) -> None:
    device = make_device()
    (at,) = timestamps(1)
    await client.write(device, [small_peer_info(device.peer_key, at)])

    answer = await client.history(device, f"?before={at}")

    assert answer.status == 200
    assert answer.json == {"documents": []}


READ_PATHS = ["/api/v1/devices", "/api/v1/devices/{key}", "/api/v1/devices/{key}/history"]


@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize(
    ("token", "code"),
    [(DEVICE_TOKEN, "wrong_token"), (None, "missing_token"), ("guess", "wrong_token")],
    ids=["device token", "missing", "wrong"],
)
async def test_reading_needs_the_admin_token(
    client: BigPeerClient, make_device, path: str, token: str | None, code: str
) -> None:
    device = make_device()
    await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])

    answer = await client.read(path.format(key=device.peer_key), token=token)

    assert answer.status == 401
    assert answer.error_code == code
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert device.peer_key not in answer.body.decode()
