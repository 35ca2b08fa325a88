"""Validates small peer info metadata: a JSON object, compact size < 128 KiB, depth <= 64.

`validate` is pure and cheap enough to run on every edit in the window. It never
recurses in Python on user data: depth is measured on the JSON text (strings cut
out by a regular expression, then brackets counted at C speed), and the slow,
iterative walks below only run to explain a value that was already refused.

It does not trust orjson's silent conversions (`orjson.dumps` turns NaN into
``null`` and tuples into arrays, `orjson.loads` turns integers past 64 bits into
floats) nor anybody's ``__eq__``: a value is encoded directly only once a scan at C
speed, one nesting level at a time, has proved every reachable object is of an
exact JSON type, finite, within the depth limit and within a node and character
budget (so shared references cannot make the encoding explode). Anything else is
rebuilt node by node from exact types, with the same budget, or explained.
JSON text is searched for integer literals too long for 64 bits.

Decisions where the contract is silent (also in the README):

* Integers are representable when they fit in 64 bits, signed or unsigned:
  ``-2**63 <= n < 2**64`` (what the sync SDK's CBOR and orjson both carry).
* Duplicate keys in JSON text: the last one wins, as in every mainstream parser.
* A tuple, a ``datetime``, a ``UUID``, an ``Enum`` that is not also an int or str,
  an ``orjson.Fragment``... is refused as ``NOT_JSON_COMPATIBLE``: the getter could
  not return an equal value. Subclasses of ``dict``/``list``/``str``/``int``/``float``
  (``OrderedDict``, ``defaultdict``, ``IntEnum``...) are accepted as the plain value
  their base type holds, whatever their own ``__eq__`` says.
* ``1e-400`` in JSON text is the float ``0.0`` (it rounds, like every parser);
  ``1e400`` has no float and is refused.
* JSON text with more than ``MAX_METADATA_TEXT_CHARS`` non-whitespace characters
  is refused by size without being parsed. Whitespace never counts, and escapes
  shrink at most 6x, so only floats written with 16x superfluous digits could be
  refused here although their compact form would fit.
"""

from __future__ import annotations

import gc
import math
import operator
import re
from bisect import bisect_right
from enum import Enum
from itertools import compress, repeat
from typing import Any

import orjson

from inspector.core.errors import MetadataValidationError, MetadataValidationReason

__all__ = [
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_SIZE_BYTES",
    "MAX_METADATA_TEXT_CHARS",
    "ValidatedMetadata",
    "validate",
]

MAX_METADATA_SIZE_BYTES = 131072
"""The compact UTF-8 JSON encoding of metadata must be smaller than this."""
MAX_METADATA_DEPTH = 64
"""Deepest accepted nesting: ``{}`` is depth 1, ``{"a": []}`` depth 2."""
MAX_METADATA_TEXT_CHARS = 16 * MAX_METADATA_SIZE_BYTES
"""JSON text with more non-whitespace characters than this is refused unparsed."""

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

_R = MetadataValidationReason

# A JSON string literal, unrolled so the engine never backtracks per character.
_STRING_TEXT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_BIG_INT = re.compile(r"(?<![\d.eE+\-])-?\d{19,}(?![\d.eE])")
# Tokens that move through the structure, for locating a node in JSON text.
_STRUCTURE_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.S)
_RAW_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ValidatedMetadata:
    """An accepted metadata value with what was measured on the way."""

    __slots__ = ("_value", "depth", "encoded", "size")

    def __init__(self, value: dict[str, Any] | None, encoded: bytes, size: int, depth: int) -> None:
        self._value = value
        self.encoded = encoded
        """The compact UTF-8 JSON encoding (what the size limit is measured on)."""
        self.size = size
        self.depth = depth

    @property
    def value(self) -> dict[str, Any]:
        """The parsed value: plain dicts, lists, str, int, float, bool, None (decoded on first use)."""
        if self._value is None:
            self._value = orjson.loads(self.encoded)
        return self._value

    def __repr__(self) -> str:
        return f"<ValidatedMetadata {self.size} bytes, depth {self.depth}>"


def validate(metadata: str | dict[str, Any]) -> ValidatedMetadata:
    """Validate metadata given as JSON text (``str``) or as a value.

    Returns the parsed value, its compact encoding, byte size and depth, or raises
    `MetadataValidationError` whose ``reason`` names the rule that was broken.
    """
    if isinstance(metadata, str):
        # An exact copy: orjson parses only exact str, and a subclass must not steer the checks.
        return _validate_text(str.__str__(metadata))
    return _validate_value(metadata)


# --- JSON text ------------------------------------------------------------------------------------


