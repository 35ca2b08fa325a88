"""Delivery and status never lie: a document counts as delivered only when the Big Peer says it stored it.

Each "server" here is a real HTTP server on 127.0.0.1 that answers wrongly on purpose
(200 "ok", 204, a redirect, junk JSON, a hang, 401, 404, 500). Whatever it answers,
the batch stays queued, the state says what is going on, and the last error is a
sentence, never a raw body.
"""

import asyncio

import pytest
from aiohttp import web
from waiting import wait_for

from inspector import Ditto
from inspector.core.replication import ConnectionState, ReplicationPolicy, describe_answer
from inspector.core.store import Replication

FAST = ReplicationPolicy(backoff_base=0.02, backoff_cap=0.2, request_timeout=5)


class Server:
    """An HTTP server on 127.0.0.1 that answers every write with ``answer(request)``."""

    def __init__(self, answer):
        self.answer = answer
        self.writes = 0
        self.followed = 0
        self.runner = None
        self.url = ""

    async def start(self):
        async def write(request):
            await request.read()
            self.writes += 1
            return await self.answer(request)

        async def elsewhere(request):
            self.followed += 1
            return web.json_response({"accepted": 1, "duplicates": 0})

        app = web.Application()
        app.router.add_post("/api/v1/small_peer_info", write)
        app.router.add_route("*", "/elsewhere", elsewhere)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    async def stop(self):
        await self.runner.cleanup()


async def plain(status, body=b"", content_type="text/plain", headers=None):
    return web.Response(status=status, body=body, content_type=content_type, headers=headers)


ANSWERS = {
    "200 ok": lambda r: plain(200, b"ok"),
    "204": lambda r: plain(204),
    "302": lambda r: plain(302, headers={"Location": "/elsewhere"}),
    "200 junk json": lambda r: plain(200, b'{"stored": true}', "application/json"),
    "200 wrong count": lambda r: plain(200, b'{"accepted": 0, "duplicates": 0}', "application/json"),
    "404": lambda r: plain(404, b"<html>not found</html>", "text/html"),
    "500": lambda r: plain(
        500, b'{"error": {"code": "internal_error", "message": "boom"}}', "application/json"
    ),
}


async def queued_peer(tmp_path, url, **kwargs):
    peer = Ditto(
        tmp_path / "peer",
        small_peer_info_interval=3600,
        big_peer_url=url,
        big_peer_token="device-token",
        replication_policy=kwargs.pop("policy", FAST),
        **kwargs,
    )
    await peer.__aenter__()
    await peer.small_peer_info.set_sync_scope("BigPeerOnly")
    peer.small_peer_info.is_enabled = True
    return peer


@pytest.mark.parametrize("answer", sorted(ANSWERS))
async def test_an_answer_that_does_not_say_stored_keeps_the_batch_queued(tmp_path, answer):
    server = await Server(ANSWERS[answer]).start()
    peer = await queued_peer(tmp_path, server.url)
    try:
        await wait_for(lambda: server.writes >= 2)  # it was sent, and is being sent again
        status = peer.replication_status
        assert status.queue_length >= 1
        assert status.acknowledged == 0
        assert status.state is not ConnectionState.CONNECTED
        assert status.state is ConnectionState.FAILING
        assert status.last_error is not None and status.last_error.endswith(".")
        assert "<html>" not in status.last_error and '{"' not in status.last_error
        assert server.followed == 0  # a redirect is never followed
        first, last = await peer.store.bounds()
        rows = await peer.store.timeline_rows(first, last)
        assert {row.replication for row in rows} == {Replication.QUEUED}
    finally:
        await peer.close()
        await server.stop()


async def test_a_wrong_token_is_unauthorized_not_connected(tmp_path):
    refusal = b'{"error": {"code": "wrong_token", "message": "writing needs a different bearer token"}}'
    server = await Server(lambda r: plain(401, refusal, "application/json")).start()
    peer = await queued_peer(tmp_path, server.url)
    try:
        await wait_for(lambda: peer.replication_status.state is ConnectionState.UNAUTHORIZED)
        status = peer.replication_status
        assert status.last_error == (
            "The Big Peer refuses this device token (401); set the right one and restart: "
            "writing needs a different bearer token (wrong_token)."
        )
        assert status.queue_length >= 1
    finally:
        await peer.close()
        await server.stop()


async def test_a_hanging_request_shows_what_is_being_sent_and_names_the_timeout(tmp_path):
    release = asyncio.Event()

    async def hang(request):
        await release.wait()
        return await plain(200, b'{"accepted": 1, "duplicates": 0}', "application/json")

    server = await Server(hang).start()
    policy = ReplicationPolicy(backoff_base=0.02, backoff_cap=0.2, request_timeout=0.5)
    peer = await queued_peer(tmp_path, server.url, policy=policy)
    try:
        await wait_for(lambda: peer.replication_status.sending == 1)
        assert peer.replication_status.queue_length == 1
        await wait_for(lambda: peer.replication_status.last_error is not None)
        assert peer.replication_status.last_error == (
            f"The Big Peer at {server.url} did not answer within 0.5 s; the batch will be sent again."
        )
        assert peer.replication_status.state is ConnectionState.OFFLINE
    finally:
        release.set()
        await peer.close()
        await server.stop()


async def test_a_document_dropped_by_the_bound_while_in_flight_and_then_delivered_is_not_counted(tmp_path):
    arrived = asyncio.Event()
    release = asyncio.Event()

    async def slow_accept(request):
        batch = await request.json()
        arrived.set()
        await release.wait()
        size = len(batch["documents"])
        return web.json_response({"accepted": size, "duplicates": 0})

    server = await Server(slow_accept).start()
    policy = ReplicationPolicy(batch_size=1, max_queue=2, backoff_base=0.02, backoff_cap=0.2)
    peer = await queued_peer(tmp_path, server.url, policy=policy)
    try:
        await asyncio.wait_for(arrived.wait(), 10)  # document 1 is in flight
        for _ in range(2):  # documents 2 and 3: the bound of 2 drops document 1, the one in flight
            await peer.small_peer_info.collect_now()
        await wait_for(lambda: peer.replication_status.dropped == 1)
        release.set()
        await wait_for(lambda: peer.replication_status.acknowledged == 3)
        await wait_for(lambda: peer.replication_status.queue_length == 0)
        assert peer.replication_status.dropped == 0  # document 1 arrived after all
        rows = await peer.store.timeline_rows(1, 3)
        assert {row.replication for row in rows} == {Replication.ACKNOWLEDGED}
    finally:
        release.set()
        await peer.close()
        await server.stop()


def test_answers_are_described_in_sentences():
    assert describe_answer(302, b"", "text/html") == (
        "The Big Peer answered with a redirect (302), which is never followed: check the Big Peer URL."
    )
    assert describe_answer(404, b"<html/>", "text/html").startswith("The Big Peer URL answers 404")
    assert describe_answer(200, b"ok", "text/plain") == (
        "The Big Peer answered 200 without saying it stored the batch: check the Big Peer URL."
    )
