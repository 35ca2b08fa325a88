"""The fleet query and conditional reads of the real Big Peer service."""

from __future__ import annotations

import base64
import itertools
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    BigPeerClient,
    small_peer_info,
    timestamps,
)

from inspector.big_peer.app import create_app
from inspector.big_peer.config import BigPeerConfig
from inspector.big_peer.fleet import FleetPage, FleetQuery
from inspector.big_peer.replay import NonceClaim
from inspector.big_peer.storage import BigPeerStorage, IngestResult, Versioned

pytestmark = pytest.mark.timeout(60)

_unique = itertools.count()


def fleet_path(**parameters: object) -> str:
    return "/api/v1/fleet?" + urllib.parse.urlencode(parameters) if parameters else "/api/v1/fleet"


async def add_devices(client: BigPeerClient, make_device, names: Sequence[str], **fields: Any) -> list[str]:
    """One device per name, each with one document; their peer keys."""
    keys = []
    for name, at in zip(names, timestamps(len(names)), strict=True):
        device = make_device()
        answer = await client.write(
            device, [small_peer_info(device.peer_key, at, device_name=name, **fields)]
        )
        assert answer.status == 200, answer.body
        keys.append(device.peer_key)
    return keys


async def pages(client: BigPeerClient, **parameters: object) -> list[dict[str, Any]]:
    """Every page of a fleet query, following next."""
    answers = []
    while True:
        answer = await client.read(fleet_path(**parameters))
        assert answer.status == 200, answer.body
        answers.append(answer.json)
        if answer.json["next"] is None:
            return answers
        parameters["after"] = answer.json["next"]


def tag() -> str:
    """A text no other test's devices contain, to keep a test's fleet query to its own devices."""
    return f"fleet-test-{next(_unique):04d}-"


async def test_fleet_pages_through_matching_devices_by_name(client: BigPeerClient, make_device) -> None:
    prefix = tag()
    names = [f"{prefix}{name}" for name in ("echo", "alpha", "delta", "charlie", "bravo")]
    keys = dict(zip(await add_devices(client, make_device, names), names, strict=True))

    answers = await pages(client, q=prefix.upper(), limit=2)

    assert [len(a["devices"]) for a in answers] == [2, 2, 1]
    assert {a["total"] for a in answers} == {5}
    listed = [s["device_name"] for a in answers for s in a["devices"]]
    assert listed == sorted(names)
    assert all(keys[s["peer_key"]] == s["device_name"] for a in answers for s in a["devices"])


async def test_fleet_sorted_by_last_update_is_newest_first(client: BigPeerClient, make_device) -> None:
    prefix = tag()
    names = [f"{prefix}{i}" for i in range(4)]
    await add_devices(client, make_device, names)

    answers = await pages(client, q=prefix, sort="last_updated_at", limit=3)

    assert [s["device_name"] for a in answers for s in a["devices"]] == names[::-1]


async def test_fleet_summary_holds_what_the_dashboard_shows(client: BigPeerClient, make_device) -> None:
    prefix = tag()
    device = make_device()
    first, second = timestamps(2, step=timedelta(seconds=300))
    await client.write(device, [small_peer_info(device.peer_key, first, device_name=prefix)])
    newest = small_peer_info(
        device.peer_key, second, device_name=prefix, connections_by_transport={"WebSocket": 1}
    )
    await client.write(device, [newest])

    (summary,) = (await client.read(fleet_path(q=prefix))).json["devices"]

    assert set(summary) == {
        "peer_key",
        "device_name",
        "ditto_sdk_language",
        "ditto_sdk_platform",
        "ditto_sdk_version",
        "last_updated_at",
        "received_at",
        "document_count",
        "device_disk_usage",
        "connections_by_transport",
        "metadata",
        "interval_seconds",
    }
    assert summary["peer_key"] == device.peer_key
    assert summary["last_updated_at"] == second
    assert summary["document_count"] == 2
    assert summary["interval_seconds"] == 300.0
    assert summary["connections_by_transport"] == {"WebSocket": 1}
    assert summary["metadata"] == newest["metadata"]
    assert len(summary["received_at"]) == 24
    assert summary["received_at"].endswith("Z")