def _validate_text(text: str) -> ValidatedMetadata:
    if len(text) > MAX_METADATA_TEXT_CHARS:
        significant = len(text) - sum(text.count(c) for c in " \n\r\t")
        if significant > MAX_METADATA_TEXT_CHARS:
            raise MetadataValidationError(
                _R.SIZE_LIMIT_EXCEEDED,
                f"metadata is far too large: {significant:,} characters of JSON besides whitespace; "
                f"the compact encoding must be under {MAX_METADATA_SIZE_BYTES:,} bytes (128 KiB)",
                size=-(-significant // 6),
                size_is_lower_bound=True,
            )
    data = text.encode("utf-8", "surrogatepass")
    depth = _structure_depth(data)
    if depth > MAX_METADATA_DEPTH:
        raise _text_depth_error(text)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(text, exc) from None
    if not isinstance(value, dict):
        raise MetadataValidationError(
            _R.NOT_AN_OBJECT,
            f"metadata must be a JSON object, not {_json_kind(value)}",
            line=(start := _line_column(text, len(text) - len(text.lstrip())))[0],
            column=start[1],
        )
    if _NINETEEN_DIGITS in data.translate(_DIGIT_MASK):
        _check_integer_literals(text)
    encoded = orjson.dumps(value)
    _check_size(len(encoded))
    return ValidatedMetadata(value, encoded, len(encoded), depth)


def _decode_error(text: str, exc: orjson.JSONDecodeError) -> MetadataValidationError:
    message = exc.msg.rstrip(".")
    line, column = exc.lineno, exc.colno
    if "surrogate" in message or "infinity" in message:
        # Well-formed JSON text whose value JSON-in-UTF-8 cannot carry: a lone surrogate, 1e400.
        if "surrogates not allowed" in message and (found := _RAW_SURROGATE.search(text)):
            line, column = _line_column(text, found.start())
        return MetadataValidationError(
            _R.NOT_JSON_COMPATIBLE,
            f"line {line}, column {column}: {message}",
            line=line,
            column=column,
            path=_path_at(text, _offset(text, line, column)),
        )
    return MetadataValidationError(
        _R.INVALID_JSON, f"invalid JSON at line {line}, column {column}: {message}", line=line, column=column
    )


def _offset(text: str, line: int, column: int) -> int:
    start = 0
    for _ in range(line - 1):
        start = text.index("\n", start) + 1
    return start + column - 1


def _check_integer_literals(text: str) -> None:
    # Searched on the original text (not the skeleton) to report positions; digits
    # inside strings are skipped by requiring the match to be outside any literal.
    strings = [(m.start(), m.end()) for m in _STRING_TEXT.finditer(text)]
    for match in _BIG_INT.finditer(text):
        if _inside(strings, match.start()):
            continue
        number = int(match.group())
        if not _INT_MIN <= number <= _INT_MAX:
            line, column = _line_column(text, match.start())
            raise MetadataValidationError(
                _R.NOT_JSON_COMPATIBLE,
                f"integer at line {line}, column {column} does not fit in 64 bits "
                f"({match.group()[:24]}{'…' if len(match.group()) > 24 else ''}); "
                "write it as a string to keep every digit",
                line=line,
                column=column,
                path=_path_at(text, match.start()),
            )


def _inside(spans: list[tuple[int, int]], offset: int) -> bool:
    i = bisect_right(spans, (offset, float("inf"))) - 1
    return i >= 0 and spans[i][0] <= offset < spans[i][1]


def _text_depth_error(text: str) -> MetadataValidationError:
    depth = 0
    for match in _STRUCTURE_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_METADATA_DEPTH:
                line, column = _line_column(text, match.start())
                path = _path_at(text, match.start())
                return MetadataValidationError(
                    _R.DEPTH_LIMIT_EXCEEDED,
                    f"metadata nests deeper than {MAX_METADATA_DEPTH} levels: {_short(path)} at line {line}, "
                    f"column {column} is at depth {depth}",
                    line=line,
                    column=column,
                    path=path,
                    depth=depth,
                )
        elif token in "]}":
            depth -= 1
    # The fast count saw more nesting than the token walk (unbalanced input): still too deep.
    return MetadataValidationError(
        _R.DEPTH_LIMIT_EXCEEDED, f"metadata nests deeper than {MAX_METADATA_DEPTH} levels"
    )


def _path_at(text: str, offset: int) -> str:
    """The JSON path of the value that starts at ``offset`` in ``text``."""
    # Each frame: [is_object, key or index]; a key is known once its ':' was seen.
    frames: list[list[Any]] = []
    pending_key: str | None = None
    for match in _STRUCTURE_TOKEN.finditer(text, 0, offset):
        token = match.group()
        if token in "[{":
            frames.append([token == "{", None if token == "{" else 0])
        elif token in "]}":
            if frames:
                frames.pop()
        elif token == ",":
            if frames and not frames[-1][0]:
                frames[-1][1] += 1
        elif token == ":":
            if frames and frames[-1][0]:
                frames[-1][1] = pending_key
        elif frames and frames[-1][0]:
            try:
                pending_key = orjson.loads(token)
            except orjson.JSONDecodeError:
                pending_key = token[1:-1]
    return _format_path([frame[1] for frame in frames])


# --- Python values --------------------------------------------------------------------------------


def _validate_value(value: Any) -> ValidatedMetadata:
    if not isinstance(value, dict):
        raise MetadataValidationError(
            _R.NOT_AN_OBJECT, f"metadata must be a dict (a JSON object), not {type(value).__name__}"
        )
    depth = _plain_depth(value) if type(value) is dict else None
    if depth is None:
        # Not provably plain JSON within the limits: rebuild it as plain JSON values,
        # node by node with a budget, or say exactly why that is impossible.
        value, depth = _plain_copy(value)
    try:
        encoded = orjson.dumps(value)
    except orjson.JSONEncodeError:
        value, depth = _plain_copy(value)  # raises: a non-str key, an integer past 64 bits, a surrogate
        encoded = orjson.dumps(value)
    _check_size(len(encoded))
    return ValidatedMetadata(None, encoded, len(encoded), depth)


_PLAIN_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})
_CONTAINERS = frozenset({dict, list})
_is_container = _CONTAINERS.__contains__


