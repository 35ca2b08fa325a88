"""Faults inside the Big Peer answer 500 in JSON and leave it serving (in-process app, fake storage)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from big_peer_harness import ADMIN_TOKEN, DEVICE_TOKEN, WRITE_PATH, small_peer_info, timestamps

from inspector.big_peer.app import create_app
from inspector.big_peer.backends import describe_database
from inspector.big_peer.config import BigPeerConfig, parse_config
from inspector.big_peer.fleet import FleetPage, FleetQuery
from inspector.big_peer.replay import NonceClaim
from inspector.big_peer.storage import IngestResult, Versioned


class BrokenStorage:
    """Fails every call the way a full disk or a lost database would."""

    database_id = "broken"

    async def ingest(
        self, documents: Sequence[Mapping[str, Any]], claim: NonceClaim | None = None
    ) -> IngestResult:
        raise OSError(28, "No space left on device")

    async def version(self, peer_key: str | None = None) -> int | None:
        raise RuntimeError("the database went away")

    async def devices(self) -> Versioned[list[str]]:
        raise RuntimeError("the database went away")

    async def latest(self, peer_key: str) -> Versioned[str] | None:
        raise RuntimeError("the database went away")

    async def history(
        self, peer_key: str, limit: int, before: str | None = None
    ) -> Versioned[list[str]] | None:
        raise RuntimeError("the database went away")

    async def fleet(self, query: FleetQuery) -> Versioned[FleetPage]:
        raise RuntimeError("the database went away")

    async def close(self) -> None:
        pass


@pytest.fixture
async def broken_client(tmp_path: Path):
    config = BigPeerConfig(device_token=DEVICE_TOKEN, admin_token=ADMIN_TOKEN, data_dir=tmp_path)
    async with TestClient(TestServer(create_app(config, BrokenStorage()), host="127.0.0.1")) as client:
        yield client


async def test_storage_failure_on_write_is_a_json_500_and_the_service_keeps_serving(
    broken_client: TestClient, make_device, caplog: pytest.LogCaptureFixture
) -> None:
    device = make_device()
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, timestamps(1)[0])]})
    headers = {**device.request_headers("POST", WRITE_PATH, body), "Authorization": f"Bearer {DEVICE_TOKEN}"}

    response = await broken_client.post(WRITE_PATH, data=body, headers=headers)

    assert response.status == 500
    assert (await response.json())["error"]["code"] == "internal_error"
    assert "No space left" not in await response.text(), "internals stay in the log"
    assert "No space left on device" in caplog.text
    assert (await broken_client.get("/healthz")).status == 200


@pytest.mark.parametrize(
    "path", ["/api/v1/devices", "/api/v1/devices/pkX", "/api/v1/devices/pkX/history", "/api/v1/fleet"]
)
async def test_storage_failure_on_read_is_a_json_500(broken_client: TestClient, path: str) -> None:
    response = await broken_client.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert response.status == 500
    assert response.content_type == "application/json"
    assert (await response.json())["error"]["code"] == "internal_error"


def test_tokens_from_options_win_over_the_environment() -> None:
    config = parse_config(
        ["--device-token", "from-option", "--data", "/tmp/x"],
        {"INSPECTOR_DEVICE_TOKEN": "from-env", "INSPECTOR_ADMIN_TOKEN": "admin-from-env"},
    )

    assert (config.device_token, config.admin_token) == ("from-option", "admin-from-env")
    assert "from-option" not in repr(config), "tokens stay out of logs and tracebacks"


def test_defaults_follow_the_contract() -> None:
    config = parse_config([], {"INSPECTOR_DEVICE_TOKEN": "d", "INSPECTOR_ADMIN_TOKEN": "a"})

    assert config.max_body_bytes == 8 * 1024 * 1024
    assert config.max_documents == 1000
    assert config.data_dir.name == "small-peer-inspector-big-peer"


@pytest.mark.parametrize(
    "args",
    [
        ["--port", "70000"],
        ["--max-body-bytes", "0"],
        ["--max-documents", "-1"],
        ["--device-token", "with space"],
    ],
)
def test_unusable_options_exit_with_code_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        parse_config([*args], {"INSPECTOR_DEVICE_TOKEN": "d", "INSPECTOR_ADMIN_TOKEN": "a"})

    assert caught.value.code == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://root@127.0.0.1:5432/db", "postgresql://root@127.0.0.1:5432/db"),
        ("postgresql://bp:s3cret@db.internal:5432/fleet", "postgresql://bp:***@db.internal:5432/fleet"),
        ("postgresql://bp@h/db?password=s3cret&ssl=require", "postgresql://bp@h/db?password=***&ssl=require"),
        ("postgres://bp:a@h/db?sslpassword=k", "postgres://bp:***@h/db?sslpassword=***"),
        # Forms urllib cannot parse (several hosts, a broken address) are still described.
        ("postgresql://bp:s3cret@h1:5432,h2:5432/db", "postgresql://bp:***@h1:5432,h2:5432/db"),
        ("postgresql://bp:s3cret@[::1/db", "postgresql://bp:***@[::1/db"),
    ],
)
def test_a_database_url_is_logged_without_its_passwords(url: str, shown: str) -> None:
    config = BigPeerConfig(device_token="d", admin_token="a", database_url=url)

    assert describe_database(config) == shown