async def test_large_metadata_is_summarized_by_its_size(client: BigPeerClient, make_device) -> None:
    prefix = tag()
    fits = {"blob": "x" * (2048 - len('{"blob":""}'))}
    too_big = {"blob": "x" * 2048}
    await add_devices(client, make_device, [prefix + "fits"], metadata=fits)
    await add_devices(client, make_device, [prefix + "too-big"], metadata=too_big)

    summaries = (await client.read(fleet_path(q=prefix))).json["devices"]

    assert summaries[0]["metadata"] == fits
    assert "metadata_bytes" not in summaries[0]
    assert summaries[1]["metadata_bytes"] == len(orjson.dumps(too_big))
    assert "metadata" not in summaries[1]


async def test_a_summary_stays_within_4_kib_whatever_the_document_holds(
    client: BigPeerClient, make_device
) -> None:
    prefix = tag()
    # Control characters take 6 bytes each in JSON: the worst case for every text field.
    noisy = prefix + "\x01" * 5000
    fields = {
        name: "\x01" * 5000 for name in ("ditto_sdk_language", "ditto_sdk_platform", "ditto_sdk_version")
    }
    fat = {f"k{i}": "\x01" * 40 for i in range(50)}
    metadata = {"m": "\x01" * 330}  # 2 KiB at most as JSON: shown inline
    await add_devices(
        client,
        make_device,
        [noisy],
        metadata=metadata,
        device_disk_usage=fat,
        connections_by_transport=fat,
        **fields,
    )

    answer = await client.read(fleet_path(q=prefix))

    (summary,) = answer.json["devices"]
    assert len(orjson.dumps(summary)) <= 4096
    assert summary["device_name"].startswith(prefix)
    assert summary["device_name"].endswith("…")
    assert summary["metadata"] == metadata
    assert summary["device_disk_usage"] is None, "an object too large for a summary is left to the document"


async def test_the_whole_device_name_is_searched(client: BigPeerClient, make_device) -> None:
    prefix = tag()
    await add_devices(client, make_device, [prefix + "x" * 1000 + "needle-at-the-end"])

    answer = await client.read(fleet_path(q="NEEDLE-AT-THE-END", limit=1000))

    assert any(s["device_name"].startswith(prefix) for s in answer.json["devices"])


async def test_unknown_parameters_are_ignored(client: BigPeerClient, make_device) -> None:
    prefix = tag()
    await add_devices(client, make_device, [prefix])

    answer = await client.read(fleet_path(q=prefix, page_size=5, _=123))

    assert answer.status == 200
    assert answer.json["total"] == 1


def _cursor(parts: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(parts)).rstrip(b"=").decode()


BAD_PARAMETERS = {
    "limit 0": "limit=0",
    "limit 1001": "limit=1001",
    "limit huge": "limit=" + "9" * 5000,
    "limit negative": "limit=-1",
    "limit fraction": "limit=1.5",
    "limit empty": "limit=",
    "limit words": "limit=ten",
    "limit twice": "limit=1&limit=2",
    "unknown sort": "sort=size",
    "sort in capitals": "sort=DEVICE_NAME",
    "sort empty": "sort=",
    "q too long": "q=" + "x" * 1001,
    "q twice": "q=a&q=b",
    "cursor not base64": "after=%%%%",
    "cursor of garbage": "after=" + base64.urlsafe_b64encode(b"\xff\x00garbage").decode(),
    "cursor not a list": "after=" + _cursor({"sort": "device_name"}),
    "cursor of numbers": "after=" + _cursor(["device_name", 1, 2]),
    "cursor too short": "after=" + _cursor(["device_name", "a"]),
    "cursor of another sort": "after=" + _cursor(["last_updated_at", "2026-11-26T05:38:12.345Z", "pk"]),
    "cursor of no sort": "after=" + _cursor(["size", "a", "pk"]),
    "time cursor without a time": "sort=last_updated_at&after="
    + _cursor(["last_updated_at", "yesterday", "pk"]),
    "cursor far too long": "after=" + "A" * 5000,
    "cursor with unicode": "after=" + urllib.parse.quote("ÄÖÜ"),
}


