"""Refusing replayed writes: each signed ``(peer_key, nonce)`` is accepted once.

`inspector.core.identity.verify_request` refuses a timestamp more than the skew
window away from the Big Peer's clock, so a nonce needs remembering only until its
own timestamp has left that window; after that the signature check refuses the
request anyway. The storage remembers claims in the database, in the transaction
that stores the batch (`storage.BigPeerStorage.ingest`), so a signed write is
accepted once across restarts and across every process serving one database, and
a batch is never stored without its nonce being spent.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_MAX_NONCES",
    "REPLAY_WINDOW_MS",
    "NonceClaim",
    "NonceGuardFullError",
    "ReplayedNonceError",
]

REPLAY_WINDOW_MS = 300_000
"""The skew window of `inspector.core.identity.verify_request`."""
DEFAULT_MAX_NONCES = 200_000
"""Unexpired nonces kept at most; past it, writes are refused for a while (503) instead of growing."""


@dataclass(frozen=True, slots=True)
class NonceClaim:
    """A verified request's nonce, to be spent when its batch is stored."""

    peer_key: str
    nonce: str
    expires_at_ms: int
    """When the request's timestamp leaves the skew window (its signature is refused from then on)."""

    @classmethod
    def of_request(cls, peer_key: str, nonce: str, timestamp_ms: int) -> NonceClaim:
        return cls(peer_key, nonce, timestamp_ms + REPLAY_WINDOW_MS)


class ReplayedNonceError(Exception):
    """This peer already spent this nonce within the window; nothing of the batch was stored."""


class NonceGuardFullError(Exception):
    """More unexpired nonces than the guard may hold; nothing was stored, retry the write later."""
