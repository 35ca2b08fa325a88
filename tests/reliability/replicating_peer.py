"""A peer that collects every 0.1 s and replicates to a Big Peer, until it is killed.

``python -m tests.reliability.replicating_peer DIR URL TOKEN`` (printing ``ready`` once open).
"""

from __future__ import annotations

import asyncio
import sys

from inspector import Ditto
from inspector.core.replication import ReplicationPolicy

POLICY = ReplicationPolicy(batch_size=7, backoff_base=0.02, backoff_cap=0.2, request_timeout=5)


async def main(directory: str, url: str, token: str) -> None:
    peer = Ditto(
        directory,
        small_peer_info_interval=0.1,
        big_peer_url=url,
        big_peer_token=token,
        replication_policy=POLICY,
    )
    async with peer:
        await peer.small_peer_info.set_sync_scope("BigPeerOnly")
        peer.small_peer_info.metadata = {"kills": "survived"}
        peer.small_peer_info.is_enabled = True
        print("ready", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
