"""Fixtures: the real Big Peer service as a subprocess, a client session, device identities."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from big_peer_harness import SHARED_SERVICE_ARGS, BigPeerClient, BigPeerProcess, start_big_peer

from inspector.core.identity import Identity


@pytest.fixture
def big_peer_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Starts services (optionally on a given data directory); stops them after the test, expecting exit 0."""
    started: list[BigPeerProcess] = []

    def start(
        data_dir: Path | None = None,
        extra_args: Sequence[str] = (),
        *,
        tokens_in_env: bool = False,
        open_files: int | None = None,
    ) -> BigPeerProcess:
        workdir = tmp_path_factory.mktemp("big-peer")
        log_path = workdir / "service.log"
        running = start_big_peer(
            data_dir or workdir / "data",
            log_path,
            extra_args,
            tokens_in_env=tokens_in_env,
            open_files=open_files,
        )
        started.append(running)
        return running

    yield start
    codes = {running.url: (running.stop(), running) for running in started}
    for url, (code, running) in codes.items():
        assert code == 0, f"the Big Peer at {url} exited with {code}:\n{running.log()}"
        assert "Traceback" not in running.log(), running.log()


@pytest.fixture(scope="module")
def big_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigPeerProcess]:
    """One service shared by a test module; tests keep apart by using devices of their own."""
    workdir = tmp_path_factory.mktemp("big-peer-shared")
    running = start_big_peer(workdir / "data", workdir / "service.log", SHARED_SERVICE_ARGS)
    yield running
    code = running.stop()
    assert code == 0, f"the Big Peer exited with {code}:\n{running.log()}"
    assert "Traceback" not in running.log(), running.log()


@pytest.fixture
async def session() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(session: aiohttp.ClientSession, big_peer: BigPeerProcess) -> BigPeerClient:
    return BigPeerClient(session, big_peer.url)


@pytest.fixture
def make_device(tmp_path: Path) -> Any:
    """Creates a new device identity (its own key in its own directory) per call."""
    count = 0

    def make() -> Identity:
        nonlocal count
        count += 1
        directory = tmp_path / f"device-{count}"
        directory.mkdir()
        return Identity.load_or_create(directory)

    return make