@pytest.mark.parametrize("query", BAD_PARAMETERS.values(), ids=BAD_PARAMETERS.keys())
async def test_bad_parameters_are_a_400(client: BigPeerClient, query: str) -> None:
    answer = await client.read("/api/v1/fleet?" + query)

    assert answer.status == 400
    assert answer.error_code == "invalid_parameter"


async def test_limits_at_the_bounds_are_accepted(client: BigPeerClient) -> None:
    for limit in ("1", "1000", "0001"):
        answer = await client.read(fleet_path(limit=limit))
        assert answer.status == 200
        assert len(answer.json["devices"]) <= int(limit)


async def test_an_empty_after_is_the_first_page(client: BigPeerClient) -> None:
    assert (await client.read("/api/v1/fleet?after=&limit=5")).json == (
        await client.read(fleet_path(limit=5))
    ).json


@pytest.mark.parametrize(("token", "code"), [(DEVICE_TOKEN, "wrong_token"), (None, "missing_token")])
async def test_the_fleet_needs_the_admin_token(client: BigPeerClient, token: str | None, code: str) -> None:
    answer = await client.read("/api/v1/fleet", token=token)

    assert answer.status == 401
    assert answer.error_code == code


# --- conditional reads --------------------------------------------------------------------------


async def read_conditionally(client: BigPeerClient, path: str, etag: str) -> aiohttp.ClientResponse:
    async with client.session.get(
        client.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}", "If-None-Match": etag}
    ) as response:
        await response.read()
        return response


async def test_every_read_answers_304_to_its_etag_until_something_changes(
    client: BigPeerClient, make_device
) -> None:
    device, other = make_device(), make_device()
    first, second, third = timestamps(3)
    await client.write(device, [small_peer_info(device.peer_key, first)])
    paths = [
        "/api/v1/fleet?limit=5",
        "/api/v1/devices",
        f"/api/v1/devices/{device.peer_key}",
        f"/api/v1/devices/{device.peer_key}/history?limit=5",
    ]
    etags = {}
    for path in paths:
        answer = await client.read(path)
        assert answer.headers["Cache-Control"] == "private, no-cache"
        etags[path] = answer.headers["ETag"]

    unchanged = {path: (await read_conditionally(client, path, etags[path])) for path in paths}
    await client.write(other, [small_peer_info(other.peer_key, second)])
    after_other = {path: (await read_conditionally(client, path, etags[path])).status for path in paths}
    await client.write(device, [small_peer_info(device.peer_key, third)])
    after_device = {path: (await read_conditionally(client, path, etags[path])).status for path in paths}

    for path, response in unchanged.items():
        assert response.status == 304, path
        assert response.headers["ETag"] == etags[path]
        assert response.content_length in (None, 0)
    assert after_other == {paths[0]: 200, paths[1]: 200, paths[2]: 304, paths[3]: 304}
    assert set(after_device.values()) == {200}


@pytest.mark.parametrize("header", ['"other", {etag}', "W/{etag}", "*", " {etag} "])
async def test_if_none_match_forms(client: BigPeerClient, make_device, header: str) -> None:
    device = make_device()
    await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])
    path = f"/api/v1/devices/{device.peer_key}"
    etag = (await client.read(path)).headers["ETag"]

    response = await read_conditionally(client, path, header.format(etag=etag))

    assert response.status == 304


