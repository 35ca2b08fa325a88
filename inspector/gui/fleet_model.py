"""The fleet's device table: one row per device of a Big Peer, read page by page from ``/api/v1/fleet``.

`FleetModel` holds the device summaries read so far and nothing else: the Big Peer
filters (``q``) and sorts (``sort``), the model asks. It pages lazily
(`canFetchMore`/`fetchMore`: a page when the view scrolls near the end) and keeps
itself current with one conditional read every `POLL_INTERVAL` seconds: the rows
read so far (up to `REFRESH_LIMIT`, one request) are read again when the Big Peer's
fleet tag moved, and merged in place: rows removed, moved (a layout change that
keeps the selection on its device), inserted and updated, never a reset. Rows
past `REFRESH_LIMIT` keep what their page said until they are read again.

A read that fails leaves the rows as they were; `error` says why and the next
poll tries again, so the table recovers by itself when the Big Peer does.

Decisions where the contract is silent:

* Only two columns sort, as the Big Peer does: the device name (A to Z, code point
  order) and "Last seen" (newest report first, ``sort=last_updated_at``). The Big
  Peer has one direction per order, so clicking a sorted header again keeps it.
* "Last seen" is when the Big Peer received the device's newest document
  (``received_at``), measured on the Big Peer's clock (`BigPeerClient.server_offset`).
* A device is *online* while its newest document is at most two of its usual
  intervals old, plus `ONLINE_GRACE_S` for the network (``interval_seconds``; a
  device with a single document is given the SDK's default interval,
  `DEFAULT_INTERVAL_S`); otherwise *stale*.
* Metadata columns show the value at a dotted path (``battery.level``) of each
  device's metadata: text as is, other values as compact JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

import orjson
from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QPainter, QPixmap

from inspector.core.clock import Clock
from inspector.gui.formatting import format_bytes, format_interval, format_local_time, format_relative
from inspector.gui.tasks import TaskSet
from inspector.history.remote import MAX_PAGE, BigPeerClient, BigPeerError, FleetDevice, FleetSortOrder

__all__ = [
    "DEFAULT_INTERVAL_S",
    "ONLINE_GRACE_S",
    "PAGE_SIZE",
    "PEER_KEY_ROLE",
    "POLL_INTERVAL",
    "REFRESH_LIMIT",
    "Column",
    "FleetModel",
    "device_status",
    "metadata_value",
]

PAGE_SIZE = 100
"""Devices read per page as the view scrolls."""
REFRESH_LIMIT = MAX_PAGE
"""The most rows a poll reads again (one request)."""
POLL_INTERVAL = 2.5
"""Seconds between two conditional reads of the fleet."""
DEFAULT_INTERVAL_S = 300.0
"""The SDK's default collection interval: what a device with one document is expected to keep."""
ONLINE_GRACE_S = 10.0
PEER_KEY_ROLE = Qt.ItemDataRole.UserRole + 1
"""The row's peer key."""
DEVICE_ROLE = Qt.ItemDataRole.UserRole + 2
"""The row's `FleetDevice`."""

_Index = QModelIndex | QPersistentModelIndex


class Column(IntEnum):
    NAME = 0
    PLATFORM = 1
    SDK = 2
    LAST_SEEN = 3
    STATUS = 4
    DISK = 5


_HEADERS = {
    Column.NAME: "Device",
    Column.PLATFORM: "Platform",
    Column.SDK: "SDK version",
    Column.LAST_SEEN: "Last seen",
    Column.STATUS: "Status",
    Column.DISK: "Disk available",
}
_HEADER_TIPS = {
    Column.NAME: "The device name (click to sort A to Z: the Big Peer sorts names one way)",
    Column.PLATFORM: "The platform the SDK runs on",
    Column.SDK: "The SDK's version (and language)",
    Column.LAST_SEEN: "When the Big Peer received the device's newest document (click to sort newest first)",
    Column.STATUS: "Online while the device reports about as often as it usually does",
    Column.DISK: "Free space on the device's disk in its newest document",
}
SORTS = {
    Column.NAME: (FleetSortOrder.DEVICE_NAME, Qt.SortOrder.AscendingOrder),
    Column.LAST_SEEN: (FleetSortOrder.LAST_UPDATED_AT, Qt.SortOrder.DescendingOrder),
}
"""The sortable columns: the Big Peer's order and the one direction it has."""
_RIGHT = int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
_LEFT = int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
_MISSING = object()


