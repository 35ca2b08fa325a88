"""SPEC section 3: what leaves the device, when, and what arrives at the real Big Peer."""

import asyncio
import inspect

import aiohttp
import pytest
from big_peer_harness import ADMIN_TOKEN, DEVICE_TOKEN, start_big_peer

from inspector import Ditto, DocumentCollected
from inspector.core.replication import ConnectionState, ReplicationPolicy
from inspector.core.store import Replication

FAST = ReplicationPolicy(backoff_base=0.02, backoff_cap=0.3, request_timeout=5)


async def wait_for(predicate, timeout=20.0):
    """Await ``predicate()`` (plain or async) becoming true."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await _value(predicate()):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


@pytest.fixture
def service(tmp_path):
    """Start (and restart) a Big Peer on one data directory and, after the first start, one port."""
    running = []

    def start(port=None):
        args = ("--port", str(port)) if port else ()
        process = start_big_peer(tmp_path / "big-peer-data", tmp_path / f"service{len(running)}.log", args)
        running.append(process)
        return process

    yield start
    for process in running:
        assert process.stop() == 0, process.log()


async def arrived(url, peer_key):
    """``last_updated_at`` of every document the Big Peer holds for ``peer_key``, oldest first."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{url}/api/v1/devices/{peer_key}/history?limit=1000",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as response,
    ):
        if response.status == 404:
            return []
        assert response.status == 200
        return [d["last_updated_at"] for d in reversed((await response.json())["documents"])]


async def _value(result):
    return await result if inspect.isawaitable(result) else result


async def arrived_count(url, peer_key, test):
    return test(len(await arrived(url, peer_key)))


def peer(directory, url, **kwargs):
    return Ditto(
        directory,
        small_peer_info_interval=kwargs.pop("interval", 0.1),
        big_peer_url=url,
        big_peer_token=kwargs.pop("token", DEVICE_TOKEN),
        replication_policy=kwargs.pop("policy", FAST),
        **kwargs,
    )


async def local_history(ditto):
    return [d["last_updated_at"] for d in reversed(await ditto.small_peer_info.history(limit=1000))]


async def test_big_peer_only_documents_arrive_in_order(tmp_path, service):
    big_peer = service()
    async with peer(tmp_path / "peer", big_peer.url) as ditto:
        sp = ditto.small_peer_info
        await sp.set_sync_scope("BigPeerOnly")
        sp.is_enabled = True

        await wait_for(lambda: arrived_count(big_peer.url, ditto.peer_key, lambda n: n >= 5))
        sp.is_enabled = False
        await wait_for(lambda: ditto.replication_status.queue_length == 0)
        assert await arrived(big_peer.url, ditto.peer_key) == await local_history(ditto)
        status = ditto.replication_status
        assert status.state is ConnectionState.CONNECTED
        assert status.acknowledged >= 5
        assert status.last_error is None
        first, last = await ditto.store.bounds()
        rows = await ditto.store.timeline_rows(first, last)
        assert {row.replication for row in rows} == {Replication.ACKNOWLEDGED}
        newest = (await sp.history(limit=1))[0]
        assert newest["connections_by_transport"] == {"WebSocket": 1}
        assert newest["big_peer_connection_history"][0]["event"] == "connected"


async def test_local_peer_only_sends_nothing(tmp_path, service):
    big_peer = service()
    async with peer(tmp_path / "peer", big_peer.url) as ditto:
        sp = ditto.small_peer_info
        sp.is_enabled = True
        collected = []
        sp.observe(lambda e: collected.append(e) if isinstance(e, DocumentCollected) else None)
        await wait_for(lambda: len(collected) >= 5)
        sp.is_enabled = False
        assert ditto.replication_status.queue_length == 0
        assert ditto.replication_status.acknowledged == 0
        assert ditto.replication_status.state is ConnectionState.IDLE
    # The Big Peer has never heard of this device: no request of its ever arrived.
    assert await arrived(big_peer.url, ditto.peer_key) == []
    assert "identity_mismatch" not in big_peer.log()


async def test_switching_to_big_peer_only_collects_a_fresh_document(tmp_path, service):
    big_peer = service()
    async with peer(tmp_path / "peer", big_peer.url, interval=300) as ditto:
        sp = ditto.small_peer_info
        sp.is_enabled = True
        await wait_for(lambda: sp.last_collected_at is not None)
        local_only = await local_history(ditto)
        await sp.set_sync_scope("BigPeerOnly")

        await wait_for(lambda: arrived_count(big_peer.url, ditto.peer_key, lambda n: n == 1))
        fresh = await arrived(big_peer.url, ditto.peer_key)
        assert fresh[0] not in local_only  # the earlier, local-only document stayed home


async def test_revoking_drops_the_queue(tmp_path, service):
    big_peer = service()
    url = big_peer.url
    port = int(url.rsplit(":", 1)[1])
    assert big_peer.stop() == 0
    async with peer(tmp_path / "peer", url) as ditto:
        sp = ditto.small_peer_info
        await sp.set_sync_scope("BigPeerOnly")
        sp.is_enabled = True
        await wait_for(lambda: ditto.replication_status.queue_length >= 3)
        assert ditto.replication_status.state is ConnectionState.OFFLINE
        assert "Cannot reach" in ditto.replication_status.last_error
        await sp.set_sync_scope("LocalPeerOnly")
        assert ditto.replication_status.queue_length == 0
        sp.is_enabled = False
        revoked = await local_history(ditto)
        first, last = await ditto.store.bounds()
        rows = await ditto.store.timeline_rows(first, last)
        assert Replication.DROPPED in {row.replication for row in rows}
        assert Replication.QUEUED not in {row.replication for row in rows}
        restarted = service(port)
        await sp.set_sync_scope("BigPeerOnly")
        sp.is_enabled = True

        await wait_for(lambda: arrived_count(restarted.url, ditto.peer_key, lambda n: n >= 1))
        sp.is_enabled = False
        assert not set(await arrived(restarted.url, ditto.peer_key)) & set(revoked)


