"""Checks a write to the Big Peer: the body must be ``{"documents": [doc, ...]}`` of small peer info.

The Big Peer stores what it was sent, exactly, and only what a peer could have sent.
So a batch is refused as a whole when any document

* is not a JSON object with a string ``_id`` and a ``last_updated_at`` in the
  fixed-width form ``2026-11-26T05:38:12.345Z`` (the storage orders by it as text);
* nests deeper than `MAX_DOCUMENT_DEPTH` levels anywhere (the document itself is
  level 1, as for metadata);
* holds an integer outside 64 bits (``-2**63 <= n < 2**64``, the metadata rule):
  orjson would read it as a float and the stored document would differ from the
  one sent;
* has ``metadata`` that breaks a rule of small peer info metadata (checked by the
  peer's own `inspector.core.metadata.validate`);
* has a field the fleet summary shows with a type no peer sends:
  ``device_name`` and the ``ditto_sdk_*`` fields are strings, ``device_disk_usage``
  and ``connections_by_transport`` objects (each may be absent).

Other fields are stored as sent, so a peer adding real fields never needs a Big
Peer upgrade. The top-level object takes no other key than ``documents``.
"""

from __future__ import annotations

import gc
import re
from datetime import datetime
from itertools import compress
from typing import Any

import orjson

from inspector.core.errors import MetadataValidationError
from inspector.core.metadata import validate

__all__ = [
    "MAX_DOCUMENT_DEPTH",
    "BatchTooLargeError",
    "MalformedBatchError",
    "is_timestamp",
    "parse_batch",
]

MAX_DOCUMENT_DEPTH = 128
"""Deepest nesting a document may have: ``{}`` is depth 1, ``{"a": []}`` depth 2."""

_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_INT_MAX_DIGITS = len(str(_INT_MAX))

# The raw body is searched for integer literals that orjson would have turned into floats.
# A JSON string literal, unrolled so the engine never backtracks per character:
_STRING_LITERAL = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
# 19 digits or more, not part of a fraction or an exponent (in valid JSON, outside strings):
_LONG_INTEGER = re.compile(rb"(?<![\d.eE+\-])-?\d{19,}(?![\d.eE])")
_DIGIT_MASK = bytes.maketrans(bytes(range(256)), bytes(48 if 48 <= i <= 57 else 32 for i in range(256)))
_NINETEEN_DIGITS = b"0" * 19

_TEXT_FIELDS = ("device_name", "ditto_sdk_language", "ditto_sdk_platform", "ditto_sdk_version")
_OBJECT_FIELDS = ("device_disk_usage", "connections_by_transport")
_is_container = frozenset({dict, list}).__contains__


class MalformedBatchError(ValueError):
    """The body is not a batch of small peer info documents; ``code`` names what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BatchTooLargeError(ValueError):
    """The batch holds more documents than one request may carry."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the batch holds {count} documents; at most {limit} are accepted per request")
        self.count = count
        self.limit = limit


