"""Refuses replayed writes: remembers each signed ``(peer_key, nonce)`` while its timestamp is fresh.

`inspector.core.identity.verify_request` refuses a timestamp more than the skew
window away from the Big Peer's clock, so a nonce needs remembering only until
its own timestamp has left that window; after that the signature check refuses
the request anyway.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

__all__ = ["NonceCache", "NonceCacheFullError"]

DEFAULT_WINDOW_MS = 300_000
"""The skew window of `inspector.core.identity.verify_request`."""


class NonceCacheFullError(RuntimeError):
    """More fresh nonces than the cache may hold; the write should be retried later."""


class NonceCache:
    """The ``(peer_key, nonce)`` pairs seen within the skew window, bounded in memory."""

    def __init__(
        self,
        *,
        window_ms: int = DEFAULT_WINDOW_MS,
        max_entries: int = 200_000,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._window_ms = window_ms
        self._max_entries = max_entries
        self._clock_ms = clock_ms
        self._expiry: dict[tuple[str, str], int] = {}
        self._heap: list[tuple[int, tuple[str, str]]] = []

    def __len__(self) -> int:
        return len(self._expiry)

    def remember(self, peer_key: str, nonce: str, timestamp_ms: int) -> bool:
        """Record a verified request; False if this peer already used this nonce within the window."""
        now = self._clock_ms()
        while self._heap and self._heap[0][0] < now:
            _, key = heapq.heappop(self._heap)
            del self._expiry[key]
        key = (peer_key, nonce)
        if key in self._expiry:
            return False
        if len(self._expiry) >= self._max_entries:
            raise NonceCacheFullError(
                f"{len(self._expiry)} signed writes in the last {self._window_ms // 1000} s; retry later"
            )
        expiry = timestamp_ms + self._window_ms
        self._expiry[key] = expiry
        heapq.heappush(self._heap, (expiry, key))
        return True
