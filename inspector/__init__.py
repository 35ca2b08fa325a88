"""Small peer info: see and steer what a small peer reports about itself.

`Ditto` is a peer over one persistence directory; ``ditto.small_peer_info`` is its
`SmallPeerInfo`. The window lives in `inspector.gui`, the Big Peer service in
`inspector.big_peer`.

The public names load on first use (PEP 562): ``small-peer-inspector --help`` and the
window's first paint do not wait for the peer's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from inspector._version import __version__

if TYPE_CHECKING:
    from inspector.core.ditto import Ditto
    from inspector.core.errors import (
        DittoClosedError,
        MetadataValidationError,
        MetadataValidationReason,
        PersistenceDirectoryLockedError,
        PersistenceError,
        PersistenceProblem,
    )
    from inspector.core.events import (
        CollectionChanged,
        DocumentCollected,
        DocumentStatesChanged,
        HistoryPruned,
        MetadataChanged,
        PersistenceChanged,
        ReplicationChanged,
        ScheduleChanged,
        SmallPeerInfoEvent,
        SmallPeerInfoSyncScope,
        SyncScopeChanged,
    )
    from inspector.core.metadata import MAX_METADATA_DEPTH, MAX_METADATA_SIZE_BYTES
    from inspector.core.small_peer_info import SmallPeerInfo
    from inspector.core.store import HistoryRetention

_WHERE = {
    "Ditto": "inspector.core.ditto",
    "DittoClosedError": "inspector.core.errors",
    "MetadataValidationError": "inspector.core.errors",
    "MetadataValidationReason": "inspector.core.errors",
    "PersistenceDirectoryLockedError": "inspector.core.errors",
    "PersistenceError": "inspector.core.errors",
    "PersistenceProblem": "inspector.core.errors",
    "CollectionChanged": "inspector.core.events",
    "DocumentCollected": "inspector.core.events",
    "DocumentStatesChanged": "inspector.core.events",
    "HistoryPruned": "inspector.core.events",
    "MetadataChanged": "inspector.core.events",
    "PersistenceChanged": "inspector.core.events",
    "ReplicationChanged": "inspector.core.events",
    "ScheduleChanged": "inspector.core.events",
    "SmallPeerInfoEvent": "inspector.core.events",
    "SmallPeerInfoSyncScope": "inspector.core.events",
    "SyncScopeChanged": "inspector.core.events",
    "MAX_METADATA_DEPTH": "inspector.core.metadata",
    "MAX_METADATA_SIZE_BYTES": "inspector.core.metadata",
    "SmallPeerInfo": "inspector.core.small_peer_info",
    "HistoryRetention": "inspector.core.store",
}

__all__ = [
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_SIZE_BYTES",
    "CollectionChanged",
    "Ditto",
    "DittoClosedError",
    "DocumentCollected",
    "DocumentStatesChanged",
    "HistoryPruned",
    "HistoryRetention",
    "MetadataChanged",
    "MetadataValidationError",
    "MetadataValidationReason",
    "PersistenceChanged",
    "PersistenceDirectoryLockedError",
    "PersistenceError",
    "PersistenceProblem",
    "ReplicationChanged",
    "ScheduleChanged",
    "SmallPeerInfo",
    "SmallPeerInfoEvent",
    "SmallPeerInfoSyncScope",
    "SyncScopeChanged",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'inspector' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
