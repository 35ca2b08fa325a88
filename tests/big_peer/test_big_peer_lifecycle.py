"""Starting and stopping the real Big Peer service: tokens, exit codes, graceful shutdown, persistence."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import orjson
import pytest
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    WRITE_PATH,
    BigPeerClient,
    big_peer_command,
    raw_request,
    request_head,
    service_env,
    small_peer_info,
    timestamps,
    write_across_shutdown,
)

pytestmark = pytest.mark.timeout(90)


def run_to_exit(
    args: list[str], tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=30, env={**service_env(tmp_path), **(env or {})}
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_signal_stops_the_service_cleanly_and_the_data_survives_a_restart(
    big_peer_factory, session: aiohttp.ClientSession, make_device, sig: signal.Signals
) -> None:
    first_run = big_peer_factory()
    device = make_device()
    documents = [small_peer_info(device.peer_key, at) for at in timestamps(3)]
    assert (await BigPeerClient(session, first_run.url).write(device, documents)).status == 200

    assert first_run.stop(sig) == 0

    assert "stopped; the database is closed" in first_run.log()
    second_run = big_peer_factory(first_run.data_dir)
    history = await BigPeerClient(session, second_run.url).history(device)
    assert history.json == {"documents": documents[::-1]}


async def test_request_in_flight_finishes_during_shutdown(
    big_peer_factory, session: aiohttp.ClientSession, make_device
) -> None:
    running = big_peer_factory()
    device = make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})

    head, answer = await write_across_shutdown(running, device, body)

    assert head.startswith(b"HTTP/1.1 200"), head + answer
    assert orjson.loads(answer) == {"accepted": 1, "duplicates": 0}
    assert running.stop() == 0
    restarted = big_peer_factory(running.data_dir)
    assert (await BigPeerClient(session, restarted.url).history(device)).status == 200


async def test_tokens_may_come_from_the_environment(
    big_peer_factory, session: aiohttp.ClientSession, make_device
) -> None:
    running = big_peer_factory(tokens_in_env=True)
    client = BigPeerClient(session, running.url)
    device = make_device()

    written = await client.write(device, [small_peer_info(device.peer_key, timestamps(1)[0])])
    read = await client.history(device)

    assert written.status == 200
    assert read.status == 200


@pytest.mark.parametrize(
    ("args", "env", "missing"),
    [
        ([], {}, "device"),
        (["--device-token", DEVICE_TOKEN], {}, "admin"),
        (["--admin-token", ADMIN_TOKEN], {}, "device"),
        ([], {"INSPECTOR_DEVICE_TOKEN": DEVICE_TOKEN}, "admin"),
        (["--device-token", "", "--admin-token", ADMIN_TOKEN], {}, "device"),
    ],
    ids=["no tokens", "no admin token", "no device token", "env device token only", "empty device token"],
)
def test_refuses_to_start_without_both_tokens(
    tmp_path: Path, args: list[str], env: dict[str, str], missing: str
) -> None:
    command = big_peer_command("--port", "0", "--data", str(tmp_path / "data"), *args)

    result = run_to_exit(command, tmp_path, env)

    assert result.returncode == 2
    assert result.stdout == ""
    assert f"{missing} token" in result.stderr
    assert not (tmp_path / "data").exists()


def test_refuses_the_same_token_for_both_roles(tmp_path: Path) -> None:
    command = big_peer_command("--port", "0", "--device-token", "same", "--admin-token", "same")

    result = run_to_exit(command, tmp_path)

    assert result.returncode == 2
    assert "must differ" in result.stderr


def test_console_script_refuses_to_start_without_tokens(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("inspector-big-peer")
    assert script.exists(), f"the console script is not installed next to {sys.executable}"

    result = run_to_exit([str(script), "--port", "0"], tmp_path)

    assert result.returncode == 2
    assert "INSPECTOR_DEVICE_TOKEN" in result.stderr


def test_port_in_use_is_a_clear_failure(big_peer_factory, tmp_path: Path) -> None:
    running = big_peer_factory()
    port = running.url.rsplit(":", 1)[1]
    command = big_peer_command(
        "--port", port, "--data", str(tmp_path / "data"), "--device-token", "d", "--admin-token", "a"
    )

    result = run_to_exit(command, tmp_path)

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}" in result.stderr
    assert result.stdout == ""


async def test_default_body_limit_is_8_mib(big_peer_factory) -> None:
    running = big_peer_factory()
    auth = {"Authorization": f"Bearer {DEVICE_TOKEN}", "Expect": "100-continue"}

    over = await raw_request(running.url, request_head(WRITE_PATH, {**auth, "Content-Length": "8388609"}))
    at_limit = await raw_request(running.url, request_head(WRITE_PATH, {**auth, "Content-Length": "8388608"}))

    assert over.status == 413
    assert "8388608" in over.json["error"]["message"]
    assert at_limit.status == 100, "the service asks for a body of exactly the limit"


@pytest.mark.sqlite_only("the data directory holds the SQLite file")
def test_unusable_data_directory_is_a_clear_failure(tmp_path: Path) -> None:
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("in the way")
    command = big_peer_command(
        "--port", "0", "--data", str(not_a_directory), "--device-token", "d", "--admin-token", "a"
    )

    result = run_to_exit(command, tmp_path)

    assert result.returncode == 1
    assert f"cannot open the database in {not_a_directory}" in result.stderr
    assert result.stdout == ""


async def test_a_signed_write_is_accepted_once_also_across_a_restart(
    big_peer_factory, session: aiohttp.ClientSession, make_device
) -> None:
    first_run = big_peer_factory()
    device = make_device()
    (at,) = timestamps(1)
    body = orjson.dumps({"documents": [small_peer_info(device.peer_key, at)]})
    signed = device.request_headers("POST", WRITE_PATH, body)
    assert (
        await BigPeerClient(session, first_run.url).write_body(device, body, signed_headers=signed)
    ).status == 200
    assert first_run.stop() == 0

    second_run = big_peer_factory(first_run.data_dir)
    client = BigPeerClient(session, second_run.url)
    replay = await client.write_body(device, body, signed_headers=signed)

    assert replay.status == 401
    assert replay.error_code == "replayed_nonce"
    assert len((await client.history(device)).json["documents"]) == 1
