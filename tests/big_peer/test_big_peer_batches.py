"""Checking write bodies, without a running service."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from inspector.big_peer.documents import BatchTooLargeError, MalformedBatchError, is_timestamp, parse_batch

VALID = {"_id": "pk" + "A" * 43, "last_updated_at": "2026-11-26T05:38:12.345Z"}


def test_valid_batch_is_returned_as_parsed() -> None:
    documents = [VALID, {**VALID, "last_updated_at": "2026-11-26T05:38:13.000Z", "extra": [1, {"a": None}]}]

    assert parse_batch(orjson.dumps({"documents": documents}), 10) == documents


def test_count_limit_is_checked_before_the_documents() -> None:
    body = orjson.dumps({"documents": ["not a document"] * 11})

    with pytest.raises(BatchTooLargeError) as caught:
        parse_batch(body, 10)

    assert (caught.value.count, caught.value.limit) == (11, 10)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T05:38:12.345Z",
        "2024-02-29T23:59:59.999Z",
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
    ],
)
def test_fixed_width_utc_timestamps_are_accepted(text: str) -> None:
    assert is_timestamp(text)


@pytest.mark.parametrize(
    "value",
    [
        "2025-02-29T00:00:00.000Z",
        "2026-11-26T24:00:00.000Z",
        "2026-11-26T05:60:00.000Z",
        "2026-11-26 05:38:12.345Z",
        "2026-11-26T05:38:12.345z",
        "2026-11-26T05:38:12,345Z",
        " 2026-11-26T05:38:12.345Z",
        "",
        None,
        1764135492345,
    ],
)
def test_other_timestamps_are_refused(value: object) -> None:
    assert not is_timestamp(value)


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(
    st.binary(max_size=200) | _json.map(orjson.dumps) | _json.map(lambda v: orjson.dumps({"documents": v}))
)
def test_any_body_is_either_a_batch_or_a_clear_refusal(body: bytes) -> None:
    try:
        documents = parse_batch(body, 3)
    except (MalformedBatchError, BatchTooLargeError) as exc:
        assert str(exc)
    else:
        assert 1 <= len(documents) <= 3
        assert all(isinstance(d["_id"], str) and is_timestamp(d["last_updated_at"]) for d in documents)


_digit_text = st.text(alphabet='0123456789"\\ -.eE', min_size=0, max_size=40)
_in_range = st.integers(-(2**63), 2**64 - 1)


@given(st.lists(st.one_of(_in_range, _digit_text, st.floats(allow_nan=False, allow_infinity=False))))
def test_numbers_in_range_and_digits_in_strings_are_accepted_unchanged(values: list[object]) -> None:
    document = {**VALID, "values": values, "keyed": {text: 1 for text in values if isinstance(text, str)}}

    assert parse_batch(orjson.dumps({"documents": [document]}), 1) == [document]


@given(_digit_text, st.integers(2**64, 10**40) | st.integers(-(10**40), -(2**63) - 1), _digit_text)
def test_an_integer_outside_64_bits_is_refused_wherever_it_stands(
    before: str, number: int, after: str
) -> None:
    body = orjson.dumps({"documents": [{**VALID, "x": [before, "NUMBER", after]}]})
    body = body.replace(b'"NUMBER"', str(number).encode())

    with pytest.raises(MalformedBatchError) as caught:
        parse_batch(body, 1)

    assert caught.value.code == "integer_out_of_range"


def test_deeply_nested_body_is_refused_not_crashing() -> None:
    body = b'{"documents": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"

    with pytest.raises(MalformedBatchError):
        parse_batch(body, 10)
