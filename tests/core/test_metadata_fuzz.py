"""Fuzzing the validator against oracles written from the SPEC's metadata table.

`judge` decides a Python value the slow, obvious way (one node at a time, keeping a plain
copy); `judge_text` parses with the standard library, which keeps what orjson refuses
(lone surrogates, 1e400, integers past 64 bits) so the value rules can judge it. For
every input the validator must agree: accept exactly what the oracle accepts, with the
same value, encoding, size and depth, or refuse it naming one of the rules it breaks.
Nothing else may come out (no TypeError, no RecursionError, no hang).
"""

import collections
import datetime
import decimal
import enum
import json
import math
import re
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector import MAX_METADATA_DEPTH, MAX_METADATA_SIZE_BYTES, MetadataValidationError
from inspector import MetadataValidationReason as R
from inspector.core.metadata import validate

# Tests of Python values run with the compiled proof of plain JSON and with its Python
# fallback; JSON text never reaches either.
with_both_proofs = pytest.mark.usefixtures("plain_proof")

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _lone_surrogate(text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def judge(value):
    """(rules broken, plain copy, depth): the plain copy and depth only matter when none is broken."""
    broken = set()
    if not isinstance(value, dict):
        broken.add(R.NOT_AN_OBJECT)
    root = [None]
    depth = 0
    todo = [(value, root, 0, 0, frozenset())]  # node, where its copy goes, level of its parent
    while todo:
        node, parent, slot, level, above = todo.pop()
        if isinstance(node, dict | list):
            if id(node) in above:
                broken.add(R.NOT_JSON_COMPATIBLE)
                continue
            depth = max(depth, level + 1)
            if level + 1 > MAX_METADATA_DEPTH:
                broken.add(R.DEPTH_LIMIT_EXCEEDED)
                continue
            if isinstance(node, dict):
                copy = {}
                for key, child in dict.items(node):
                    if not isinstance(key, str) or _lone_surrogate(key) or str(key) in copy:
                        broken.add(R.NOT_JSON_COMPATIBLE)
                        continue
                    copy[str.__str__(key)] = None
                    todo.append((child, copy, str.__str__(key), level + 1, above | {id(node)}))
            else:
                copy = [None] * len(node)
                todo.extend((child, copy, i, level + 1, above | {id(node)}) for i, child in enumerate(node))
        elif node is None or type(node) is bool:
            copy = node
        elif isinstance(node, enum.Enum) and not isinstance(node, int | str):
            broken.add(R.NOT_JSON_COMPATIBLE)
            continue
        elif isinstance(node, int):
            copy = int.__int__(node)
            if not -(2**63) <= copy < 2**64:
                broken.add(R.NOT_JSON_COMPATIBLE)
        elif isinstance(node, float):
            copy = float.__float__(node)
            if not math.isfinite(copy):
                broken.add(R.NOT_JSON_COMPATIBLE)
        elif isinstance(node, str):
            copy = str.__str__(node)
            if _lone_surrogate(copy):
                broken.add(R.NOT_JSON_COMPATIBLE)
        else:
            broken.add(R.NOT_JSON_COMPATIBLE)
            continue
        parent[slot] = copy
    if not broken and len(orjson.dumps(root[0])) >= MAX_METADATA_SIZE_BYTES:
        broken.add(R.SIZE_LIMIT_EXCEEDED)
    return broken, root[0], depth


def _no_constants(name):
    raise ValueError(name)


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def _uncarriable(text):
    """Whether ``text`` holds a token no JSON value in UTF-8 carries: a lone surrogate, 1e400."""
    if _lone_surrogate(text) or _ESCAPED_SURROGATE.search(text):
        return True
    return any(math.isinf(float(number)) for number in _NUMBER.findall(text))


def judge_text(text):
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        return {R.DEPTH_LIMIT_EXCEEDED}, None, None
    except ValueError:
        # Read in order, such a token may come before what breaks the syntax; text that does
        # not parse may still nest too deep: any of those is named.
        broken = {R.INVALID_JSON}
        if _uncarriable(text):
            broken.add(R.NOT_JSON_COMPATIBLE)
        if _nesting(text) > MAX_METADATA_DEPTH:
            broken.add(R.DEPTH_LIMIT_EXCEEDED)
        return broken, None, None
    return judge(value)


def _nesting(text):
    """The deepest bracket nesting outside double-quoted strings, one character at a time."""
    deepest = depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def agrees(given, broken, plain, depth):
    try:
        result = validate(given)
    except MetadataValidationError as error:
        assert broken, f"refused what the rules accept: {error.message}"
        assert error.reason in broken, (error.reason, broken, error.message)
        assert error.path is None or error.path.startswith("$")
        assert (error.line is None) == (error.column is None)
        if error.line is not None:
            assert isinstance(given, str)
            assert 1 <= error.line <= given.count("\n") + 1
            assert error.column >= 1
        if error.reason is R.SIZE_LIMIT_EXCEEDED and error.size is not None:
            assert error.size >= MAX_METADATA_SIZE_BYTES
        return
    assert not broken, f"accepted what breaks {broken}"
    assert result.value == plain
    assert result.encoded == orjson.dumps(plain)
    assert result.size == len(result.encoded)
    assert result.depth == depth


# --- Python values ---------------------------------------------------------------------------------


class Text(str):
    pass


class Ratio(float):
    pass


class Count(int):
    pass


class Level(enum.IntEnum):
    HIGH = 3


class Word(str, enum.Enum):
    A = "a"


class Color(enum.Enum):
    RED = "red"


class Lying(dict):
    def __eq__(self, other):
        return True

    __hash__ = None


plain_leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
odd_leaves = st.sampled_from(
    [
        math.nan,
        math.inf,
        -math.inf,
        2**64,
        -(2**63) - 1,
        2**200,
        b"x",
        (1, "a"),
        (),
        {1},
        frozenset(),
        uuid.UUID(int=7),
        Color.RED,
        Level.HIGH,
        Word.A,
        datetime.date(2026, 1, 1),
        decimal.Decimal("1.5"),
        orjson.Fragment(b"[1]"),
        "\ud800",
        "ok\udfffok",
        complex(1, 2),
        object(),
        Text("t"),
        Ratio(0.5),
        Count(4),
    ]
)
keys = st.text(max_size=6) | st.sampled_from(["\ud800", "k\udc00", 1, None, 2.5, (1,), Text("t"), "t"])


def containers(children):
    return (
        st.lists(children, max_size=5)
        | st.dictionaries(keys, children, max_size=5)
        | st.dictionaries(st.text(max_size=4), children, max_size=3).map(collections.OrderedDict)
        | st.dictionaries(st.text(max_size=4), children, max_size=3).map(Lying)
        | children.map(lambda child: [child, child, {"same": child}])  # one object reachable twice
        | st.tuples(children)
    )


values = st.recursive(plain_leaves | odd_leaves, containers, max_leaves=25)
objects = st.dictionaries(keys, values, max_size=6) | values


def nest(levels, leaf, kind):
    """``leaf`` under ``levels`` containers, built without recursion."""
    for _ in range(levels):
        leaf = {"d": leaf} if kind == "dict" else [leaf]
    return leaf


@with_both_proofs
@FUZZ
@given(objects)
def test_any_value_is_judged_like_the_rules_say(value):
    agrees(value, *(judge_text(value) if isinstance(value, str) else judge(value)))  # a str is JSON text


@with_both_proofs
@FUZZ
@given(
    st.integers(min_value=0, max_value=3 * MAX_METADATA_DEPTH),
    st.sampled_from(["dict", "list"]),
    plain_leaves | st.just({}) | st.just([]),
)
def test_any_depth_is_judged_like_the_rules_say(levels, kind, leaf):
    value = {"top": nest(levels, leaf, kind)}
    agrees(value, *judge(value))
    text = orjson.dumps(value).decode()
    agrees(text, *judge_text(text))


@with_both_proofs
def test_a_cycle_at_any_depth_is_refused():
    for levels in (0, 1, 10, MAX_METADATA_DEPTH - 2, MAX_METADATA_DEPTH + 10):
        inner = []
        value = {"a": nest(levels, inner, "list")}
        inner.append(value)
        agrees(value, *judge(value))


# --- JSON text -------------------------------------------------------------------------------------

fragments = st.sampled_from(
    [
        "{", "}", "[", "]", ":", ",", " ", "\n", "\t", '"', '"a"', '"b"', '"k"', "\\", '\\"', "\\\\",
        "0", "1", "-", ".", "5", "e", "E", "+", "1e400", "-1e400", "1e-400", "9223372036854775808",
        "18446744073709551616", "-9223372036854775809", "12345678901234567890", "true", "false", "null",
        "NaN", "Infinity", '"\\ud800"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"', "\ud800", "é", "😀",
        '"x y"', '{"a":1}', "[1,2]", '"[{,:}]"',
    ]
)  # fmt: skip


@FUZZ
@given(st.lists(fragments, max_size=40).map("".join))
def test_any_text_is_judged_like_the_rules_say(text):
    agrees(text, *judge_text(text))


@st.composite
def damaged_json(draw):
    """Valid metadata as compact or indented text, with a fragment cut out or put in somewhere."""
    value = draw(st.dictionaries(st.text(max_size=6), st.recursive(plain_leaves, containers, max_leaves=12)))
    try:
        text = orjson.dumps(value, option=draw(st.sampled_from([0, orjson.OPT_INDENT_2]))).decode()
    except orjson.JSONEncodeError:  # an odd leaf came through the containers: fine, as text
        text = repr(value)
    at = draw(st.integers(min_value=0, max_value=len(text)))
    if draw(st.booleans()):
        return text[:at] + draw(fragments) + text[at:]
    return text[:at] + text[at + draw(st.integers(min_value=0, max_value=3)) :]


@FUZZ
@given(damaged_json())
def test_damaged_text_is_judged_like_the_rules_say(text):
    agrees(text, *judge_text(text))


json_values = st.recursive(plain_leaves, containers, max_leaves=20)
json_objects = st.dictionaries(st.text(max_size=8), json_values, max_size=6)


@with_both_proofs
@FUZZ
@given(json_objects)
def test_text_and_value_agree(value):
    broken, plain, depth = judge(value)
    agrees(value, broken, plain, depth)
    if not broken:
        for option in (0, orjson.OPT_INDENT_2):  # the plain copy: its keys may have been str subclasses
            agrees(orjson.dumps(plain, option=option).decode(), broken, plain, depth)
