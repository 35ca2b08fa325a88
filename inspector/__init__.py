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
)
from inspector.core.metadata import MAX_METADATA_DEPTH, MAX_METADATA_SIZE_BYTES
from inspector.core.small_peer_info import (
    DocumentCollected,
    ReplicationChanged,
    SettingChanged,
    SmallPeerInfo,
    SmallPeerInfoSyncScope,
)
from inspector.core.store import HistoryRetention

__all__ = [
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_SIZE_BYTES",
    "Ditto",
    "DittoClosedError",
    "DocumentCollected",
    "HistoryRetention",
    "MetadataValidationError",
    "MetadataValidationReason",
    "PersistenceDirectoryLockedError",
    "ReplicationChanged",
    "SettingChanged",
    "SmallPeerInfo",
    "SmallPeerInfoSyncScope",
    "__version__",
]
