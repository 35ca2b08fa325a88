"""`Timeline`: a newest-first, lazily paged, filterable view of a `HistorySource` (no Qt).

It never holds the history. Indices have no gaps, so row *i* of the unfiltered
timeline is ``newest - i``: it keeps the bounds, and reads the rows a view asks for
in pages of `PAGE_SIZE` indices (with the row before each page, for "change since
the previous document"), with an LRU cache of pages. A row whose page is not loaded
yet answers None; the page is requested, and the listener hears `changed` when it
arrives.

Changes come from the source: new documents (`RowsAppended`, coalesced for
`FLUSH_DELAY` seconds into one insertion at the top, their rows cached from the
event itself), retention (`RowsRemoved`), Big Peer states (`RowsChanged`, applied
to cached rows in place). Nothing is re-read that the source just told.

A filter keeps the indices of matching documents (newest first, at most
`SEARCH_LIMIT`), searched by the source; new documents are matched by searching
only the indices above the last one searched.

The listener is told before and after each change of rows (`TimelineListener`),
exactly what a Qt item model needs to call ``beginInsertRows``/``endInsertRows``.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any, Protocol

from inspector.history.source import (
    HistoryChange,
    HistoryRow,
    HistorySource,
    RowsAppended,
    RowsChanged,
    RowsRemoved,
    SourceReset,
)

__all__ = ["FLUSH_DELAY", "PAGE_SIZE", "SEARCH_LIMIT", "Timeline", "TimelineListener"]

PAGE_SIZE = 128
"""Indices read at once (a screen is about 40 rows)."""
MAX_CACHED_PAGES = 128
SEARCH_LIMIT = 50_000
"""Most matches a filter keeps (newest first); `matches_truncated` says when it was reached."""
FLUSH_DELAY = 0.1
"""New documents arriving within this time are inserted as one batch (seconds)."""

Spawn = Callable[[Coroutine[Any, Any, None], str], object]


class TimelineListener(Protocol):
    """What a view adapter hears; each ``about_to_*`` is followed by its completion."""

    def about_to_insert(self, first: int, last: int) -> None: ...
    def inserted(self) -> None: ...
    def about_to_remove(self, first: int, last: int) -> None: ...
    def removed(self) -> None: ...
    def about_to_reset(self) -> None: ...
    def reset(self) -> None: ...
    def changed(self, first: int, last: int) -> None: ...
    def counts_changed(self) -> None: ...
    def searching_changed(self, searching: bool) -> None: ...
    def failed(self, error: Exception | None) -> None: ...


class _Page:
    __slots__ = ("newest", "rows")

    def __init__(self, rows: dict[int, HistoryRow], newest: int) -> None:
        self.rows = rows
        self.newest = newest  # the history's newest index when read: indices above it were not there yet


class _Descending:
    """A read-only view of a descending list as its negation, ascending, for `bisect`."""

    __slots__ = ("_items",)

    def __init__(self, items: list[int]) -> None:
        self._items = items

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> int:
        return -self._items[index]


class Timeline:
    """The rows a timeline shows, read lazily from ``source`` (see the module doc)."""

    def __init__(
        self,
        source: HistorySource,
        spawn: Spawn,
        listener: TimelineListener,
        *,
        flush_delay: float = FLUSH_DELAY,
    ) -> None:
        self.source = source
        self._flush_delay = flush_delay
        self._spawn = spawn
        self._listener = listener
        self._oldest = 1
        self._newest = 0  # empty while newest < oldest
        self._known = False
        self._filter = ""
        self._matches: list[int] | None = None  # indices, newest first, while a filter is set
        self._matches_truncated = False
        self._matched_up_to = 0  # the newest index the filter has looked at
        self._search_version = 0
        self._searching = False
        self._pages: OrderedDict[int, _Page] = OrderedDict()
        self._wanted: set[int] = set()
        self._loading: set[int] = set()
        self._unreadable: set[int] = set()  # pages whose read failed: not asked again until a refresh
        self.error: Exception | None = None
        """Why the last read failed (None once reads succeed again)."""
        self._fetch_scheduled = False
        self._appended: list[HistoryRow] = []
        self._append_to = 0
        self._flush: asyncio.TimerHandle | None = None
        self._closed = False
        self.pages_read = 0
        """How many pages were read from the source (for tests and benchmarks)."""
        self._unsubscribe = source.subscribe(self._on_change)

    # --- what a view asks ----------------------------------------------------------------------

    def start(self) -> None:
        """Read the bounds (the first screen follows as the view asks for its rows)."""
        self._spawn(self._read_bounds(), "timeline: read the bounds")

    def close(self) -> None:
        self._closed = True
        self._unsubscribe()
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None

    @property
    def loaded(self) -> bool:
        """Whether the bounds were read once."""
        return self._known

    @property
    def total_count(self) -> int:
        return max(0, self._newest - self._oldest + 1)

    @property
    def row_count(self) -> int:
        return len(self._matches) if self._matches is not None else self.total_count

    @property
    def filter_text(self) -> str:
        return self._filter

    @property
    def match_count(self) -> int | None:
        return None if self._matches is None else len(self._matches)

    @property
    def matches_truncated(self) -> bool:
        return self._matches_truncated

    @property
    def matches(self) -> list[int] | None:
        """Indices of the matching documents, newest first (None without a filter)."""
        return self._matches

    @property
    def searching(self) -> bool:
        return self._searching

    @property
    def cached_row_count(self) -> int:
        return sum(len(page.rows) for page in self._pages.values())

    def index_at(self, row: int) -> int:
        """The history index shown on ``row``."""
        if self._matches is not None:
            return self._matches[row]
        return self._newest - row

    def row_of(self, index: int) -> int | None:
        """The row showing ``index``, or None."""
        if self._matches is not None:
            position = bisect_left(_Descending(self._matches), -index)
            if position < len(self._matches) and self._matches[position] == index:
                return position
            return None
        if self._oldest <= index <= self._newest:
            return self._newest - index
        return None

    def row(self, row: int, *, request: bool = True) -> tuple[HistoryRow, HistoryRow | None] | None:
        """The row and the one before it in the history (None while its page loads)."""
        return self._lookup(self.index_at(row), request)

    def is_row_loaded(self, row: int) -> bool:
        return self._lookup(self.index_at(row), False) is not None

    def is_previous_gone(self, item: HistoryRow) -> bool:
        """Whether the document before ``item`` is no longer kept (retention)."""
        return item.index - 1 < self._oldest and item.index > 1

    def flush(self) -> None:
        """Insert the documents gathered for the next batch now."""
        self._flush_appended()

    def refresh(self) -> None:
        """Read everything again (after the source reset)."""
        self._spawn(self._read_bounds(reset=True), "timeline: read the bounds")

    # --- pages ---------------------------------------------------------------------------------

    def _lookup(self, index: int, request: bool) -> tuple[HistoryRow, HistoryRow | None] | None:
        number = index // PAGE_SIZE
        page = self._pages.get(number)
        if page is None or index not in page.rows:
            if page is not None and index <= page.newest:
                return None  # deleted by retention: the removal is on its way
            if request:
                self._request(number)
            return None
        self._pages.move_to_end(number)
        if index - 1 < self._oldest:
            return page.rows[index], None  # retention took the one before
        previous = page.rows.get(index - 1)
        if previous is None and index % PAGE_SIZE == 0:  # the row before is the last of the page below
            below = self._pages.get(number - 1)
            previous = below.rows.get(index - 1) if below is not None else None
        return page.rows[index], previous

    def is_row_unreadable(self, row: int) -> bool:
        """Whether the row's page could not be read (the source failed)."""
        return self.index_at(row) // PAGE_SIZE in self._unreadable

    def _request(self, page: int) -> None:
        if page in self._loading or page in self._wanted or page in self._unreadable or self._closed:
            return
        self._wanted.add(page)
        if not self._fetch_scheduled:
            self._fetch_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_fetch)

    def _start_fetch(self) -> None:
        self._fetch_scheduled = False
        pages = sorted(self._wanted - self._loading)
        self._wanted.clear()
        if pages and not self._closed:
            self._loading.update(pages)
            self._spawn(self._fetch(pages), "timeline: read rows")

    async def _fetch(self, pages: list[int]) -> None:
        newest_before = self._newest
        result: dict[int, dict[int, HistoryRow]] = {}
        try:
            for number in pages:
                first = number * PAGE_SIZE
                read = await self.source.rows(first - 1, first + PAGE_SIZE - 1)
                result[number] = {row.index: row for row in read}
        except Exception as error:  # a damaged file, a lost connection: say so once, do not retry in a loop
            self._unreadable.update(n for n in pages if n not in result)
            self._set_error(error)
        else:
            self._set_error(None)
        finally:
            self._loading.difference_update(pages)
        if self._closed:
            return
        self.pages_read += len(result)
        for number, rows in result.items():
            self._pages[number] = _Page(rows, max(newest_before, max(rows, default=0)))
            self._pages.move_to_end(number)
        while len(self._pages) > MAX_CACHED_PAGES:
            self._pages.popitem(last=False)
        self._tell_changed([(n * PAGE_SIZE, (n + 1) * PAGE_SIZE - 1) for n in pages])

    def _tell_changed(self, spans: list[tuple[int, int]]) -> None:
        rows = [row for low, high in spans if (found := self._rows_of(low, high)) for row in found]
        if rows:
            self._listener.changed(min(rows), max(rows))

    def _rows_of(self, low: int, high: int) -> tuple[int, int] | None:
        """The (top, bottom) rows showing indices ``low..high``, or None."""
        if self._matches is None:
            low, high = max(low, self._oldest), min(high, self._newest)
            return (self._newest - high, self._newest - low) if low <= high else None
        negated = _Descending(self._matches)
        top, bottom = bisect_left(negated, -high), bisect_right(negated, -low) - 1
        return (top, bottom) if top <= bottom else None

    # --- changes from the source ---------------------------------------------------------------

    def _on_change(self, change: HistoryChange) -> None:
        if self._closed:
            return
        if isinstance(change, RowsAppended):
            self._appended.extend(change.rows)
            self._append_to = max(self._append_to, change.newest)
            if self._flush is None:
                self._flush = asyncio.get_running_loop().call_later(self._flush_delay, self._flush_appended)
        elif isinstance(change, RowsRemoved):
            self._flush_appended()
            self._remove_below(change.oldest)
        elif isinstance(change, RowsChanged):
            self._change_states(change)
        elif isinstance(change, SourceReset):
            self.refresh()

    def _flush_appended(self) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        rows, self._appended = self._appended, []
        newest = self._append_to
        if newest <= self._newest or not self._known:
            return
        for item in rows:  # the source told us these rows: no need to read them back
            page = self._pages.get(item.index // PAGE_SIZE)
            if page is not None:  # a page never read is read whole when it is shown
                page.rows[item.index] = item
                page.newest = max(page.newest, item.index)
        if self._matches is None:
            empty = self._newest < self._oldest
            first_new = self._oldest if empty else self._newest + 1
            self._listener.about_to_insert(0, newest - first_new)
            self._newest = newest
            self._listener.inserted()
        else:
            self._newest = newest
            self._spawn(self._match_new(self._search_version), "timeline: match new documents")
        self._listener.counts_changed()

    async def _match_new(self, version: int) -> None:
        since = self._matched_up_to
        try:
            found, (_, newest) = await self.source.search(self._filter, SEARCH_LIMIT, since)
        except Exception as error:
            self._set_error(error)
            return
        if version != self._search_version or self._matches is None or self._closed:
            return
        found = [i for i in found if i > since and i >= self._oldest]
        self._matched_up_to = max(since, newest)
        if found:
            self._listener.about_to_insert(0, len(found) - 1)
            self._matches[:0] = found
            self._listener.inserted()
            self._listener.counts_changed()

    def _remove_below(self, oldest: int) -> None:
        if oldest <= self._oldest:
            return
        if self._matches is None:
            gone = min(oldest, self._newest + 1) - self._oldest
            count = self.row_count
            if gone > 0:
                self._listener.about_to_remove(count - gone, count - 1)
                self._oldest = oldest
                self._listener.removed()
            else:
                self._oldest = oldest
        else:
            self._oldest = oldest
            keep = bisect_left(_Descending(self._matches), -oldest + 1)
            if keep < len(self._matches):
                self._listener.about_to_remove(keep, len(self._matches) - 1)
                del self._matches[keep:]
                self._listener.removed()
        for number in [n for n in self._pages if (n + 1) * PAGE_SIZE <= oldest - 1]:
            del self._pages[number]
        self._listener.counts_changed()

    def _change_states(self, change: RowsChanged) -> None:
        # A document the Big Peer acknowledged before its row left the append batch (a
        # loopback Big Peer answers in ~30 ms, the batch waits 100 ms): its row must not
        # arrive saying "queued" for good.
        if self._appended:
            indices = set(change.indices)
            self._appended = [
                replace(item, replication=change.replication) if item.index in indices else item
                for item in self._appended
            ]
        touched = []
        for index in change.indices:
            page = self._pages.get(index // PAGE_SIZE)
            if page is not None and (item := page.rows.get(index)) is not None:
                page.rows[index] = replace(item, replication=change.replication)
                touched.append(index)
        if touched:
            self._tell_changed([(min(touched), max(touched))])

    async def _read_bounds(self, reset: bool = False) -> None:
        try:
            oldest, newest = await self.source.bounds()
        except Exception as error:
            self._set_error(error)
            return
        if self._closed:
            return
        self._unreadable.clear()
        self._set_error(None)
        if newest == 0:
            oldest, newest = 1, 0
        self._listener.about_to_reset()
        self._oldest, self._newest = oldest, newest
        self._pages.clear()
        self._known = True
        if reset:
            self._appended.clear()
        self._listener.reset()
        self._listener.counts_changed()
        if self._filter:
            self._start_search()

    # --- the filter ----------------------------------------------------------------------------

    def set_filter(self, text: str) -> None:
        """Show only documents whose JSON contains ``text`` (ASCII case-insensitively); "" shows all."""
        text = text.strip()
        if text == self._filter:
            return
        self._filter = text
        self._search_version += 1
        if not text:
            self._set_searching(False)
            if self._matches is not None:
                self._listener.about_to_reset()
                self._matches = None
                self._matches_truncated = False
                self._listener.reset()
                self._listener.counts_changed()
            return
        self._start_search()

    def _start_search(self) -> None:
        self._set_searching(True)
        self._spawn(self._search(self._filter, self._search_version), "timeline: search")

    async def _search(self, needle: str, version: int) -> None:
        try:
            found, (oldest, newest) = await self.source.search(needle, SEARCH_LIMIT)
        except Exception as error:
            self._set_error(error)
            return
        finally:
            if version == self._search_version:
                self._set_searching(False)
        if version != self._search_version or self._closed:
            return  # a newer filter replaced this one
        self._flush_appended()
        self._listener.about_to_reset()
        if newest:
            self._oldest = oldest
            self._newest = max(self._newest, newest)
        self._known = True
        self._matches = found
        self._matches_truncated = len(found) >= SEARCH_LIMIT
        self._matched_up_to = newest
        self._listener.reset()
        self._listener.counts_changed()
        if self._newest > newest:  # documents arrived while searching
            self._spawn(self._match_new(version), "timeline: match new documents")

    def _set_error(self, error: Exception | None) -> None:
        if error is not self.error and not self._closed:
            self.error = error
            self._listener.failed(error)

    def _set_searching(self, searching: bool) -> None:
        if searching != self._searching:
            self._searching = searching
            self._listener.searching_changed(searching)