def _plain_depth(value: dict[str, Any]) -> int | None:
    """The depth of ``value`` if it is provably plain JSON within the limits, else None.

    Proof, one nesting level at a time and at C speed: every object reachable is of
    an exact JSON type (no subclass can lie through ``__eq__``, no tuple, UUID, Enum
    or NaN that orjson would silently convert), there are fewer nodes and string
    characters than the size limit (each costs at least a byte: shared references
    cannot make orjson expand the value without bound), and no deeper than the limit.
    """
    level: list[Any] = [value]
    depth = nodes = chars = 0
    while level:
        depth += 1
        if depth > MAX_METADATA_DEPTH:
            return None
        children = gc.get_referents(*level)
        nodes += len(children)
        if nodes >= MAX_METADATA_SIZE_BYTES:
            return None
        kinds = list(map(type, children))
        present = set(kinds)
        if not present <= _PLAIN_TYPES:
            return None
        if str in present:
            strings = compress(children, map(operator.is_, kinds, repeat(str)))
            chars += sum(map(len, strings))
            if chars >= MAX_METADATA_SIZE_BYTES:
                return None
        # A sum of floats is finite only if each is (an overflow merely sends us the slow way).
        if float in present and not math.isfinite(
            sum(compress(children, map(operator.is_, kinds, repeat(float))), 0.0)
        ):
            return None
        level = list(compress(children, map(_is_container, kinds))) if present & _CONTAINERS else []
    return depth


def _plain_copy(value: Any) -> tuple[dict[str, Any], int]:
    """Rebuild ``value`` from exact JSON types, or raise the error that explains why not.

    Iterative, with a budget: a value whose expansion (shared references counted each
    time they occur) passes the size limit is refused before it is ever encoded.
    """
    root: dict[str, Any] = {}
    stack: list[tuple[Any, Any, Any, tuple[Any, ...], frozenset[int]]]
    stack = [(value, None, None, (), frozenset())]
    budget = MAX_METADATA_SIZE_BYTES
    depth = 0
    while stack:
        node, parent, slot, path, ancestors = stack.pop()
        budget -= 1
        if isinstance(node, str):
            problem = _scalar_problem(node)
            if problem:
                raise _incompatible(path, problem)
            plain: Any = str.__str__(node)
            budget -= len(plain)
        elif isinstance(node, dict | list):
            if id(node) in ancestors:
                raise _incompatible(path, "refers back to one of its own containers (a cycle)")
            if len(path) + 1 > MAX_METADATA_DEPTH:
                raise MetadataValidationError(
                    _R.DEPTH_LIMIT_EXCEEDED,
                    f"metadata nests deeper than {MAX_METADATA_DEPTH} levels: "
                    f"{_short(_format_path(path))} is at depth {len(path) + 1}",
                    path=_format_path(path),
                    depth=len(path) + 1,
                )
            depth = max(depth, len(path) + 1)
            inner = ancestors | {id(node)}
            if isinstance(node, dict):
                plain = root if parent is None else {}
                items = list(dict.items(node))
                for key, _ in items:
                    if not isinstance(key, str):
                        raise _incompatible(
                            path, f"has a key {key!r} of type {type(key).__name__}; JSON keys are strings"
                        )
                    budget -= len(key) + 3
                children = [(child, plain, str.__str__(key), (*path, key), inner) for key, child in items]
            else:
                plain = [None] * len(node)
                elements = enumerate(list.__iter__(node))
                children = [(child, plain, i, (*path, i), inner) for i, child in elements]
            stack.extend(reversed(children))
        else:
            problem = _scalar_problem(node)
            if problem:
                raise _incompatible(path, problem)
            if node is None or isinstance(node, bool):
                plain = node
            elif isinstance(node, int):
                plain = int.__int__(node)
            else:
                plain = float.__float__(node)
        if budget < 0:
            raise MetadataValidationError(
                _R.SIZE_LIMIT_EXCEEDED,
                f"metadata is larger than {MAX_METADATA_SIZE_BYTES:,} bytes as compact JSON "
                "(counting each reference to a shared object every time it occurs)",
                size=MAX_METADATA_SIZE_BYTES - budget,
                size_is_lower_bound=True,
            )
        if parent is not None:
            parent[slot] = plain
    return root, depth