def device_status(device: FleetDevice, now: float) -> tuple[bool, str]:
    """(online, explanation) of a device at ``now`` (the Big Peer's clock, seconds)."""
    interval = device.interval_seconds if device.interval_seconds else DEFAULT_INTERVAL_S
    allowed = 2 * interval + ONLINE_GRACE_S
    if device.received_ms is None:
        return False, "The Big Peer did not say when it received this device's newest document."
    age = max(0.0, now - device.received_ms / 1000)
    usual = (
        f"reports {format_interval(device.interval_seconds)}"
        if device.interval_seconds
        else f"one document so far: expected {format_interval(DEFAULT_INTERVAL_S)} (the SDK's default)"
    )
    heard = f"Last heard {format_relative(device.received_ms / 1000, now)}; {usual}."
    if age <= allowed:
        rule = f"two intervals and {ONLINE_GRACE_S:g} s"
        return True, f"{heard}\nOnline: heard from within {allowed:g} s ({rule})."
    missed = max(1, math.floor(age / interval))
    return False, f"{heard}\nStale: about {missed:,} report{'s' if missed != 1 else ''} missed."


def metadata_value(device: FleetDevice, path: str) -> Any:
    """The value at dotted ``path`` of the device's metadata (`_MISSING`-free: None when absent)."""
    found = _lookup(device.metadata, path)
    return None if found is _MISSING else found


