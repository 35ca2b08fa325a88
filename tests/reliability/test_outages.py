"""Outages of every kind, one after the other: the queue holds, the status is honest, nothing is lost.

The peer replicates through a switchable front on 127.0.0.1 to a real Big Peer
process. The front refuses connections, answers 500, hangs, answers 401 (a wrong
token), redirects, or answers ``200`` with a junk body — and between outages
forwards to the real Big Peer. Through all of it: documents queue and are never
marked delivered while the Big Peer did not store them, the status never says
connected during an outage, and once the Big Peer is reachable again every
document arrives exactly once, in order.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web
from big_peer_files import stored_order
from big_peer_harness import DEVICE_TOKEN, start_big_peer
from counts import count

from inspector import Ditto
from inspector.core.replication import ConnectionState, ReplicationPolicy

POLICY = ReplicationPolicy(batch_size=5, backoff_base=0.02, backoff_cap=0.1, request_timeout=0.5)

OUTAGES = {
    "refused": ConnectionState.OFFLINE,
    "500": ConnectionState.FAILING,
    "hang": ConnectionState.OFFLINE,
    "401": ConnectionState.UNAUTHORIZED,
    "redirect": ConnectionState.FAILING,
    "junk": ConnectionState.FAILING,
}


class Front:
    """Forwards writes to the Big Peer, or fails in the way ``mode`` says."""

    def __init__(self, big_peer_url: str) -> None:
        self.big_peer_url = big_peer_url
        self.mode = "forward"
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.mode == "500":
            return web.json_response({"error": {"code": "internal_error", "message": "down"}}, status=500)
        if self.mode == "hang":
            await asyncio.sleep(3600)
        if self.mode == "401":
            return web.json_response({"error": {"code": "wrong_token", "message": "no"}}, status=401)
        if self.mode == "redirect":
            raise web.HTTPFound(self.big_peer_url + request.path)
        if self.mode == "junk":
            return web.Response(text="OK, stored", status=200)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.big_peer_url + request.path, data=body, headers=headers) as answer,
        ):
            return web.Response(
                body=await answer.read(), status=answer.status, content_type="application/json"
            )

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/api/v1/small_peer_info", self.handle)
        self.runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, "127.0.0.1", port)
        await self.site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


async def until(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def run_outages(tmp_path, rounds: int) -> None:
    big_peer = start_big_peer(tmp_path / "big-peer", tmp_path / "big-peer.log")
    front = Front(big_peer.url)
    await front.start()
    url = f"http://127.0.0.1:{front.port}"
    peer = Ditto(
        tmp_path / "peer",
        small_peer_info_interval=0.1,
        big_peer_url=url,
        big_peer_token=DEVICE_TOKEN,
        replication_policy=POLICY,
    )
    try:
        async with peer:
            sp = peer.small_peer_info
            await sp.set_sync_scope("BigPeerOnly")
            sp.is_enabled = True
            await until(lambda: peer.replication_status.state is ConnectionState.CONNECTED)
            for _ in range(rounds):
                for mode, state in OUTAGES.items():
                    if mode == "refused":
                        await front.stop()
                    else:
                        front.mode = mode
                    await until(lambda state=state: peer.replication_status.state is state)
                    acknowledged = peer.replication_status.acknowledged  # a batch sent before may land
                    queued = peer.replication_status.queue_length
                    await until(lambda queued=queued: peer.replication_status.queue_length > queued + 2)
                    status = peer.replication_status
                    assert status.acknowledged == acknowledged, mode  # nothing counted as delivered
                    assert status.last_error and status.last_error.endswith("."), status.last_error
                    if mode == "refused":
                        await front.start(front.port)
                    front.mode = "forward"
                    await until(lambda: peer.replication_status.state is ConnectionState.CONNECTED)
            sp.is_enabled = False
            await until(lambda: peer.replication_status.queue_length == 0)
            collected = [d["last_updated_at"] for d in reversed(await sp.history(limit=10**6))]
        assert stored_order(big_peer.data_dir, peer.peer_key) == collected
    finally:
        await front.stop()
        assert big_peer.stop() == 0, big_peer.log()


def test_every_kind_of_outage_holds_the_queue_and_loses_nothing(tmp_path):
    asyncio.run(run_outages(tmp_path, count(1, 5)))
