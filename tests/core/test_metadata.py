"""Every rule of the SPEC's metadata table, through the public validator and both setters."""

import datetime
import decimal
import enum
import math
import time
import uuid

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector import MAX_METADATA_DEPTH, MAX_METADATA_SIZE_BYTES, MetadataValidationError
from inspector import MetadataValidationReason as R
from inspector.core.metadata import validate

# Every test runs with the compiled proof of plain JSON and with its Python fallback.
pytestmark = pytest.mark.usefixtures("plain_proof")


def reason(value):
    with pytest.raises(MetadataValidationError) as info:
        validate(value)
    assert isinstance(info.value, ValueError)
    return info.value


def nested(depth, leaf=None):
    """A dict nested ``depth`` levels deep, built without recursion."""
    value = {} if leaf is None else leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def test_constants_are_the_spec_values():
    assert MAX_METADATA_SIZE_BYTES == 131072
    assert MAX_METADATA_DEPTH == 64


@pytest.mark.parametrize("text", ['{"a":', "{'a': 1}", "{a: 1}", '{"a": 1,}', "", "   ", "{} {}", "NaN"])
def test_text_that_does_not_parse_is_invalid_json(text):
    assert reason(text).reason is R.INVALID_JSON


def test_invalid_json_names_line_and_column():
    error = reason('{\n  "a": 1,\n  "b": tru\n}')
    assert (error.line, error.column) == (3, 8)
    assert "line 3, column 8" in str(error)


@pytest.mark.parametrize("text", ["[]", '"x"', "1", "1.5", "null", "true", "[{}]", '  \n  "object"'])
def test_top_level_non_objects_are_refused_as_text(text):
    assert reason(text).reason is R.NOT_AN_OBJECT


@pytest.mark.parametrize("value", [[], 1, 1.5, None, True, ({},), b"{}"])
def test_top_level_non_objects_are_refused_as_values(value):
    assert reason(value).reason is R.NOT_AN_OBJECT


class Color(enum.Enum):
    RED = "red"


def _cycle():
    value = {"child": []}
    value["child"].append(value)
    return value


@pytest.mark.parametrize(
    "value",
    [
        {1: "non-str key"},
        {None: 1},
        {"a": float("nan")},
        {"a": float("inf")},
        {"a": [float("-inf")]},
        {"a": 2**64},
        {"a": -(2**63) - 1},
        {"a": b"bytes"},
        {"a": {1, 2}},
        {"a": datetime.datetime(2026, 1, 1)},
        {"a": datetime.date(2026, 1, 1)},
        {"a": uuid.UUID(int=5)},
        {"a": decimal.Decimal("1.5")},
        {"a": object()},
        {"a": Color.RED},
        {"a": (1, 2)},
        {"a": "\ud800"},
        {"a": orjson.Fragment(b"[1]")},
        _cycle(),
    ],
    ids=repr,
)
def test_values_json_cannot_represent_exactly_are_refused(value):
    error = reason(value)
    assert error.reason is R.NOT_JSON_COMPATIBLE
    assert error.path and error.path.startswith("$")


def test_incompatible_value_error_names_its_path():
    assert reason({"a": [1, {"b": {2}}]}).path == "$.a[1].b"


@pytest.mark.parametrize("text", ['{"a": 18446744073709551616}', '{"a": [-9223372036854775809]}'])
def test_integer_literals_past_64_bits_are_refused(text):
    error = reason(text)
    assert error.reason is R.NOT_JSON_COMPATIBLE
    assert error.line == 1


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63), 0, -1, 2**63])
def test_64_bit_integers_are_kept_exactly(number):
    assert validate({"n": number}).value == {"n": number}
    assert validate(f'{{"n": {number}}}').value == {"n": number}


def test_long_digit_runs_inside_strings_are_not_integers():
    assert validate('{"phone": "123456789012345678901234"}').value["phone"] == "123456789012345678901234"


def test_depth_counts_objects_and_arrays():
    assert validate("{}").depth == 1
    assert validate('{"a": []}').depth == 2
    assert validate('{"a": "[[[[{{{"}').depth == 1
    assert validate(r'{"a": "\"[", "b": [[]]}').depth == 3