@pytest.mark.parametrize("header", ['"1.x.1"', "", "garbage \xff", '"' + "9" * 8000 + '"'])
async def test_a_tag_that_does_not_match_gets_the_answer(
    client: BigPeerClient, make_device, header: str
) -> None:
    device = make_device()
    await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])

    response = await read_conditionally(client, f"/api/v1/devices/{device.peer_key}", header)

    assert response.status == 200


async def test_bad_parameters_are_refused_even_with_a_matching_tag(client: BigPeerClient) -> None:
    etag = (await client.read("/api/v1/fleet")).headers["ETag"]

    response = await read_conditionally(client, "/api/v1/fleet?limit=0", etag)

    assert response.status == 400


async def test_an_unknown_device_is_a_404_whatever_the_tag(client: BigPeerClient, make_device) -> None:
    stranger = make_device()

    response = await read_conditionally(client, f"/api/v1/devices/{stranger.peer_key}/history", "*")

    assert response.status == 404


async def test_tags_survive_a_restart_of_the_service(big_peer_factory, session, make_device) -> None:
    first_run = big_peer_factory()
    client = BigPeerClient(session, first_run.url)
    device = make_device()
    await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])
    etag = (await client.read("/api/v1/fleet")).headers["ETag"]
    assert first_run.stop() == 0

    second_run = big_peer_factory(first_run.data_dir)

    response = await read_conditionally(BigPeerClient(session, second_run.url), "/api/v1/fleet", etag)
    assert response.status == 304


async def test_a_new_database_never_matches_the_tag_of_another(
    big_peer_factory, session, make_device
) -> None:
    tags = []
    for _ in range(2):
        running = big_peer_factory()
        client = BigPeerClient(session, running.url)
        device = make_device()
        await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])
        tags.append((await client.read("/api/v1/fleet")).headers["ETag"])

    assert tags[0] != tags[1]


class CountingStorage:
    """A real storage that counts the calls the HTTP layer makes."""

    def __init__(self, storage: BigPeerStorage) -> None:
        self.storage = storage
        self.calls: list[str] = []

    @property
    def database_id(self) -> str:
        return self.storage.database_id

    async def ingest(
        self, documents: Sequence[Mapping[str, Any]], claim: NonceClaim | None = None
    ) -> IngestResult:
        return await self.storage.ingest(documents, claim)

    async def version(self, peer_key: str | None = None) -> int | None:
        self.calls.append("version")
        return await self.storage.version(peer_key)

    async def devices(self) -> Versioned[list[str]]:
        self.calls.append("devices")
        return await self.storage.devices()

    async def latest(self, peer_key: str) -> Versioned[str] | None:
        self.calls.append("latest")
        return await self.storage.latest(peer_key)

    async def history(
        self, peer_key: str, limit: int, before: str | None = None
    ) -> Versioned[list[str]] | None:
        self.calls.append("history")
        return await self.storage.history(peer_key, limit, before)

    async def fleet(self, query: FleetQuery) -> Versioned[FleetPage]:
        self.calls.append("fleet")
        return await self.storage.fleet(query)

    async def close(self) -> None:
        await self.storage.close()


async def test_a_304_runs_no_query_only_the_version_lookup(open_store, tmp_path: Path) -> None:
    storage = CountingStorage(await open_store())
    await storage.ingest([small_peer_info("pk" + "A" * 43, timestamps(1)[0])])
    config = BigPeerConfig(device_token=DEVICE_TOKEN, admin_token=ADMIN_TOKEN, data_dir=tmp_path)
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    paths = [
        "/api/v1/fleet",
        "/api/v1/devices",
        f"/api/v1/devices/pk{'A' * 43}",
        f"/api/v1/devices/pk{'A' * 43}/history",
    ]
    try:
        async with TestClient(TestServer(create_app(config, storage), host="127.0.0.1")) as client:
            for path in paths:
                etag = (await client.get(path, headers=auth)).headers["ETag"]
                storage.calls.clear()

                response = await client.get(path, headers={**auth, "If-None-Match": etag})

                assert response.status == 304
                assert storage.calls == ["version"], path
    finally:
        await storage.close()
