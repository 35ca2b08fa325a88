"""The history layer: one way for every view to read a device's history, local or remote.

`HistorySource` is the protocol (pages of timeline rows by index, a document,
search, bounds, numeric series bucketed for a time range, markers, change
notifications); `LocalHistory` implements it over the local peer's store. Qt-free:
the window adapts it, plain async tests cover it.
"""

from inspector.history.local import LocalHistory
from inspector.history.source import (
    HistoryChange,
    HistoryRow,
    HistorySource,
    Marker,
    RowsAppended,
    RowsChanged,
    RowsRemoved,
    SeriesBuckets,
    SourceReset,
    Unsubscribe,
)

__all__ = [
    "HistoryChange",
    "HistoryRow",
    "HistorySource",
    "LocalHistory",
    "Marker",
    "RowsAppended",
    "RowsChanged",
    "RowsRemoved",
    "SeriesBuckets",
    "SourceReset",
    "Unsubscribe",
]
