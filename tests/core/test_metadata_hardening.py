"""Regressions for hostile metadata: surrogates in keys, sharing bombs, huge values and huge text.

Nothing here measures wall-clock time (those budgets live in tests/benchmarks/bench_metadata.py):
bounds are asserted on memory peaks (tracemalloc) and on how many functions the validator
calls (a Python loop per line, token or node shows up as thousands of calls).
"""

import collections
import sys
import tracemalloc

import orjson
import pytest

from inspector import MAX_METADATA_SIZE_BYTES, MetadataValidationError
from inspector import MetadataValidationReason as R
from inspector.core.metadata import validate

# Every test runs with the compiled proof of plain JSON and with its Python fallback.
pytestmark = pytest.mark.usefixtures("plain_proof")

MB = 1_000_000


def refusal(value):
    with pytest.raises(MetadataValidationError) as info:
        validate(value)
    return info.value


def peak_memory(action):
    """(what ``action`` returned, the most memory it held at once, in bytes)."""
    tracemalloc.start()
    try:
        result = action()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def calls_during(action):
    """(what ``action`` returned, how many Python and C functions were called meanwhile)."""
    calls = 0

    def count(frame, event, arg):
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    sys.setprofile(count)
    try:
        result = action()
    finally:
        sys.setprofile(None)
    return result, calls


# --- lone surrogates in keys ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ({"\ud800": 1}, '$["\\ud800"]'),
        ({"a": [{"ok": 1, "x\udfffy": 2}]}, '$.a[0]["x\\udfffy"]'),
        (collections.OrderedDict({"\udc00": 1}), '$["\\udc00"]'),
    ],
)
def test_a_lone_surrogate_in_a_dict_key_is_not_json_compatible(value, path):
    error = refusal(value)
    assert error.reason is R.NOT_JSON_COMPATIBLE
    assert error.path == path


@pytest.mark.parametrize(
    ("text", "path", "position"),
    [
        ('{"\\ud800": 1}', '$["\\ud800"]', (1, 3)),
        ('{"a": {\n  "ok": 1, "x\\udc00y": [2]}}', '$.a["x\\udc00y"]', (2, 14)),
        ('{"a": [1, {"\ud800": 1}]}', '$.a[1]["\\ud800"]', (1, 13)),
        ('{"a": [1, {"b": "\\ud800"}]}', "$.a[1].b", (1, 18)),
    ],
    ids=["escaped", "escaped-nested", "raw-character", "escaped-in-a-value"],
)
def test_a_lone_surrogate_in_json_text_is_named_by_path_and_position(text, path, position):
    error = refusal(text)
    assert error.reason is R.NOT_JSON_COMPATIBLE
    assert error.path == path
    assert (error.line, error.column) == position


async def test_the_setters_refuse_a_surrogate_key_with_the_metadata_error(ditto):
    info = ditto.small_peer_info
    for setter, value in (("metadata", {"\ud800": 1}), ("metadata_json_string", '{"\\ud800": 1}')):
        with pytest.raises(MetadataValidationError) as raised:
            setattr(info, setter, value)
        assert raised.value.reason is R.NOT_JSON_COMPATIBLE
    assert info.metadata == {}


# --- values that expand when shared references are counted -------------------------------------

_LONG_KEY = "k" * 100_000


def _key_chain(levels, width):
    """Nested dicts, one per level, each with the same long key object (and ``width`` others)."""
    value = {}
    inner = value
    for _ in range(levels):
        inner.update((f"k{i}", i) for i in range(width))
        inner[_LONG_KEY] = inner = {}
    return value


@pytest.mark.parametrize(
    "build",
    [
        lambda: {"a": [{"k" * 100_000: 1}] * 50_000},
        lambda: {"a": [{"k" * 100_000: 1}] * 1_000},
        lambda: {"a": [{_LONG_KEY: i} for i in range(1_000)]},
        lambda: {"a": ["x" * 1_000_000] * 20_000},
        lambda: {"a": [[list(range(1_000))] * 1_000] * 1_000},
        lambda: collections.OrderedDict(a=[{"k" * 100_000: 1}] * 1_000),
        lambda: _key_chain(60, 0),
        lambda: _key_chain(60, 100),
    ],
    ids=[
        "one-dict-many-times",
        "fewer-times",
        "one-key-many-dicts",
        "one-string",
        "lists",
        "subclass",
        "one-key-down-a-chain",
        "one-key-down-a-chain-of-large-dicts",
    ],
)
def test_a_value_that_expands_is_refused_before_it_is_encoded(build):
    value = build()
    error, peak = peak_memory(lambda: refusal(value))
    assert error.reason is R.SIZE_LIMIT_EXCEEDED
    assert error.size_is_lower_bound
    assert error.size >= MAX_METADATA_SIZE_BYTES
    assert peak < 10 * MB


