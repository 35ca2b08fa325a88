"""Fleet summaries and cursors, without a running service."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector.big_peer.fleet import (
    CursorError,
    FleetKey,
    FleetSort,
    decode_cursor,
    encode_cursor,
    render_summary,
    search_form,
    summarize,
)

_text = st.text(max_size=3000)
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | _text,
    lambda children: (
        st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=40), children, max_size=8)
    ),
    max_leaves=60,
)
_documents = st.fixed_dictionaries(
    {"_id": st.just("pk" + "A" * 43), "last_updated_at": st.just("2026-11-26T05:38:12.345Z")},
    optional={
        name: _json | _text
        for name in (
            "device_name",
            "ditto_sdk_language",
            "ditto_sdk_platform",
            "ditto_sdk_version",
            "device_disk_usage",
            "connections_by_transport",
            "metadata",
        )
    },
)


@given(_documents, st.integers(0, 2**53), st.integers(1, 2**40), st.none() | st.integers(0, 2**45))
def test_any_document_gives_a_summary_of_at_most_4_kib(
    document: dict, received_at_ms: int, count: int, interval_ms: int | None
) -> None:
    summary = summarize(document)

    text = render_summary(
        summary, received_at_ms=received_at_ms, document_count=count, interval_ms=interval_ms
    )

    assert len(text.encode()) <= 4096
    shown = orjson.loads(text)
    assert shown["peer_key"] == document["_id"]
    assert shown["document_count"] == count
    name = document.get("device_name")
    if isinstance(name, str) and len(orjson.dumps(name)) <= 160:
        assert shown["device_name"] == name == summary.device_name
    elif isinstance(name, str):
        assert name.startswith(shown["device_name"][:-1])
    else:
        assert shown["device_name"] is None
        assert summary.device_name == ""


def test_search_form_folds_ascii_letters_only() -> None:
    assert search_form("Köln ÄÖÜ ABC ǅ İ") == "köln ÄÖÜ abc ǅ İ"


@given(st.sampled_from(FleetSort), st.text(), st.text())
def test_a_cursor_gives_back_its_key(sort: FleetSort, value: str, peer_key: str) -> None:
    if sort is FleetSort.LAST_UPDATED_AT:
        value = "2026-11-26T05:38:12.345Z"
    key = FleetKey(sort, value, peer_key)

    cursor = encode_cursor(key)

    assert cursor.isascii()
    assert decode_cursor(cursor, sort) == key


@given(st.text(max_size=300))
def test_any_text_is_a_cursor_or_a_clear_refusal(text: str) -> None:
    try:
        key = decode_cursor(text, FleetSort.DEVICE_NAME)
    except CursorError as exc:
        assert str(exc)
    else:
        assert key.sort is FleetSort.DEVICE_NAME


def test_a_cursor_of_the_other_order_is_refused_by_name() -> None:
    cursor = encode_cursor(FleetKey(FleetSort.DEVICE_NAME, "a", "pk"))

    with pytest.raises(CursorError, match="sort=device_name"):
        decode_cursor(cursor, FleetSort.LAST_UPDATED_AT)
