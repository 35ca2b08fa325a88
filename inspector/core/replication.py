"""Replication of small peer info to the Big Peer."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

__all__ = ["ConnectionState", "ReplicationStatus"]


class ConnectionState(str, Enum):
    NOT_CONFIGURED = "not_configured"
    """No Big Peer URL was given: nothing can leave the device."""
    CONNECTED = "connected"
    """The last exchange with the Big Peer succeeded."""
    OFFLINE = "offline"
    """The Big Peer is unreachable or failing; queued documents wait."""
    IDLE = "idle"
    """A Big Peer is configured but nothing was sent yet (or the scope is LocalPeerOnly)."""


@dataclass(frozen=True, slots=True)
class ReplicationStatus:
    """What the window shows about replication."""

    state: ConnectionState
    queue_length: int = 0
    dropped: int = 0
    """Queued documents dropped because the queue was full (oldest first), since the peer opened."""
    acknowledged: int = 0
    """Documents the Big Peer acknowledged since the peer opened."""
    last_error: str | None = None
    last_acknowledged_at: float | None = None


NOT_CONFIGURED = ReplicationStatus(ConnectionState.NOT_CONFIGURED)