def _scalar_problem(node: Any) -> str | None:
    if node is None or type(node) is bool:
        return None
    if isinstance(node, Enum) and not isinstance(node, int | str):
        return f"is the enum member {node!r}; store its value instead"
    if isinstance(node, int):
        if _INT_MIN <= node <= _INT_MAX:
            return None
        return "is an integer that does not fit in 64 bits; store it as a string"
    if isinstance(node, float):
        return None if math.isfinite(node) else f"is {node!r}, which JSON cannot represent"
    if isinstance(node, str):
        try:
            str.__str__(node).encode("utf-8")
        except UnicodeEncodeError:
            return "is a string with a lone surrogate, which UTF-8 cannot encode"
        return None
    if isinstance(node, tuple):
        return "is a tuple; JSON arrays read back as lists, use a list"
    return f"is a {type(node).__name__}, which is not a JSON value"


def _incompatible(path: tuple[Any, ...], problem: str) -> MetadataValidationError:
    where = _format_path(path)
    return MetadataValidationError(_R.NOT_JSON_COMPATIBLE, f"{_short(where)} {problem}", path=where)


def _short(path: str) -> str:
    return path if len(path) <= 80 else path[:30] + "…" + path[-45:]


# --- shared ---------------------------------------------------------------------------------------


def _check_size(size: int) -> None:
    if size >= MAX_METADATA_SIZE_BYTES:
        raise MetadataValidationError(
            _R.SIZE_LIMIT_EXCEEDED,
            f"metadata is {size:,} bytes as compact JSON; it must be under "
            f"{MAX_METADATA_SIZE_BYTES:,} bytes (128 KiB)",
            size=size,
        )


def _structure_depth(data: bytes) -> int:
    """Deepest bracket nesting outside string literals (exact for valid JSON)."""
    if b"\\" in data:
        # Escapes pair up left to right; what is left of a backslash-quote is an escaped quote.
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
    skeleton = data.translate(None, _ALL_BUT_STRUCTURE)
    if b'"' in skeleton:
        # Adjacent quotes enclose no bracket, whichever strings they belong to: drop them
        # cheaply so the expression only meets the few strings that contain brackets.
        skeleton = skeleton.replace(b'""', b"")
        if b'"' in skeleton:
            skeleton = _QUOTED.sub(b"", skeleton)
    opens = skeleton.count(b"[") + skeleton.count(b"{")
    if opens <= MAX_METADATA_DEPTH:
        depth = deepest = 0
        for c in skeleton:
            depth += 1 if c in b"[{" else -1
            deepest = max(deepest, depth)
        return deepest
    # Peel the innermost pairs, one level per pass at C speed, until the answer is known.
    s = skeleton.translate(_UNIFY)
    depth = 0
    while s and depth <= MAX_METADATA_DEPTH:
        peeled = s.replace(b"()", b"")
        if len(peeled) == len(s):  # unbalanced rest: what stays open still nests
            return depth + max(0, s.count(b"(") - s.count(b")"))
        s = peeled
        depth += 1
    return depth + (1 if s else 0)


_ALL_BUT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
_QUOTED = re.compile(rb'"[^"]*"')
_UNIFY = bytes.maketrans(b"[{]}", b"(())")
_DIGIT_MASK = bytes.maketrans(
    bytes(range(256)), b"".join(b"0" if 48 <= i <= 57 else b" " for i in range(256))
)
_NINETEEN_DIGITS = b"0" * 19


def _format_path(path: tuple[Any, ...] | list[Any]) -> str:
    parts = ["$"]
    for step in path:
        if step is None:
            continue
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(f".{step}")
        else:
            parts.append(f"[{orjson.dumps(step).decode()}]")
    return "".join(parts)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
