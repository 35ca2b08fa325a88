"""Small peer info: see and steer what a small peer reports about itself.

`Ditto` is a peer over one persistence directory; ``ditto.small_peer_info`` is its
`SmallPeerInfo`. The window lives in `inspector.gui`, the Big Peer service in
`inspector.big_peer`.
"""

from inspector._version import __version__
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