async def test_queue_survives_an_outage_and_a_peer_restart(tmp_path, service):
    big_peer = service()
    port = int(big_peer.url.rsplit(":", 1)[1])
    async with peer(tmp_path / "peer", big_peer.url) as ditto:
        sp = ditto.small_peer_info
        await sp.set_sync_scope("BigPeerOnly")
        sp.is_enabled = True

        await wait_for(lambda: arrived_count(big_peer.url, ditto.peer_key, lambda n: n >= 2))
        assert big_peer.stop() == 0  # outage
        await wait_for(lambda: ditto.replication_status.queue_length >= 5)
        sp.is_enabled = False
    # The peer restarts during the outage: the queue is still there.
    async with peer(tmp_path / "peer", big_peer.url) as ditto:
        queued = ditto.replication_status.queue_length
        assert queued >= 5
        restarted = service(port)
        await wait_for(lambda: ditto.replication_status.queue_length == 0)
        everything = await local_history(ditto)
        assert await arrived(restarted.url, ditto.peer_key) == everything  # once each, in order


async def test_a_full_queue_drops_the_oldest_and_counts_them(tmp_path):
    policy = ReplicationPolicy(max_queue=3, backoff_base=0.02, backoff_cap=0.3)
    async with peer(tmp_path / "peer", "http://127.0.0.1:9", policy=policy, interval=300) as ditto:
        sp = ditto.small_peer_info
        await sp.set_sync_scope("BigPeerOnly")
        sp.is_enabled = True
        for _ in range(7):
            await sp.collect_now()
        await wait_for(lambda: ditto.replication_status.dropped >= 4)
        assert ditto.replication_status.queue_length == 3
        queued = [seq for seq, _ in await ditto.store.outbox_batch(100)]
        _, newest = await ditto.store.bounds()
        assert queued == [newest - 2, newest - 1, newest]


async def test_a_wrong_token_keeps_documents_queued_and_says_why(tmp_path, service):
    big_peer = service()
    async with peer(tmp_path / "peer", big_peer.url, token="not-the-token", interval=300) as ditto:
        sp = ditto.small_peer_info
        await sp.set_sync_scope("BigPeerOnly")
        sp.is_enabled = True
        await wait_for(lambda: ditto.replication_status.last_error is not None)
        assert "401" in ditto.replication_status.last_error
        assert ditto.replication_status.queue_length >= 1
    assert await arrived(big_peer.url, ditto.peer_key) == []


def test_bad_big_peer_urls_are_refused(tmp_path):
    for url in ("ftp://host", "127.0.0.1:80", "", "http://"):
        with pytest.raises(ValueError, match="Big Peer URL"):
            Ditto(tmp_path / "peer", big_peer_url=url)
    asyncio.run(Ditto(tmp_path / "peer").close())  # the failed attempts left the directory free


async def test_local_peer_only_drops_the_queue_even_without_a_big_peer_configured(tmp_path, service):
    offline = "http://127.0.0.1:9"
    async with peer(tmp_path / "peer", offline, interval=300) as ditto:
        await ditto.small_peer_info.set_sync_scope("BigPeerOnly")
        ditto.small_peer_info.is_enabled = True
        for _ in range(3):
            await ditto.small_peer_info.collect_now()
        assert ditto.replication_status.queue_length >= 3
    async with Ditto(tmp_path / "peer") as ditto:  # no Big Peer configured this time
        await ditto.small_peer_info.set_sync_scope("LocalPeerOnly")
        ditto.small_peer_info.is_enabled = False
    big_peer = service()
    async with peer(tmp_path / "peer", big_peer.url) as ditto:
        assert ditto.replication_status.queue_length == 0
        ditto.small_peer_info.is_enabled = False
        await ditto.small_peer_info.set_sync_scope("BigPeerOnly")
        await asyncio.sleep(0.3)  # a sender with something queued would have delivered it by now
    assert await arrived(big_peer.url, ditto.peer_key) == []


def _self_signed(tmp_path):
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_https_big_peer_with_an_untrusted_certificate_is_refused(tmp_path):
    # The Big Peer speaks plain HTTP (TLS belongs to the proxy in front of it), so a TLS
    # endpoint that would accept anything stands in for it: verification must stop the peer first.
    import ssl

    from aiohttp import web

    received = []

    async def ingest(request):
        received.append(await request.read())
        return web.json_response({"accepted": 1, "duplicates": 0})

    app = web.Application()
    app.router.add_post("/api/v1/small_peer_info", ingest)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*_self_signed(tmp_path))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with peer(tmp_path / "peer", f"https://127.0.0.1:{port}", interval=300) as ditto:
            await ditto.small_peer_info.set_sync_scope("BigPeerOnly")
            ditto.small_peer_info.is_enabled = True
            await wait_for(lambda: ditto.replication_status.last_error is not None)
            assert "certificate" in ditto.replication_status.last_error.lower()
            assert ditto.replication_status.queue_length >= 1
        assert received == []
    finally:
        await runner.cleanup()