def _lookup(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def format_metadata_value(value: Any) -> str:
    """How a metadata column shows a value: text as is, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    text = orjson.dumps(value).decode()
    return text if len(text) <= 200 else text[:199] + "…"


def _dot(colour: str) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(QColor(colour))
    painter.drawEllipse(2, 2, 8, 8)
    painter.end()
    return QIcon(pixmap)


class FleetModel(QAbstractTableModel):
    """The devices of a Big Peer, for ``fleetDeviceTable`` (see the module doc)."""

    stateChanged = Signal()
    """Counts, the query, loading or the last error changed: the status line should say it."""
    refreshed = Signal()
    """A read of the fleet succeeded (rows may have changed)."""

    def __init__(
        self,
        client: BigPeerClient,
        tasks: TaskSet,
        clock: Clock,
        parent: QObject | None = None,
        *,
        page_size: int = PAGE_SIZE,
        poll_interval: float = POLL_INTERVAL,
        metadata_columns: Sequence[str] = (),
    ) -> None:
        super().__init__(parent)
        self._client = client
        self._tasks = tasks
        self._clock = clock
        self.page_size = page_size
        self.poll_interval = poll_interval
        self._rows: list[FleetDevice] = []
        self._next: str | None = None
        self._total: int | None = None
        self._etag: str | None = None
        self._query = ""
        self._sort = FleetSortOrder.DEVICE_NAME
        self._generation = 0  # a new query or order: what was read before answers another question
        self._rows_generation = -1
        self._reading = asyncio.Lock()
        self._fetching_more = False
        self._wake = asyncio.Event()
        self._running = False
        self._closed = False
        self._metadata_columns = list(dict.fromkeys(metadata_columns))
        self.error: BigPeerError | None = None
        """Why the last read failed, or None."""
        self.last_success: float | None = None
        """When (this machine's clock) a read last succeeded."""
        self.polls = 0
        """How many polls were made (for tests)."""
        self._now = self._big_peer_now()
        self._online_icon = _dot("#2da44e")
        self._stale_icon = _dot("#bf8700")

    # --- what the window asks --------------------------------------------------------------------

    @property
    def client(self) -> BigPeerClient:
        return self._client

    @property
    def query(self) -> str:
        return self._query

    @property
    def sort_order_name(self) -> str:
        """The Big Peer's ``sort`` the rows are in."""
        return self._sort

    @property
    def sort_column(self) -> Column:
        return next(column for column, (name, _) in SORTS.items() if name == self._sort)

    @property
    def total(self) -> int | None:
        """How many devices match the query (None until the first read)."""
        return self._total

    @property
    def loaded(self) -> bool:
        return self._rows_generation == self._generation

    @property
    def devices(self) -> list[FleetDevice]:
        return list(self._rows)

    @property
    def metadata_columns(self) -> list[str]:
        return list(self._metadata_columns)

    def device(self, row: int) -> FleetDevice | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, peer_key: str) -> int | None:
        for row, device in enumerate(self._rows):
            if device.peer_key == peer_key:
                return row
        return None

    def start(self) -> None:
        """Read the first page, then poll until `shutdown`."""
        if not self._running:
            self._running = True
            self._tasks.spawn(self._poll_loop(), "fleet: poll")

    def shutdown(self) -> None:
        self._closed = True
        self._wake.set()

    def set_query(self, text: str) -> None:
        """Keep the devices whose name, peer key or metadata JSON contain ``text`` (the Big Peer's ``q``)."""
        text = text.strip()
        if text != self._query:
            self._query = text
            self._new_question()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Ask the Big Peer for the column's order (only `SORTS` columns sort; the direction is theirs)."""
        if column in SORTS:
            name, _ = SORTS[Column(column)]
            if name != self._sort:
                self._sort = name
                self._new_question()

    def set_metadata_columns(self, paths: Sequence[str]) -> None:
        """Show a column for each metadata path (``site``, ``battery.level``)."""
        paths = list(dict.fromkeys(p.strip().strip(".") for p in paths if p.strip().strip(".")))
        if paths == self._metadata_columns:
            return
        self.beginResetModel()
        self._metadata_columns = paths
        self.endResetModel()

    def refresh_times(self) -> None:
        """Move "3 s ago" and the online badges on."""
        self._now = self._big_peer_now()
        if self._rows:
            self.dataChanged.emit(
                self.index(0, Column.LAST_SEEN),
                self.index(len(self._rows) - 1, Column.STATUS),
                [Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.DecorationRole],
            )

    def poll_now(self) -> None:
        """Read the fleet now instead of at the next poll."""
        self._wake.set()

    def _big_peer_now(self) -> float:
        return self._clock.time() + self._client.server_offset

    def _new_question(self) -> None:
        self._generation += 1
        self._etag = None
        self.stateChanged.emit()
        self._wake.set()

    # --- reading ---------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while not self._closed:
            self._wake.clear()
            await self._refresh()
            self.polls += 1
            if self._closed:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_interval):
                    await self._wake.wait()

    async def _refresh(self) -> None:
        async with self._reading:
            generation = self._generation
            fresh = self._rows_generation != generation
            wanted = self.page_size if fresh else min(REFRESH_LIMIT, max(self.page_size, len(self._rows)))
            try:
                page = await self._client.fleet(
                    limit=wanted,
                    q=self._query,
                    sort=self._sort,
                    etag=None if fresh else self._etag,
                )
            except BigPeerError as error:
                if not self._closed:
                    self._failed(error)
                return
            if self._closed or generation != self._generation:
                return
            self.error = None
            self.last_success = self._clock.time()
            if page is not None:
                self._etag = page.etag
                self._total = page.total
                if fresh:
                    self.beginResetModel()
                    self._rows = list(page.devices)
                    self._next = page.next
                    self._rows_generation = generation
                    self.endResetModel()
                else:
                    refreshed_rows = min(len(self._rows), wanted)
                    self._merge(list(page.devices), refreshed_rows)
                    if refreshed_rows == len(self._rows) or page.next is None:
                        self._next = page.next
            self._now = self._big_peer_now()
            self.refreshed.emit()
            self.stateChanged.emit()

    def _failed(self, error: BigPeerError) -> None:
        self.error = error
        self.stateChanged.emit()

    def canFetchMore(self, parent: _Index = QModelIndex()) -> bool:  # noqa: B008
        return (
            not parent.isValid()
            and self.loaded
            and self._next is not None
            and not self._fetching_more
            and self.error is None
        )

    def fetchMore(self, parent: _Index = QModelIndex()) -> None:  # noqa: B008
        if self.canFetchMore(parent):
            self._fetching_more = True
            self._tasks.spawn(self._fetch_more(), "fleet: read the next page")

    async def _fetch_more(self) -> None:
        try:
            async with self._reading:
                generation, after = self._generation, self._next
                if after is None or generation != self._rows_generation:
                    return
                try:
                    page = await self._client.fleet(
                        limit=self.page_size, after=after, q=self._query, sort=self._sort
                    )
                except BigPeerError as error:
                    if not self._closed:
                        self._failed(error)
                    return
                if self._closed or generation != self._generation or page is None:
                    return
                known = {device.peer_key for device in self._rows}
                new = [device for device in page.devices if device.peer_key not in known]
                if new:
                    self.beginInsertRows(QModelIndex(), len(self._rows), len(self._rows) + len(new) - 1)
                    self._rows.extend(new)
                    self.endInsertRows()
                self._next = page.next
                self._total = page.total
                self.error = None
                self.stateChanged.emit()
        finally:
            self._fetching_more = False

    def _merge(self, head: list[FleetDevice], replaced: int) -> None:
        """Make the rows ``head`` + the rows past ``replaced`` not in it, by removes, a move, inserts."""
        head_keys = {device.peer_key for device in head}
        target = head + [device for device in self._rows[replaced:] if device.peer_key not in head_keys]
        wanted = {device.peer_key for device in target}
        # 1. Rows of devices no longer listed go, in runs from the bottom.
        row = len(self._rows) - 1
        while row >= 0:
            if self._rows[row].peer_key in wanted:
                row -= 1
                continue
            last = row
            while row - 1 >= 0 and self._rows[row - 1].peer_key not in wanted:
                row -= 1
            self.beginRemoveRows(QModelIndex(), row, last)
            del self._rows[row : last + 1]
            self.endRemoveRows()
            row -= 1
        # 2. The devices kept take their new order: one layout change, persistent indices follow.
        kept = {device.peer_key for device in self._rows}
        order = [device for device in target if device.peer_key in kept]
        if [d.peer_key for d in order] != [d.peer_key for d in self._rows]:
            self.layoutAboutToBeChanged.emit()
            persistent = self.persistentIndexList()
            keys = [self._rows[index.row()].peer_key for index in persistent]
            self._rows = order
            position = {device.peer_key: row for row, device in enumerate(order)}
            moved = [
                self.index(position[key], index.column()) for key, index in zip(keys, persistent, strict=True)
            ]
            self.changePersistentIndexList(persistent, moved)
            self.layoutChanged.emit()
        # 3. New devices come in where the Big Peer puts them.
        row = 0
        while row < len(target):
            if row < len(self._rows) and self._rows[row].peer_key == target[row].peer_key:
                row += 1
                continue
            end = row
            while end < len(target) and target[end].peer_key not in kept:
                end += 1
            self.beginInsertRows(QModelIndex(), row, end - 1)
            self._rows[row:row] = target[row:end]
            self.endInsertRows()
            row = end
        # 4. Every row shows its newest summary.
        changed = [row for row, device in enumerate(target) if device.fields != self._rows[row].fields]
        self._rows = target
        if changed:
            last_column = self.columnCount() - 1
            self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), last_column))

    # --- Qt's model interface --------------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(Column) + len(self._metadata_columns)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def metadata_path(self, column: int) -> str | None:
        """The metadata path shown in ``column``, or None for the fixed columns."""
        offset = column - len(Column)
        return self._metadata_columns[offset] if 0 <= offset < len(self._metadata_columns) else None

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < self.columnCount():
            return None
        path = self.metadata_path(section)
        if role == Qt.ItemDataRole.DisplayRole:
            return path if path is not None else _HEADERS[Column(section)]
        if role == Qt.ItemDataRole.ToolTipRole:
            if path is not None:
                return f"metadata.{path} (right-click the header to remove the column)"
            return _HEADER_TIPS[Column(section)]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        column = index.column()
        if not 0 <= column < self.columnCount():
            return None
        device = self._rows[index.row()]
        if role == PEER_KEY_ROLE:
            return device.peer_key
        if role == DEVICE_ROLE:
            return device
        path = self.metadata_path(column)
        if path is not None:
            return self._metadata_data(device, path, role)
        return self._fixed_data(device, Column(column), role)

    def _metadata_data(self, device: FleetDevice, path: str, role: int) -> Any:
        if role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return None
        if device.metadata is None and device.metadata_bytes is not None:
            if role == Qt.ItemDataRole.DisplayRole:
                return "(large)"
            return (
                f"The metadata is {format_bytes(device.metadata_bytes)}: too large for the fleet summary. "
                "Select the device to see it in its documents."
            )
        text = format_metadata_value(metadata_value(device, path))
        if role == Qt.ItemDataRole.DisplayRole:
            return text
        return f"metadata.{path} = {text}" if text else None

    def _fixed_data(self, device: FleetDevice, column: Column, role: int) -> Any:
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return _RIGHT if column == Column.DISK else _LEFT
        if role == Qt.ItemDataRole.DecorationRole:
            if column == Column.STATUS:
                online, _ = device_status(device, self._now)
                return self._online_icon if online else self._stale_icon
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(device, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(device, column)
        return None

    def _display(self, device: FleetDevice, column: Column) -> str:
        if column == Column.NAME:
            return device.device_name or f"(no name) {device.peer_key[:14]}…"
        if column == Column.PLATFORM:
            return device.sdk_platform or ""
        if column == Column.SDK:
            return device.sdk_version or ""
        if column == Column.LAST_SEEN:
            if device.received_ms is None:
                return ""
            moment = device.received_ms / 1000
            # The absolute time on this machine's clock, the age on the Big Peer's.
            local = format_local_time(moment - self._client.server_offset)
            if local[:10] == format_local_time(self._clock.time())[:10]:
                local = local[11:]  # today: the time says enough
            return f"{format_relative(moment, self._now)} · {local}"
        if column == Column.STATUS:
            return "online" if device_status(device, self._now)[0] else "stale"
        return format_bytes(device.device_available) if device.device_available is not None else ""

    def _tooltip(self, device: FleetDevice, column: Column) -> str | None:
        if column == Column.NAME:
            count = f"{device.document_count:,} documents at the Big Peer"
            return f"{device.title}\nPeer key: {device.peer_key}\n{count}"
        if column == Column.SDK:
            return " ".join(part for part in (device.sdk_language, device.sdk_version) if part) or None
        if column == Column.LAST_SEEN:
            received = device.fields.get("received_at")
            return (
                f"Received by the Big Peer at {received}\n"
                f"Collected on the device at {device.last_updated_at} (last_updated_at)"
            )
        if column == Column.STATUS:
            return device_status(device, self._now)[1]
        if column == Column.DISK and device.device_available is not None:
            return f"{device.device_available:,.0f} bytes free"
        return None
