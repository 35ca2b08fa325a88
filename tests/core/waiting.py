"""Awaiting what a peer does, without fixed sleeps."""

import asyncio


async def wait_for(predicate, timeout=10.0):
    """Await a condition (polling the loop), failing after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Collected:
    """Collects DocumentCollected events of a peer as they arrive."""

    def __init__(self, small_peer_info):
        from inspector import DocumentCollected

        self.documents = []
        self._kind = DocumentCollected
        self.subscription = small_peer_info.observe(self._on_event)

    def _on_event(self, event):
        if isinstance(event, self._kind):
            self.documents.append(event.document)

    async def at_least(self, count, timeout=10.0):
        await wait_for(lambda: len(self.documents) >= count, timeout)
        return self.documents