def test_depth_64_is_accepted_and_65_is_refused():
    assert validate(nested(MAX_METADATA_DEPTH)).depth == 64
    error = reason(nested(MAX_METADATA_DEPTH + 1))
    assert error.reason is R.DEPTH_LIMIT_EXCEEDED
    assert error.path == "$" + ".a" * 64
    text = orjson.dumps(nested(MAX_METADATA_DEPTH + 1)).decode()
    assert reason(text).reason is R.DEPTH_LIMIT_EXCEEDED
    assert validate(orjson.dumps(nested(MAX_METADATA_DEPTH)).decode()).depth == 64


def test_arrays_count_towards_depth():
    value = {"a": nested(1, [[[]]])}
    assert validate(value).depth == 4
    deep = {"a": []}
    inner = deep["a"]
    for _ in range(MAX_METADATA_DEPTH - 1):
        inner.append([])
        inner = inner[0]
    assert reason(deep).reason is R.DEPTH_LIMIT_EXCEEDED


def test_text_depth_error_gives_path_and_position():
    error = reason('{"x": 1,\n "deep": ' + "[" * 64 + "]" * 64 + "}")
    assert error.reason is R.DEPTH_LIMIT_EXCEEDED
    assert error.line == 2
    assert error.path == "$.deep" + "[0]" * 63


def test_huge_nesting_is_refused_quickly_without_recursion():
    start = time.perf_counter()
    assert reason("[" * 200_000).reason in (R.DEPTH_LIMIT_EXCEEDED, R.INVALID_JSON)
    assert reason("[" * 200_000 + "]" * 200_000).reason in (R.DEPTH_LIMIT_EXCEEDED, R.NOT_AN_OBJECT)
    assert reason('{"a":' * 100_000 + "1" + "}" * 100_000).reason is R.DEPTH_LIMIT_EXCEEDED
    assert reason(nested(100_000)).reason is R.DEPTH_LIMIT_EXCEEDED
    # Generous: this proves "no hang", not a speed target (those live in tests/benchmarks).
    assert time.perf_counter() - start < 10


def test_size_is_measured_on_the_compact_encoding():
    filler = "x" * (MAX_METADATA_SIZE_BYTES - len('{"f":""}') - 1)
    assert validate({"f": filler}).size == MAX_METADATA_SIZE_BYTES - 1
    error = reason({"f": filler + "x"})
    assert error.reason is R.SIZE_LIMIT_EXCEEDED
    assert error.size == MAX_METADATA_SIZE_BYTES


def test_pretty_printing_never_decides_acceptance():
    filler = "x" * (MAX_METADATA_SIZE_BYTES - len('{"f":""}') - 1)
    pretty = orjson.dumps({"f": filler}, option=orjson.OPT_INDENT_2).decode() + " " * 500_000
    assert validate(pretty).size == MAX_METADATA_SIZE_BYTES - 1


def test_size_counts_utf8_bytes():
    char = "é"  # two bytes in UTF-8
    half = (MAX_METADATA_SIZE_BYTES - len('{"f":""}')) // 2 + 1
    assert reason({"f": char * half}).reason is R.SIZE_LIMIT_EXCEEDED


def test_a_20_mb_string_is_refused_by_size():
    error = reason('{"a": "' + "x" * 20_000_000 + '"}')
    assert error.reason is R.SIZE_LIMIT_EXCEEDED
    assert reason("x" * 20_000_000).reason is R.SIZE_LIMIT_EXCEEDED


def test_accepted_value_reads_back_equal():
    value = {
        "s": "é☃😀",
        "i": -(2**63),
        "u": 2**64 - 1,
        "f": 0.1,
        "neg": -0.0,
        "n": None,
        "b": False,
        "l": [1, [2, {"x": []}]],
        "e": {},
    }
    result = validate(value)
    assert result.value == value
    assert orjson.loads(result.encoded) == value
    assert math.copysign(1, result.value["neg"]) == -1


def test_duplicate_keys_keep_the_last():
    assert validate('{"a": 1, "a": 2}').value == {"a": 2}


# --- properties --------------------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


