"""The fleet query: what a device summary holds, how the fleet is ordered, and the cursor of a page.

Nothing here touches a database: every `storage.BigPeerStorage` builds its summaries
with `summarize` when it stores a device's newest document, and answers a
`FleetQuery` in the order and with the keys defined here.

A summary is a JSON object of at most `SUMMARY_MAX_BYTES` bytes. From the newest
document: ``peer_key``, ``device_name``, ``ditto_sdk_language``,
``ditto_sdk_platform``, ``ditto_sdk_version``, ``last_updated_at``,
``device_disk_usage``, ``connections_by_transport``, and ``metadata`` when its
compact JSON has at most `INLINE_METADATA_MAX_BYTES` bytes (otherwise
``metadata_bytes``, its size). From the storage: ``received_at`` (the Big Peer's
clock when it stored that document), ``document_count``, and ``interval_seconds``
(the gap between the ``last_updated_at`` of the device's two newest documents, or
null with one document: what a dashboard needs for an online/stale badge).

Decisions where the contract is silent:

* A field a document lacks is null in its summary. A text field (``device_name``,
  ``ditto_sdk_*``) longer than `TEXT_FIELD_MAX_BYTES` as JSON is cut and ends
  with "…"; an object field larger than `OBJECT_FIELD_MAX_BYTES` is null (the
  document itself keeps everything). That is what keeps a summary within 4 KiB.
* ``sort=device_name`` orders by the summary's device name in code point order
  (PostgreSQL: ``COLLATE "C"``), a device without one first, ties by peer key;
  ``sort=last_updated_at`` newest first, ties by peer key ascending.
* ``q`` matches the whole device name (not the cut one), the peer key and the
  newest document's metadata as compact JSON text (keys included), ASCII
  case-insensitively: only A-Z fold to a-z, like SQLite's ``LIKE``; an empty
  ``q`` matches every device.
"""

from __future__ import annotations

import base64
import binascii
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson

from inspector.big_peer.documents import is_timestamp

__all__ = [
    "DEFAULT_FLEET_LIMIT",
    "INLINE_METADATA_MAX_BYTES",
    "MAX_CURSOR_CHARS",
    "MAX_FLEET_LIMIT",
    "MAX_QUERY_TEXT_CHARS",
    "OBJECT_FIELD_MAX_BYTES",
    "SUMMARY_MAX_BYTES",
    "TEXT_FIELD_MAX_BYTES",
    "CursorError",
    "DeviceSummary",
    "FleetKey",
    "FleetPage",
    "FleetQuery",
    "FleetSort",
    "decode_cursor",
    "encode_cursor",
    "format_timestamp",
    "render_summary",
    "search_form",
    "summarize",
    "timestamp_ms",
]

DEFAULT_FLEET_LIMIT = 100
MAX_FLEET_LIMIT = 1000
MAX_QUERY_TEXT_CHARS = 1000
MAX_CURSOR_CHARS = 2000
SUMMARY_MAX_BYTES = 4096
INLINE_METADATA_MAX_BYTES = 2048
TEXT_FIELD_MAX_BYTES = 160
OBJECT_FIELD_MAX_BYTES = 320

_TEXT_FIELDS = ("device_name", "ditto_sdk_language", "ditto_sdk_platform", "ditto_sdk_version")
_OBJECT_FIELDS = ("device_disk_usage", "connections_by_transport")
_ELLIPSIS = "…"


class FleetSort(str, Enum):
    """The orders of the fleet query (the ``sort`` parameter)."""

    DEVICE_NAME = "device_name"
    LAST_UPDATED_AT = "last_updated_at"


@dataclass(frozen=True, slots=True)
class FleetKey:
    """Where a page ends in its order: the sort field's value there and the peer key."""

    sort: FleetSort
    value: str
    """The summary's device name (``""`` for none), or the ``last_updated_at``."""
    peer_key: str


@dataclass(frozen=True, slots=True)
class FleetQuery:
    """One page of the fleet: ``limit`` summaries in ``sort`` order after ``after``, matching ``text``."""

    limit: int = DEFAULT_FLEET_LIMIT
    sort: FleetSort = FleetSort.DEVICE_NAME
    after: FleetKey | None = None
    text: str = ""
    """Kept devices contain it, ASCII case-insensitively (see `search_form`); empty keeps all."""

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_FLEET_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_FLEET_LIMIT}, not {self.limit}")
        if self.after is not None and self.after.sort is not self.sort:
            raise ValueError(
                f"a key of the {self.after.sort.value} order cannot page the {self.sort.value} order"
            )


@dataclass(frozen=True, slots=True)
class FleetPage:
    """A page of the fleet query."""

    summaries: list[str]
    """Each a summary as compact JSON text."""
    next: FleetKey | None
    """The key to ask for the following page with, or None after the last one."""
    total: int
    """How many devices match the query (all pages together)."""


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """What the fleet shows of a device's newest document, made once when it is stored."""

    peer_key: str
    device_name: str
    """The summary's device name, the ``device_name`` sort key (``""`` when there is none)."""
    last_updated_at: str
    fields: str
    """The summary's fields taken from the document, as a compact JSON object (see `render_summary`)."""
    search_name: str
    search_key: str
    search_metadata: str
    """`search_form` of the whole device name, the peer key and the metadata's compact JSON."""


