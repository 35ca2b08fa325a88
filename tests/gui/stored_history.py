"""Filling a peer's history directly in its store: many documents, fast, without collecting them."""

import time

import orjson

from inspector.core.events import MetadataValue
from inspector.core.store import CollectedDocument, numeric_leaves
from inspector.core.timestamps import format_timestamp


def document_body(ditto, ts_ms, *, available=50 * 2**30, ditto_total=2**20):
    """A stored document without its metadata (the store keeps metadata apart)."""
    return orjson.dumps(
        {
            "_id": ditto.peer_key,
            "device_name": ditto.device_name,
            "ditto_sdk_language": "Python",
            "ditto_sdk_platform": "Linux",
            "ditto_sdk_version": "0.1.0",
            "last_updated_at": format_timestamp(ts_ms),
            "connections_by_transport": {},
            "big_peer_connection_history": [],
            "device_disk_usage": {
                "device_total": 100 * 2**30,
                "device_available": available,
                "ditto_total": ditto_total,
                "ditto_store": ditto_total,
            },
        }
    )


def collected(ditto, ts_ms, body, metadata=b"{}"):
    """A document as the collector hands it to the store."""
    return CollectedDocument(
        ditto.peer_key, ts_ms, body, MetadataValue(metadata), numeric_leaves(orjson.loads(body)), queue=False
    )


def store_documents(ditto, run, count, *, metadata=b"{}", step_ms=1000):
    """Store ``count`` documents, one ``step_ms`` apart and ending now; returns their seqs."""
    first = int(time.time() * 1000) - count * step_ms
    documents = [
        collected(ditto, ts, document_body(ditto, ts), metadata)
        for ts in range(first, first + count * step_ms, step_ms)
    ]
    return run(ditto.store.import_documents(documents), timeout=60_000)
