"""Checks a write to the Big Peer: the body must be ``{"documents": [doc, ...]}`` of small peer info.

Only what the Big Peer relies on is checked: each document is a JSON object with
a string ``_id`` and a ``last_updated_at`` in the fixed-width form
``2026-11-26T05:38:12.345Z`` (the storage orders documents by it as text). Other
fields are stored as sent, so a peer adding real fields never needs a Big Peer
upgrade. The top-level object takes no other key than ``documents``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

__all__ = [
    "BatchTooLargeError",
    "MalformedBatchError",
    "is_timestamp",
    "parse_batch",
]

_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")


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
    return documents