def _depth(value):
    depth, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            depth = max(depth, level)
            stack.extend((c, level + 1) for c in (node.values() if isinstance(node, dict) else node))
    return depth


@settings(max_examples=300, deadline=None)
@given(json_objects)
def test_every_json_object_within_limits_is_accepted_unchanged(value):
    result = validate(value)
    assert result.value == value
    assert result.depth == _depth(value)
    assert result.size == len(orjson.dumps(value))
    text_result = validate(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())
    assert text_result.value == value
    assert text_result.encoded == result.encoded
    assert text_result.depth == result.depth


@settings(max_examples=200, deadline=None)
@given(json_objects, st.integers(min_value=1, max_value=80))
def test_depth_rule_holds_for_any_object(value, extra):
    deep = nested(extra, value)
    expected = _depth(deep)
    if expected <= MAX_METADATA_DEPTH:
        assert validate(deep).depth == expected
    else:
        assert reason(deep).reason is R.DEPTH_LIMIT_EXCEEDED
        assert reason(orjson.dumps(deep).decode()).reason is R.DEPTH_LIMIT_EXCEEDED


bad_leaves = st.sampled_from(
    [float("nan"), float("inf"), 2**64, -(2**63) - 1, b"x", (1,), {1}, uuid.UUID(int=1), Color.RED]
)


@settings(max_examples=200, deadline=None)
@given(json_objects, bad_leaves, st.text(max_size=5))
def test_any_non_json_leaf_is_refused(value, leaf, key):
    value = dict(value)
    value[key] = [leaf]
    assert reason(value).reason is R.NOT_JSON_COMPATIBLE


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_is_accepted_or_refused_with_a_reason(text):
    try:
        result = validate(text)
    except MetadataValidationError as error:
        assert isinstance(error.reason, R)
    else:
        assert isinstance(result.value, dict)
        assert orjson.loads(text) == result.value


@pytest.mark.parametrize(
    ("text", "path"),
    [('{"a": 1e400}', "$.a"), ('{"b":\n {"a": "\\ud800"}}', "$.b.a"), ('{"a": "\ud800"}', "$.a")],
)
def test_json_text_whose_value_cannot_be_carried_is_not_json_compatible(text, path):
    error = reason(text)
    assert error.reason is R.NOT_JSON_COMPATIBLE
    assert error.path == path


def _shared_bomb(levels):
    value = []
    for _ in range(levels):
        value = [value, value]
    return value


@pytest.mark.parametrize(
    "value",
    [{"a": _shared_bomb(40)}, {"a": ["x" * 1_000_000] * 20_000}, {"a": [{"k" * 100_000: 1}] * 50_000}],
    ids=["exponential", "one-big-string-many-times", "one-big-key-many-times"],
)
def test_shared_references_are_measured_expanded_without_encoding_them(value):
    error = reason(value)
    assert error.reason is R.SIZE_LIMIT_EXCEEDED


class LyingDict(dict):
    def __eq__(self, other):
        return True

    __hash__ = None


class LyingEnum(enum.Enum):
    A = 1

    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


@pytest.mark.parametrize(
    "value",
    [
        LyingDict(a=float("nan")),
        {"a": LyingDict(b=(1,))},
        {"a": LyingEnum.A},
        {"a": orjson.Fragment(b'{"x":')},
    ],
    ids=["nan-in-lying-dict", "tuple-in-lying-dict", "lying-enum", "broken-fragment"],
)
def test_no_custom_equality_can_smuggle_in_a_changed_value(value):
    assert reason(value).reason is R.NOT_JSON_COMPATIBLE


def test_subclasses_of_json_types_are_accepted_as_their_plain_values():
    import collections

    class Text(str):
        pass

    class Ratio(float):
        pass

    class Level(enum.IntEnum):
        HIGH = 3

    value = collections.OrderedDict(
        a=collections.defaultdict(list, b=[Text("x")]), r=Ratio(0.5), l=Level.HIGH
    )
    result = validate(value)
    assert result.value == {"a": {"b": ["x"]}, "r": 0.5, "l": 3}
    assert type(result.value["a"]["b"][0]) is str
    assert validate(Text('{"a": 1}')).value == {"a": 1}
