"""Validates small peer info metadata: a JSON object, compact size < 128 KiB, depth <= 64.

`validate` is pure and cheap enough to run on every edit in the window. It never
recurses in Python on user data: depth is measured on the JSON text (strings cut
out by a regular expression, then brackets counted at C speed), and the slow,
iterative walks below only run to explain a value that was already refused.

It does not trust orjson's silent conversions: `orjson.dumps` turns NaN into
``null`` and tuples into arrays, `orjson.loads` turns integers past 64 bits into
floats. Values are therefore round-tripped and compared, and JSON text is searched
for integer literals too long for 64 bits.

Decisions where the contract is silent (also in the README):

* Integers are representable when they fit in 64 bits, signed or unsigned:
  ``-2**63 <= n < 2**64`` (what the sync SDK's CBOR and orjson both carry).
* Duplicate keys in JSON text: the last one wins, as in every mainstream parser.
* A tuple, a ``datetime``, a ``UUID``, a non-int ``Enum``... is refused as
  ``NOT_JSON_COMPATIBLE`` because the getter could not return an equal value.
  Subclasses of ``dict``/``list``/``str``/``int``/``float`` are accepted when the
  plain JSON value is equal to them (an ``IntEnum`` member reads back as its int).
* JSON text with more than ``MAX_METADATA_TEXT_CHARS`` non-whitespace characters
  is refused by size without being parsed. Whitespace never counts, and escapes
  shrink at most 6x, so only floats written with 16x superfluous digits could be
  refused here although their compact form would fit.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from dataclasses import dataclass
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

_DUMPS_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


@dataclass(frozen=True, slots=True)
class ValidatedMetadata:
    """An accepted metadata value with what was measured on the way."""

    value: dict[str, Any]
    """The parsed value: plain dicts, lists, str, int, float, bool, None."""
    encoded: bytes
    """The compact UTF-8 JSON encoding (what the size limit is measured on)."""
    size: int
    depth: int


def validate(metadata: str | dict[str, Any]) -> ValidatedMetadata:
    """Validate metadata given as JSON text (``str``) or as a value.

    Returns the parsed value, its compact encoding, byte size and depth, or raises
    `MetadataValidationError` whose ``reason`` names the rule that was broken.
    """
    if isinstance(metadata, str):
        return _validate_text(metadata)
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
                    f"metadata nests deeper than {MAX_METADATA_DEPTH} levels: {path} at line {line}, "
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


def _refuse(obj: Any) -> Any:
    raise TypeError


def _validate_value(value: Any) -> ValidatedMetadata:
    if not isinstance(value, dict):
        raise MetadataValidationError(
            _R.NOT_AN_OBJECT, f"metadata must be a dict (a JSON object), not {type(value).__name__}"
        )
    try:
        encoded = orjson.dumps(value, default=_refuse, option=_DUMPS_OPTIONS)
    except (orjson.JSONEncodeError, TypeError, RecursionError):
        raise _diagnose(value, None) from None
    depth = _structure_depth(encoded)
    if depth > MAX_METADATA_DEPTH:
        raise _diagnose(value, None)
    _check_size(len(encoded))
    copy = orjson.loads(encoded)
    try:
        equal = copy == value
    except Exception:
        equal = False
    if not equal:
        raise _diagnose(value, copy)
    return ValidatedMetadata(copy, encoded, len(encoded), depth)


def _diagnose(value: Any, copy: Any) -> MetadataValidationError:
    """Explain why ``value`` was refused, walking it without recursion.

    ``copy`` is its JSON round trip when encoding succeeded but changed the value.
    """
    stack: list[tuple[Any, Any, tuple[Any, ...], frozenset[int]]] = [(value, copy, (), frozenset())]
    while stack:
        node, twin, path, ancestors = stack.pop()
        if isinstance(node, dict | list | tuple):
            if id(node) in ancestors:
                return _incompatible(path, "refers back to one of its own containers (a cycle)")
            if len(path) + 1 > MAX_METADATA_DEPTH:
                return MetadataValidationError(
                    _R.DEPTH_LIMIT_EXCEEDED,
                    f"metadata nests deeper than {MAX_METADATA_DEPTH} levels: {_format_path(path)} "
                    f"is at depth {len(path) + 1}",
                    path=_format_path(path),
                    depth=len(path) + 1,
                )
            if isinstance(node, tuple):
                return _incompatible(path, "is a tuple; JSON arrays read back as lists, use a list")
            inner = ancestors | {id(node)}
            if isinstance(node, dict):
                children = []
                for key, child in node.items():
                    if not isinstance(key, str):
                        return _incompatible(
                            path, f"has a key {key!r} of type {type(key).__name__}; JSON keys are strings"
                        )
                    twin_child = twin.get(key) if isinstance(twin, dict) else None
                    children.append((child, twin_child, (*path, key), inner))
            else:
                twins = twin if isinstance(twin, list) and len(twin) == len(node) else [None] * len(node)
                children = [
                    (c, t, (*path, i), inner) for i, (c, t) in enumerate(zip(node, twins, strict=True))
                ]
            stack.extend(reversed(children))
            continue
        problem = _scalar_problem(node)
        if problem is None and copy is not None and not _same(node, twin):
            problem = f"is a {type(node).__name__} that JSON would change into {twin!r}"
        if problem:
            return _incompatible(path, problem)
    return _incompatible((), "cannot be represented exactly as JSON")


def _scalar_problem(node: Any) -> str | None:
    if node is None or isinstance(node, bool):
        return None
    if isinstance(node, int):
        if _INT_MIN <= node <= _INT_MAX:
            return None
        return "is an integer that does not fit in 64 bits; store it as a string"
    if isinstance(node, float):
        return None if math.isfinite(node) else f"is {node!r}, which JSON cannot represent"
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            return "is a string with a lone surrogate, which UTF-8 cannot encode"
        return None
    return f"is a {type(node).__name__}, which is not a JSON value"


def _same(node: Any, twin: Any) -> bool:
    try:
        return bool(node == twin)
    except Exception:
        return False


def _incompatible(path: tuple[Any, ...], problem: str) -> MetadataValidationError:
    where = _format_path(path)
    return MetadataValidationError(_R.NOT_JSON_COMPATIBLE, f"{where} {problem}", path=where)


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
