"""The compiled proof that a value is plain JSON (inspector/core/_plainjson.c) and its Python fallback.

The validator's own tests run with each of the two (the ``plain_proof`` fixture); these
hold the compiled walk to its contract directly: the same depth as the Python walk on
any plain value, 0 for anything it cannot prove, and an early "too large" on values that
expand, without walking them.
"""

import collections
import enum
import math
import os
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inspector import MAX_METADATA_DEPTH, MAX_METADATA_SIZE_BYTES
from inspector.core import metadata

scan = metadata._compiled_scan
needs_scan = pytest.mark.skipif(
    scan is None, reason="inspector/core/_plainjson.c was not built (no C compiler)"
)
LIMIT = MAX_METADATA_SIZE_BYTES


def test_the_compiled_proof_is_built_where_ci_runs():
    # The benchmarks' budgets for `metadata = dict` hold only with it; a silent fallback would hide that.
    if os.environ.get("CI") != "true" and scan is None:
        pytest.skip("not under CI, and this installation has no C compiler")
    assert scan is not None
    assert metadata._c_scan is scan


def test_the_compiled_module_is_not_older_than_its_source():
    # An edit to _plainjson.c takes effect only after `pip install -e .` builds it again.
    source = Path(metadata.__file__).with_name("_plainjson.c")
    if scan is None or not source.exists():
        pytest.skip("no compiled module, or an installed package without the C source")
    compiled = Path(sys.modules["inspector.core._plainjson"].__file__)
    assert compiled.stat().st_mtime >= source.stat().st_mtime, (
        f"{compiled.name} is older than {source.name}: run `pip install -e .` again"
    )


class Color(enum.Enum):
    RED = 1


class Text(str):
    pass


@needs_scan
@pytest.mark.parametrize(
    ("value", "depth"),
    [
        ({}, 1),
        ({"a": []}, 2),
        ({"a": {"b": [1, 2.5, "x", None, True, False]}}, 3),
        ({"a": [[[]]]}, 4),
        ({"": ""}, 1),
        ({"big": 2**64 - 1, "small": -(2**63)}, 1),  # range: the encoder refuses past 64 bits
    ],
)
def test_plain_values_give_their_depth(value, depth):
    assert scan(value, MAX_METADATA_DEPTH, LIMIT) == depth


@needs_scan
@pytest.mark.parametrize(
    "leaf",
    [
        (1,),
        (),
        math.nan,
        math.inf,
        -math.inf,
        Color.RED,
        uuid.UUID(int=1),
        orjson.Fragment(b"[1]"),
        Text("t"),
        b"x",
        {1},
        collections.OrderedDict(a=1),
        object(),
    ],
    ids=repr,
)
def test_anything_else_is_left_to_the_caller(leaf):
    assert scan({"a": [leaf]}, MAX_METADATA_DEPTH, LIMIT) == 0


@needs_scan
@pytest.mark.parametrize("key", [1, None, (1,), Text("a")], ids=repr)
def test_a_key_that_is_not_an_exact_str_is_left_to_the_caller(key):
    assert scan({"a": {key: 1}}, MAX_METADATA_DEPTH, LIMIT) == 0


@needs_scan
def test_the_root_must_be_an_exact_container():
    assert scan(collections.OrderedDict(a=1), MAX_METADATA_DEPTH, LIMIT) == 0
    assert scan("text", MAX_METADATA_DEPTH, LIMIT) == 0


def _nested(levels):
    value = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@needs_scan
def test_depth_stops_at_the_limit_and_cycles_end_there():
    assert scan(_nested(64), 64, LIMIT) == 64
    assert scan(_nested(65), 64, LIMIT) == 0
    assert scan(_nested(300), 256, LIMIT) == 0
    cycle = {"a": []}
    cycle["a"].append(cycle)
    assert scan(cycle, MAX_METADATA_DEPTH, LIMIT) == 0


def _bomb(levels):
    value = []
    for _ in range(levels):
        value = [value, value]
    return {"a": value}


@needs_scan
@pytest.mark.parametrize(
    "value",
    [
        _bomb(60),  # 2**60 occurrences: refused after about LIMIT steps
        {"a": ["x" * 1_000_000] * 20_000},
        {"a": [{"k" * 100_000: i} for i in range(1_000)]},
        {f"k{i}": i for i in range(1_000_000)},  # refused on entering the root
        {"a": "x" * (LIMIT - 8)},  # the string alone reaches the bound
    ],
    ids=["exponential", "one-string", "one-key-many-dicts", "1M-keys", "one-long-string"],
)
def test_values_that_expand_are_refused_with_a_lower_bound(value):
    found = scan(value, MAX_METADATA_DEPTH, LIMIT)
    assert found <= -LIMIT


@needs_scan
def test_the_bound_is_exact_at_the_edge():
    # {"a":"…"} is 8 bytes plus the string: the lower bound is exact for ASCII text.
    assert scan({"a": "x" * (LIMIT - 9)}, MAX_METADATA_DEPTH, LIMIT) == 1
    assert scan({"a": "x" * (LIMIT - 8)}, MAX_METADATA_DEPTH, LIMIT) == -LIMIT


@needs_scan
def test_bad_arguments_raise():
    with pytest.raises(TypeError):
        scan({})
    with pytest.raises(ValueError):
        scan({}, 0, LIMIT)
    with pytest.raises(ValueError):
        scan({}, 257, LIMIT)
    with pytest.raises(ValueError):
        scan({}, 64, 0)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=40,
)


@needs_scan
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text(max_size=8), json_values, max_size=6))
def test_the_compiled_walk_and_the_python_walk_agree_on_plain_values(value):
    depth = metadata._value_depth(value)
    assert scan(value, MAX_METADATA_DEPTH, LIMIT) == depth
    # The Python walk may give up where it cannot prove cheaply (a sum of huge floats overflows):
    # the validator then rebuilds the value, with the same result.
    assert metadata._plain_depth_in_python(value) in (depth, None)
