"""Numeric series of a history, as min and max per bucket: what a plot of any length needs.

A plot of a million documents on 2,000 pixel columns needs, per column, the lowest
and highest value (so a spike is never lost) and nothing else. Stores hand
`bucketize` rows in time order (documents, or pre-aggregated blocks of them) and
get one `SeriesBuckets` of at most ``buckets`` entries. numpy is imported on first
use, not when the peer starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

__all__ = ["SeriesBuckets", "bucketize", "empty_series"]


@dataclass(frozen=True, slots=True)
class SeriesBuckets:
    """One numeric field over a time range, as min and max per bucket (pixel column).

    Arrays of equal length, one entry per non-empty bucket, in time order:
    ``t_first``/``t_last`` (ms) of the documents in the bucket, their ``minimum``
    and ``maximum``, and how many documents (``count``) the bucket covers.
    """

    path: str
    t_first: npt.NDArray[np.int64]
    t_last: npt.NDArray[np.int64]
    minimum: npt.NDArray[np.float64]
    maximum: npt.NDArray[np.float64]
    count: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.t_first)


def empty_series(path: str) -> SeriesBuckets:
    import numpy as np

    none = np.empty(0, dtype=np.int64)
    return SeriesBuckets(path, none, none, np.empty(0), np.empty(0), none)


def bucketize(
    path: str,
    first_ms: int,
    last_ms: int,
    buckets: int,
    t_first: npt.NDArray[np.int64],
    t_last: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
    minimum: npt.NDArray[np.float64],
    maximum: npt.NDArray[np.float64],
) -> SeriesBuckets:
    """Fold rows sorted by time into at most ``buckets`` equal spans of ``[first_ms, last_ms]``.

    A row goes to the bucket of its ``t_first``; rows without a value (NaN) are left out.
    """
    import numpy as np

    keep = ~(np.isnan(minimum) | np.isnan(maximum))
    if not keep.all():
        t_first, t_last, counts = t_first[keep], t_last[keep], counts[keep]
        minimum, maximum = minimum[keep], maximum[keep]
    if len(t_first) == 0:
        return empty_series(path)
    span = max(1, last_ms - first_ms + 1)
    index = np.clip(((t_first - first_ms) * buckets) // span, 0, buckets - 1)
    starts = np.flatnonzero(np.concatenate(([True], index[1:] != index[:-1])))
    return SeriesBuckets(
        path,
        np.minimum.reduceat(t_first, starts),
        np.maximum.reduceat(t_last, starts),
        np.minimum.reduceat(minimum, starts),
        np.maximum.reduceat(maximum, starts),
        np.add.reduceat(counts, starts),
    )