class CursorError(ValueError):
    """An ``after`` cursor that is not a ``next`` of the fleet query's order."""


def search_form(text: str) -> str:
    """``text`` with ASCII letters lowered and nothing else changed (what ``q`` is matched in)."""
    # bytes.lower() touches only A-Z, and no byte of a multi-byte UTF-8 sequence is ASCII.
    return text.encode("utf-8", "surrogatepass").lower().decode("utf-8", "surrogatepass")


def format_timestamp(ms: int) -> str:
    """Milliseconds since the epoch as ``2026-11-26T05:38:12.345Z``."""
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def timestamp_ms(text: str) -> int:
    """Milliseconds since the epoch of a ``last_updated_at`` (which `documents` checked)."""
    moment = datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 1000 + moment.microsecond // 1000


def summarize(document: Mapping[str, Any]) -> DeviceSummary:
    """The summary of a stored document; never fails, whatever the document holds."""
    peer_key = str(document.get("_id"))
    fields: dict[str, Any] = {"peer_key": peer_key}
    for name in _TEXT_FIELDS:
        fields[name] = _bounded_text(document.get(name))
    fields["last_updated_at"] = str(document.get("last_updated_at"))
    for name in _OBJECT_FIELDS:
        fields[name] = _bounded_object(document.get(name))
    metadata = b"" if "metadata" not in document else _encode(document["metadata"])
    if len(metadata) <= INLINE_METADATA_MAX_BYTES:
        fields["metadata"] = orjson.Fragment(metadata or b"null")
    else:
        fields["metadata_bytes"] = len(metadata)
    device_name = document.get("device_name")
    return DeviceSummary(
        peer_key=peer_key,
        device_name=fields["device_name"] or "",
        last_updated_at=fields["last_updated_at"],
        fields=orjson.dumps(fields).decode(),
        search_name=search_form(device_name) if isinstance(device_name, str) else "",
        search_key=search_form(peer_key),
        search_metadata=search_form(metadata.decode()),
    )


def render_summary(
    summary: DeviceSummary | str, *, received_at_ms: int, document_count: int, interval_ms: int | None
) -> str:
    """The summary's JSON text: the document's fields and what the storage counts."""
    fields = summary.fields if isinstance(summary, DeviceSummary) else summary
    interval = "null" if interval_ms is None else repr(interval_ms / 1000)
    return (
        f'{fields[:-1]},"received_at":"{format_timestamp(received_at_ms)}",'
        f'"document_count":{document_count},"interval_seconds":{interval}}}'
    )


def encode_cursor(key: FleetKey) -> str:
    """The opaque ``next`` text of a key."""
    raw = orjson.dumps([key.sort.value, key.value, key.peer_key])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str, sort: FleetSort) -> FleetKey:
    """The key of a ``next`` text made by `encode_cursor` for the ``sort`` order, or `CursorError`."""
    if len(text) > MAX_CURSOR_CHARS:
        raise CursorError(f"after is {len(text)} characters long; a cursor of this Big Peer never is")
    try:
        raw = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
        decoded = orjson.loads(raw)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise CursorError(
            "after is not a cursor of this Big Peer; pass the next of the previous page"
        ) from None
    if (
        not isinstance(decoded, list)
        or len(decoded) != 3
        or not all(isinstance(part, str) for part in decoded)
        or decoded[0] not in FleetSort._value2member_map_
    ):
        raise CursorError("after is not a cursor of this Big Peer; pass the next of the previous page")
    cursor_sort = FleetSort(decoded[0])
    if cursor_sort is not sort:
        raise CursorError(
            f"after is a cursor of sort={cursor_sort.value}, not of sort={sort.value}; "
            "start again without after when changing the order"
        )
    if sort is FleetSort.LAST_UPDATED_AT and not is_timestamp(decoded[1]):
        raise CursorError("after is not a cursor of this Big Peer; pass the next of the previous page")
    return FleetKey(sort, decoded[1], decoded[2])


def _encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:  # deeper than orjson encodes: never stored, so never summarized
        return b"null"


def _bounded_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    if len(_encode(value)) <= TEXT_FIELD_MAX_BYTES:
        return value
    # The longest prefix that fits with the ellipsis; a character takes 1 to 6 bytes as JSON.
    budget = TEXT_FIELD_MAX_BYTES - len(_ELLIPSIS.encode())
    fits, too_long = 0, min(len(value), budget)
    while fits < too_long:
        middle = (fits + too_long + 1) // 2
        if len(_encode(value[:middle])) <= budget:
            fits = middle
        else:
            too_long = middle - 1
    return value[:fits] + _ELLIPSIS


def _bounded_object(value: Any) -> Any:
    if not isinstance(value, dict):
        return None
    encoded = _encode(value)
    return orjson.Fragment(encoded) if len(encoded) <= OBJECT_FIELD_MAX_BYTES else None