@pytest.mark.parametrize(
    "build",
    [
        lambda: {f"k{i}": i for i in range(1_000_000)},
        lambda: {"a": list(range(3_000_000))},
        lambda: {"a": {"b": ["x"] * 3_000_000}},
        lambda: collections.OrderedDict((f"k{i}", i) for i in range(1_000_000)),
    ],
    ids=["1M-keys", "3M-items", "3M-items-deeper", "1M-keys-subclass"],
)
def test_a_huge_value_is_refused_without_being_walked(build):
    value = build()
    error, peak = peak_memory(lambda: refusal(value))
    assert error.reason is R.SIZE_LIMIT_EXCEEDED
    assert peak < MB  # no list of its children or items was made


# --- the size a refusal reports ------------------------------------------------------------------


def test_a_size_error_on_json_text_reports_the_exact_compact_size():
    text = '{"readings": [' + ", ".join(["123456.75"] * 400_000) + "]}"  # 4.4 MB on one line
    error = refusal(text)
    assert error.reason is R.SIZE_LIMIT_EXCEEDED
    assert not error.size_is_lower_bound
    assert error.size == len(orjson.dumps(orjson.loads(text)))
    assert f"{error.size:,} bytes" in error.message


def test_a_size_bound_says_at_least():
    error = refusal({"a": ["x" * 1_000] * 1_000})
    assert error.size_is_lower_bound
    assert f"at least {error.size:,} bytes" in error.message


def test_text_too_large_to_parse_claims_no_size():
    text = '{"a": [' + ",".join(["[]"] * 600_000) + "]}"
    error = refusal(text)
    assert error.reason is R.SIZE_LIMIT_EXCEEDED
    assert error.size is None
    assert "without being parsed" in error.message


def test_blanks_never_make_text_too_large():
    padded = '{"a":' + " " * 10_000_000 + '"b"}' + "\n" * 10_000_000
    assert validate(padded).value == {"a": "b"}


def test_duplicate_keys_shrink_the_value_whatever_the_text_size():
    text = '{"a": [' + ",".join(["1.5"] * 200_000) + '], "a": 1}'
    assert validate(text).value == {"a": 1}


# --- huge text costs no Python loop per line, token or node --------------------------------------

_CONTENT = '{"readings": [' + ",".join(['{"t":1700000000,"v":0.125}'] * 80_000)  # 2 MB, no closing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_CONTENT + "]" + " " * 18_000_000 + "}", R.SIZE_LIMIT_EXCEEDED),
        (_CONTENT + "]" + "\n" * 18_000_000 + "}", R.SIZE_LIMIT_EXCEEDED),
        (_CONTENT + "]" + " " * 18_000_000 + ', "bad": "\\ud800"}', R.NOT_JSON_COMPATIBLE),
        (_CONTENT + "]" + "\n" * 18_000_000 + ', "bad": 1e400}', R.NOT_JSON_COMPATIBLE),
        (_CONTENT + "]" + " " * 18_000_000 + ', "bad": [1, 2,, 3]}', R.INVALID_JSON),
        (_CONTENT + ', "deep": ' + "[" * 100 + "]" * 100 + "]}", R.DEPTH_LIMIT_EXCEEDED),
    ],
    ids=["spaces", "newlines", "surrogate-at-the-end", "1e400-after-newlines", "invalid-at-the-end", "deep"],
)
def test_a_20_mb_text_is_judged_with_a_bounded_number_of_calls(text, expected):
    error, calls = calls_during(lambda: refusal(text))
    assert error.reason is expected
    assert calls < 2_000
    if expected is R.NOT_JSON_COMPATIBLE:
        assert error.path == "$.bad"
        assert error.line == text.count("\n", 0, text.index('"bad"')) + 1


def test_19_digit_ids_in_strings_cost_no_search_for_long_integers():
    ids = [str(10**18 + 7 * i) for i in range(1_500)]
    text = orjson.dumps({"ids": ids, "pairs": [{"id": i, "parent": i} for i in ids]}).decode()
    _, calls = calls_during(lambda: validate(text[:-1] + ', "n": 1}'))
    assert calls < 200
    error = refusal(text[:-1] + ',\n "n": 123456789012345678901}')
    assert error.reason is R.NOT_JSON_COMPATIBLE
    assert (error.path, error.line, error.column) == ("$.n", 2, 7)


def test_validating_a_large_dict_calls_a_few_functions_per_level_not_per_node():
    record = {"id": "1234567890123456789", "v": 1 / 7, "ok": True, "tags": ["a", "b"]}
    value = {"records": [dict(record, seq=i) for i in range(1_300)]}
    result, calls = calls_during(lambda: validate(value))
    assert result.depth == 4
    assert calls < 300