def is_timestamp(value: object) -> bool:
    """Whether ``value`` is a real UTC instant written as ``YYYY-MM-DDTHH:MM:SS.mmmZ``."""
    if not isinstance(value, str) or _TIMESTAMP.fullmatch(value) is None:
        return False
    try:
        datetime.fromisoformat(value[:-1])
    except ValueError:
        return False
    return True


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_batch(body: bytes, max_documents: int) -> list[dict[str, Any]]:
    """The documents of a write body, or `MalformedBatchError` / `BatchTooLargeError`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "depth limit" in str(exc):  # orjson stops parsing at 1024 levels
            raise _too_deep(None) from None
        raise MalformedBatchError("invalid_json", f"the body is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MalformedBatchError(
            "invalid_batch",
            f'the body must be an object {{"documents": [...]}}, not {type(payload).__name__}',
        )
    if set(payload) != {"documents"}:
        extra = sorted(set(payload) - {"documents"})
        what = f"unexpected keys {extra}" if extra else 'no "documents" key'
        raise MalformedBatchError(
            "invalid_batch", f'the body must be an object {{"documents": [...]}}: {what}'
        )
    documents = payload["documents"]
    if not isinstance(documents, list):
        raise MalformedBatchError(
            "invalid_batch", f'"documents" must be a list, not {type(documents).__name__}'
        )
    if not documents:
        raise MalformedBatchError("invalid_batch", '"documents" is empty; send at least one document')
    if len(documents) > max_documents:
        raise BatchTooLargeError(len(documents), max_documents)
    for index, document in enumerate(documents):
        _check_shape(index, document)
    if _deeper_than(documents, MAX_DOCUMENT_DEPTH):
        deep = next(i for i, document in enumerate(documents) if _deeper_than([document], MAX_DOCUMENT_DEPTH))
        raise _too_deep(deep)
    if _NINETEEN_DIGITS in body.translate(_DIGIT_MASK):
        _check_integer_literals(body)
    _check_metadata(documents)
    return documents


def _check_shape(index: int, document: object) -> None:
    if not isinstance(document, dict):
        raise MalformedBatchError(
            "invalid_document", f"documents[{index}] must be an object, not {type(document).__name__}"
        )
    peer_key = document.get("_id")
    if not isinstance(peer_key, str):
        raise MalformedBatchError(
            "invalid_document", f'documents[{index}] needs a string "_id", not {_shorten(peer_key)}'
        )
    if not is_timestamp(document.get("last_updated_at")):
        raise MalformedBatchError(
            "invalid_document",
            f'documents[{index}] needs "last_updated_at" like "2026-11-26T05:38:12.345Z", '
            f"not {_shorten(document.get('last_updated_at'))}",
        )
    for fields, kind, name in ((_TEXT_FIELDS, str, "a string"), (_OBJECT_FIELDS, dict, "an object")):
        for field in fields:
            value = document.get(field)
            if value is not None and not isinstance(value, kind):
                raise MalformedBatchError(
                    "invalid_document",
                    f"documents[{index}].{field} must be {name} (as every peer sends it), "
                    f"not {_shorten(value)}",
                )


def _deeper_than(documents: list[Any], limit: int) -> bool:
    """Whether any of ``documents`` nests deeper than ``limit``: one pass per level at C speed."""
    level, depth = documents, 1
    while level:
        if depth > limit:
            return True
        children = gc.get_referents(*level)  # a dict's values (and keys), a list's items
        level = list(compress(children, map(_is_container, map(type, children))))
        depth += 1
    return False


def _too_deep(index: int | None) -> MalformedBatchError:
    which = f"documents[{index}]" if index is not None else "a document"
    return MalformedBatchError(
        "nesting_too_deep",
        f"{which} nests deeper than {MAX_DOCUMENT_DEPTH} levels; no peer sends such a document",
    )


def _check_integer_literals(body: bytes) -> None:
    # Only reached for valid JSON (it parsed), where the string pattern is exact: blank the
    # strings out, then every long digit run left is a number.
    for match in _LONG_INTEGER.finditer(_STRING_LITERAL.sub(b'""', body)):
        literal = match.group()
        if len(literal.lstrip(b"-")) <= _INT_MAX_DIGITS and _INT_MIN <= int(literal) <= _INT_MAX:
            continue
        shown = literal[:24].decode() + ("…" if len(literal) > 24 else "")
        raise MalformedBatchError(
            "integer_out_of_range",
            f"the integer {shown} does not fit in 64 bits; the Big Peer stores documents exactly as "
            "sent and could not store this one unchanged (send the number as a string)",
        )


def _check_metadata(documents: list[dict[str, Any]]) -> None:
    # Documents of one batch mostly repeat their metadata: each distinct encoding is validated
    # once (two parsed values with the same encoding are the same JSON value).
    validated: set[bytes] = set()
    for index, document in enumerate(documents):
        if "metadata" not in document:
            continue
        metadata = document["metadata"]
        encoded = orjson.dumps(metadata) if isinstance(metadata, dict) else None
        if encoded is not None and encoded in validated:
            continue
        try:
            validate(metadata)
        except MetadataValidationError as exc:
            raise MalformedBatchError(
                "invalid_metadata",
                f"documents[{index}].metadata breaks a rule of small peer info metadata "
                f"({exc.reason.value}): {exc.message}",
            ) from None
        if encoded is not None:
            validated.add(encoded)
