"""Validates small peer info metadata: a JSON object, compact size < 128 KiB, depth <= 64.

`validate` is pure and cheap enough to run on every edit in the window and on every
set: JSON text costs about 1.5-1.8 parses of it, a dict 1.2-1.8 encodings of it (with
the compiled proof; 2.5-5.5 without it). No Python-level loop runs per node on the way
to an accepted value; the per-node work is done by C code (orjson, the compiled walk or
else ``gc.get_referents``, ``bytes`` methods, ``sum``/``len``/``str.join`` over whole
lists). Slow, iterative
walks only run to explain a refusal or to rebuild a value that is not made of plain
JSON types. Nothing recurses in Python, whatever the depth.

Text is parsed by orjson and re-encoded compactly (the size is exact); the levels of
the parsed value are counted by ``gc.get_referents`` (the exact depth is measured when
first asked for, or when the value comes near the limit); integer literals too long
for 64 bits, which orjson would turn into floats, are looked for only when the encoding
has a float of that magnitude. A dict is proved plain first: every object is an exact
``dict``/``list``/``str``/``int``/``float``/``bool``/``None`` (orjson would silently
turn NaN into ``null``, tuples into arrays, UUIDs and enums into their values), floats
are finite, and the characters of its strings and keys, counted each time a shared
object occurs, are bounded, so the encoding cannot blow up. Only then is it encoded,
with orjson options that make every other type raise. A lower bound of the encoded size
is kept on the way: a value is refused as too large as soon as that bound reaches the
limit, before its large parts are looked at. The proof is a walk in C
(``_plainjson.scan``, built with the package, a few nanoseconds per node) or, where the
package was installed without a C compiler, `_plain_depth`'s walk one nesting level at a
time with C calls over whole levels (same answers; validation about 3x slower on records
of short strings, where a Python call per record costs more than orjson's encoding of it).

Decisions where the contract is silent (also in the README):

* Integers are representable when they fit in 64 bits, signed or unsigned:
  ``-2**63 <= n < 2**64`` (what the sync SDK's CBOR and orjson both carry).
* Duplicate keys in JSON text: the last one wins, as in every mainstream parser.
* A tuple, a ``datetime``, a ``UUID``, an ``Enum`` that is not also an int or str,
  an ``orjson.Fragment``... is refused as ``NOT_JSON_COMPATIBLE``: the getter could
  not return an equal value. Subclasses of ``dict``/``list``/``str``/``int``/``float``
  (``OrderedDict``, ``defaultdict``, ``IntEnum``...) are accepted as the plain value
  their base type holds, whatever their own ``__eq__`` says; so are keys that are
  ``str`` subclasses, unless two of them are equal as plain strings.
* A lone surrogate, in a key or a value, is ``NOT_JSON_COMPATIBLE``: UTF-8 cannot
  carry it. In JSON text it is named by its position and by the path of its member.
* ``1e-400`` in JSON text is the float ``0.0`` (it rounds, like every parser);
  ``1e400`` has no float and is refused.
* A ``SIZE_LIMIT_EXCEEDED`` error gives the exact compact size, or a lower bound
  flagged ``size_is_lower_bound`` ("at least") when the value was refused before
  being encoded in full. JSON text with more than `MAX_METADATA_TEXT_CHARS`
  characters besides whitespace, or about `MAX_METADATA_TEXT_VALUES` values, is
  refused by size without being parsed, and then the error has no size: duplicate
  keys could make such text stand for a small object, so no bound would be true.
"""

from __future__ import annotations

import gc
import json
import math
import operator
import re
from collections.abc import Callable, Iterable
from enum import Enum
from functools import cached_property
from itertools import accumulate, compress, count, islice, repeat
from typing import Any

import orjson

from inspector.core.errors import MetadataValidationError, MetadataValidationReason

try:
    from inspector.core._plainjson import scan as _compiled_scan
except ImportError:  # installed without a C compiler: `_plain_depth` walks in Python instead
    _compiled_scan = None  # type: ignore[assignment]

__all__ = [
    "MAX_METADATA_DEPTH",
    "MAX_METADATA_SIZE_BYTES",
    "MAX_METADATA_TEXT_CHARS",
    "MAX_METADATA_TEXT_VALUES",
    "ValidatedMetadata",
    "validate",
]

MAX_METADATA_SIZE_BYTES = 131072
"""The compact UTF-8 JSON encoding of metadata must be smaller than this."""
MAX_METADATA_DEPTH = 64
"""Deepest accepted nesting: ``{}`` is depth 1, ``{"a": []}`` depth 2."""
MAX_METADATA_TEXT_CHARS = 128 * MAX_METADATA_SIZE_BYTES
"""JSON text with more characters than this besides whitespace is refused unparsed (16 MiB)."""
MAX_METADATA_TEXT_VALUES = 4 * MAX_METADATA_SIZE_BYTES
"""JSON text with more commas and brackets than this is refused unparsed (parsing costs memory per value)."""

_R = MetadataValidationReason
_LIMIT = MAX_METADATA_SIZE_BYTES
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
# String and key characters a dict may hold, shared objects counted at each occurrence,
# for its encoding to be attempted: at most 6 bytes each once escaped, a few MB in all.
_CHAR_CAP = 4 * _LIMIT
# Texts longer than this are measured before being parsed.
_MEASURE_TEXT_CHARS = 8 * _LIMIT
# The compiled proof of plain JSON, or None (the tests set it to None to run the Python walk).
_c_scan: Callable[[object, int, int], int] | None = _compiled_scan
# Subclasses of str/int/dict/list, datetimes and dataclasses raise instead of being converted.
_STRICT = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


class ValidatedMetadata:
    """An accepted metadata value with what was measured on the way."""

    __slots__ = ("_depth", "_value", "encoded", "size")

    def __init__(self, value: dict[str, Any] | None, encoded: bytes, size: int, depth: int | None) -> None:
        self._value = value
        self.encoded = encoded
        """The compact UTF-8 JSON encoding (what the size limit is measured on)."""
        self.size = size
        self._depth = depth

    @property
    def value(self) -> dict[str, Any]:
        """The parsed value: plain dicts, lists, str, int, float, bool, None (decoded on first use)."""
        if self._value is None:
            self._value = orjson.loads(self.encoded)
        return self._value

    @property
    def depth(self) -> int:
        """The nesting depth, at most `MAX_METADATA_DEPTH` (measured on first use for JSON text)."""
        if self._depth is None:
            self._depth = _value_depth(self.value)
        return self._depth

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
    source = _Source(text)
    if len(text) > _MEASURE_TEXT_CHARS:
        _refuse_text_too_large_to_parse(source)
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _decode_error(source, exc) from None
    if type(value) is not dict:
        start = _NON_SPACE.search(text)
        line, column = _line_column(text, start.start() if start else 0)
        raise MetadataValidationError(
            _R.NOT_AN_OBJECT,
            f"metadata must be a JSON object, not {_json_kind(value)}",
            line=line,
            column=column,
        )
    # The depth is the number of levels or one less; only a value this close to the limit
    # needs the exact answer now, others get it when asked.
    levels, last = _deepest_level(value)
    depth = _depth(levels, last) if levels > MAX_METADATA_DEPTH else None
    if depth is not None and depth > MAX_METADATA_DEPTH:
        raise _text_depth_error(source)
    encoded = orjson.dumps(value)
    # Integer literals past 64 bits parse as floats of magnitude >= 2**63, which orjson
    # writes with a positive exponent: only then is the text searched for such a literal.
    if b"+" in encoded and _HUGE_FLOAT.search(encoded):
        _check_integer_literals(source)
    _check_size(len(encoded))
    return ValidatedMetadata(value, encoded, len(encoded), depth)


class _Source:
    """JSON text and the byte views of it that error reports share, each made once when first needed."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ascii = text.isascii()  # then offsets in characters and in bytes agree
        self.significant: bytes | None = None  # the bytes without any blank, once measured
        self.words: list[bytes] | None = None  # the blank-separated words, once measured if few

    @cached_property
    def data(self) -> bytes:
        return self.text.encode("utf-8", "surrogatepass")

    @cached_property
    def neutral(self) -> bytes:
        return _neutral(self.data)

    def position(self, offset: int) -> int:
        """The byte position of the character at ``offset``."""
        return offset if self.ascii else len(self.text[:offset].encode("utf-8", "surrogatepass"))

    def offset(self, position: int) -> int:
        """The character offset of the byte at ``position``."""
        return position if self.ascii else len(self.data[:position].decode("utf-8", "surrogatepass"))

    def words_before(self, position: int) -> list[bytes] | None:
        """The blank-separated words of the text before byte ``position``, if they are few."""
        data = self.data
        if self.words is None or position <= len(data) // 2:
            words = data[:position].split(None, _FEW_BLANK_RUNS)
            return words if len(words) <= _FEW_BLANK_RUNS else None
        # Near the end of a measured text: the words of the whole, less those of the short rest.
        rest = data[position:].split()
        words = self.words[: len(self.words) - len(rest)]
        if rest and position and not data[position - 1 : position].isspace():
            shared = self.words[len(self.words) - len(rest)]  # the word the position cuts in two
            words.append(shared[: len(shared) - len(rest[0])])
        return words

    def too_deep(self) -> bool:
        # Blanks never change the nesting: a copy without them answers for the whole text.
        nesting = self.neutral if self.significant is None else _neutral(self.significant)
        return _structure_depth(nesting) > MAX_METADATA_DEPTH


def _deepest_level(value: dict[str, Any]) -> tuple[int, list[Any]]:
    """How many levels of a plain JSON value hold anything, and the last of them.

    Stops one level past the depth limit.
    """
    level: list[Any] = [value]
    levels = 1
    while levels <= MAX_METADATA_DEPTH + 1:
        deeper = gc.get_referents(*level)  # scalars have none: only containers lead on
        if not deeper:
            break
        level = deeper
        levels += 1
    return levels, level


def _depth(levels: int, last: list[Any]) -> int:
    # The containers of the last level, if any, are empty ones.
    return levels if not _CONTAINER_TYPES.isdisjoint(map(type, last)) else levels - 1


def _value_depth(value: dict[str, Any]) -> int:
    """The exact depth of a value made of plain JSON types (as parsed by orjson)."""
    return _depth(*_deepest_level(value))


def _refuse_text_too_large_to_parse(source: _Source) -> None:
    # Text padded with blanks has them in few runs, which split() skips fastest.
    words = source.data.split(None, _FEW_BLANK_RUNS)
    if len(words) <= _FEW_BLANK_RUNS:
        source.words = words
        significant = source.significant = b"".join(words)
    else:
        significant = source.significant = source.data.translate(None, _WHITESPACE)
    values = sum(map(significant.count, (b",", b"[", b"{")))
    if len(significant) > MAX_METADATA_TEXT_CHARS or values > MAX_METADATA_TEXT_VALUES:
        raise MetadataValidationError(
            _R.SIZE_LIMIT_EXCEEDED,
            f"metadata text is too large to be checked: {len(significant):,} characters besides "
            f"whitespace and {values:,} commas and brackets; text over {MAX_METADATA_TEXT_CHARS:,} "
            f"characters or {MAX_METADATA_TEXT_VALUES:,} commas and brackets is refused without being "
            f"parsed (the compact encoding must be under {MAX_METADATA_SIZE_BYTES:,} bytes)",
        )


def _decode_error(source: _Source, exc: orjson.JSONDecodeError) -> MetadataValidationError:
    text = source.text
    message = exc.msg.rstrip(".")
    if "surrogate" in message or "infinity" in message:
        # Well-formed JSON text whose value JSON-in-UTF-8 cannot carry: a lone surrogate, 1e400.
        offset = exc.pos  # in a string for a surrogate, at the number for infinity
        if "not valid UTF-8" in message:
            # A lone surrogate character in the str itself: orjson could not read any of it.
            found = _RAW_SURROGATE.search(text)
            offset = found.start() if found else 0
            try:
                orjson.loads(_RAW_SURROGATE.sub("\ufffd", text))
            except orjson.JSONDecodeError as other:
                if "surrogate" not in other.msg:  # the text is broken anyway: say where
                    return _decode_error(source, other)
        line, column = _line_column(text, offset)
        return MetadataValidationError(
            _R.NOT_JSON_COMPATIBLE,
            f"line {line}, column {column}: {message}",
            line=line,
            column=column,
            path=_path_in_text(source, offset, inside_string="surrogate" in message),
        )
    if source.too_deep():
        # orjson stops at 1024 levels; deeper input may well be valid JSON, just too deep.
        return _text_depth_error(source)
    return MetadataValidationError(
        _R.INVALID_JSON,
        f"invalid JSON at line {exc.lineno}, column {exc.colno}: {message}",
        line=exc.lineno,
        column=exc.colno,
    )


def _check_integer_literals(source: _Source) -> None:
    view = _strings_blanked(source.neutral)  # digits inside strings are not integers
    for match in _BIG_INT.finditer(view):
        literal = match.group().decode()
        if _INT_MIN <= int(literal) <= _INT_MAX:
            continue
        offset = source.offset(match.start())
        line, column = _line_column(source.text, offset)
        raise MetadataValidationError(
            _R.NOT_JSON_COMPATIBLE,
            f"integer at line {line}, column {column} does not fit in 64 bits "
            f"({literal[:24]}{'…' if len(literal) > 24 else ''}); write it as a string to keep every digit",
            line=line,
            column=column,
            path=_path_in_text(source, offset),
        )


def _text_depth_error(source: _Source) -> MetadataValidationError:
    view = _strings_blanked(source.neutral)
    brackets = view.translate(None, _ALL_BUT_BRACKETS)
    # Depth after each bracket is twice the opens so far minus the brackets so far.
    depths = map(operator.sub, accumulate(brackets.translate(_OPEN_IS_TWO)), count(1))
    deep = next(compress(count(), map((MAX_METADATA_DEPTH + 1).__eq__, depths)), None)
    if deep is None:  # the cheap count saw more nesting than the brackets hold: still too deep
        return MetadataValidationError(
            _R.DEPTH_LIMIT_EXCEEDED, f"metadata nests deeper than {MAX_METADATA_DEPTH} levels"
        )
    offset = source.offset(next(islice(_BRACKET.finditer(view), deep, None)).start())
    line, column = _line_column(source.text, offset)
    path = _path_in_text(source, offset)
    where = f"{_short(path)} at line {line}, column {column}" if path else f"line {line}, column {column}"
    return MetadataValidationError(
        _R.DEPTH_LIMIT_EXCEEDED,
        f"metadata nests deeper than {MAX_METADATA_DEPTH} levels: {where} is at depth "
        f"{MAX_METADATA_DEPTH + 1}",
        line=line,
        column=column,
        path=path,
        depth=MAX_METADATA_DEPTH + 1,
    )


def _path_in_text(source: _Source, offset: int, *, inside_string: bool = False) -> str | None:
    """The JSON path of the member whose value or key starts at (``inside_string``: holds) ``offset``.

    Lenient, so it also names a place in text that does not parse, and at C speed
    whatever the size: see `_open_members`.
    """
    data = source.data
    position = source.position(offset)
    if inside_string:  # the token is that string
        position = _string_start(data, position)
    key: str | None = None
    if data[position : position + 1] == b'"':
        end = _string_end(data, position)
        if end and _COLON_NEXT.match(data, end):
            key = _decode_key(_neutral(data[position:end]))
    # Text padded with blanks has few runs of them: squeezed to one blank each, the text
    # to walk is far shorter. Only a key holding blanks can come out different; then the
    # walk is done again on the exact bytes.
    words = source.words_before(position)
    steps = None if words is None else _open_members(_neutral(b" ".join(words)))
    if steps is None or any(isinstance(step, str) and _BLANKS.search(step) for step in steps):
        steps = _open_members(_neutral(data[:position]))
    if steps is None:
        return None
    if key is not None:
        if steps and steps[-1] is _KEY_PENDING:
            steps[-1] = key
        else:
            steps.append(key)
    elif steps and steps[-1] is _KEY_PENDING:
        return None  # a value where a key belongs: no member to name
    return _format_path(steps)


_KEY_PENDING = object()  # the innermost object is between members


def _string_start(data: bytes, position: int) -> int:
    """The position of the quote that opens the string holding ``position``."""
    quote = data.rfind(b'"', 0, position)
    while quote > 0 and _escaped(data, quote):
        quote = data.rfind(b'"', 0, quote)
    return max(quote, 0)


def _string_end(data: bytes, opening: int) -> int:
    """The position just past the quote that closes the string opened at ``opening`` (0 if none does)."""
    quote = data.find(b'"', opening + 1)
    while quote > 0 and _escaped(data, quote):
        quote = data.find(b'"', quote + 1)
    return quote + 1


def _escaped(data: bytes, quote: int) -> bool:
    start = quote
    while start and data[start - 1] == ord("\\"):
        start -= 1
    return bool((quote - start) % 2)


def _open_members(before: bytes) -> list[Any] | None:
    """For each container still open at the end of ``before`` (a `_neutral` prefix), the member being written.

    Brackets, commas and colons inside strings are hidden (when there are any),
    complete containers are peeled off innermost first (a pass per level), and what is
    left is the chain of open containers with the members written so far in each: the
    last key, or the commas that count the elements. An object whose next member has
    no key yet gives `_KEY_PENDING`. None when containers deeper than the limit come
    first (not worth the passes).
    """
    rest = before
    if _PUNCTUATION_IN_STRING.match(rest):
        parts = rest.split(b'"')
        parts[1::2] = b'"'.join(parts[1::2]).translate(_HIDE).split(b'"')
        rest = b'"'.join(parts)
    for _ in range(MAX_METADATA_DEPTH + 1):
        peeled = _COMPLETE_CONTAINER.sub(b"", rest)
        if len(peeled) == len(rest):
            break
        rest = peeled
    else:
        return None
    starts = [match.start() for match in _OPENING.finditer(rest)]
    steps: list[Any] = []
    for i, start in enumerate(starts):
        written = rest[start + 1 : starts[i + 1] if i + 1 < len(starts) else len(rest)]
        if rest[start] == ord("["):
            steps.append(written.count(b","))
            continue
        colon = written.rfind(b":")
        closing = len(written[:colon].rstrip(_WHITESPACE)) - 1
        if colon < 0 or written.rfind(b",") > colon or written[closing : closing + 1] != b'"':
            steps.append(_KEY_PENDING)
            continue
        opening = written.rfind(b'"', 0, closing)
        if opening < 0:
            return None
        steps.append(_decode_key(written[opening : closing + 1]))
    if _KEY_PENDING in steps[:-1]:
        return None  # a container where a key belongs: the text is broken before the offset
    return steps


def _decode_key(literal: bytes) -> str:
    """The string a key literal taken from a `_neutral` text stands for (the stdlib keeps lone surrogates)."""
    raw = _restore_escapes(literal.translate(_UNHIDE)).decode("utf-8", "surrogatepass")
    try:
        key: str = json.loads(raw)
    except ValueError:
        return raw[1:-1]
    return key


# --- Python values --------------------------------------------------------------------------------


def _validate_value(value: Any) -> ValidatedMetadata:
    if not isinstance(value, dict):
        raise MetadataValidationError(
            _R.NOT_AN_OBJECT, f"metadata must be a dict (a JSON object), not {type(value).__name__}"
        )
    depth = _plain_depth(value) if type(value) is dict else None
    if depth is not None:
        try:
            encoded = orjson.dumps(value, option=_STRICT)
        except orjson.JSONEncodeError:
            depth = None  # a key or string orjson refuses, an integer past 64 bits: explained below
    if depth is None:
        # Not provably plain JSON within the limits: rebuild it as plain JSON values,
        # node by node with a budget, or say exactly why that is impossible.
        plain, depth = _plain_copy(value)
        try:
            encoded = orjson.dumps(plain)
        except orjson.JSONEncodeError as exc:  # not expected after the rebuild; never a bare TypeError
            raise MetadataValidationError(
                _R.NOT_JSON_COMPATIBLE, f"metadata cannot be encoded: {exc}"
            ) from None
    _check_size(len(encoded))
    return ValidatedMetadata(None, encoded, len(encoded), depth)


def _plain_depth(value: dict[str, Any]) -> int | None:
    """The depth of ``value`` if it is provably plain JSON whose encoding is bounded, else None.

    One nesting level at a time, at C speed and without running any code of the value's
    own: every object is of an exact JSON type, floats are finite, string and key
    characters (shared objects counted at each occurrence, but for the keys of one large
    dict) stay under `_CHAR_CAP`, and no deeper than the limit. Raises
    SIZE_LIMIT_EXCEEDED as soon as a lower bound of the compact size reaches the limit,
    so a huge value costs no more than its first levels. None sends the value to
    `_plain_copy`, which rebuilds or explains it.

    The compiled ``_plainjson.scan`` answers when it is there; the walk below is its
    fallback and its reference (the tests hold the two to the same answers).
    """
    if _c_scan is not None:
        found = _c_scan(value, MAX_METADATA_DEPTH, MAX_METADATA_SIZE_BYTES)
        if found < 0:
            _check_lower_bound(-found)
        return found or None
    return _plain_depth_in_python(value)


def _plain_depth_in_python(value: dict[str, Any]) -> int | None:
    """`_plain_depth` without the compiled walk: one nesting level at a time, C calls over whole levels."""
    dicts: list[dict[str, Any]] = [value]
    lists: list[list[Any]] = []
    depth = 1
    at_least = 0  # bytes of the compact encoding
    chars = 0  # string and key characters counted so far, an upper bound
    # One occurrence of one dict may keep its keys uncounted: its keys are distinct objects
    # it holds, so encoding them costs what the caller allocated, however long they are.
    # Counting a large dict's keys is what costs most, so the one is the largest dict
    # found alone on its level (a dict that many others hold cannot be alone).
    uncounted: dict[str, Any] | None = None
    while True:
        keys = sum(map(len, dicts))
        items = sum(map(len, lists)) if lists else 0
        children_count = keys + items
        # Each container: two brackets and a comma between children; each member: quotes and colon.
        at_least += len(dicts) + len(lists) + children_count + 3 * keys
        _check_lower_bound(at_least)
        if not children_count:
            return depth
        # Unpacked only now: the count above proved the list it builds is small.
        children = gc.get_referents(*dicts, *lists)
        if len(children) != children_count:
            # The collector sees the keys of a dict only when they are not all exact str.
            return None
        counted = dicts
        lone = dicts[0] if len(dicts) == 1 and keys > _FEW_KEYS else None
        if lone is not None and lone is not uncounted and (uncounted is None or len(uncounted) < keys):
            counted, uncounted = ([] if uncounted is None else [uncounted]), lone
        if counted:
            key_chars, key_bound = _key_chars(counted, sum(map(len, counted)), _CHAR_CAP - chars)
            at_least += key_chars
            chars += key_bound
            _check_lower_bound(at_least)
            if chars > _CHAR_CAP:
                return None
        width = len(dicts[0]) if len(dicts) > 1 and not lists else 1
        found = _sort_level(children, width)
        if found is None:
            return None
        string_chars, strings, dicts, lists = found
        chars += string_chars
        # Each string: quotes and at least a byte per character; anything else a byte.
        at_least += string_chars + 2 * strings + children_count - strings - len(dicts) - len(lists)
        _check_lower_bound(at_least)
        if chars > _CHAR_CAP:
            return None
        if not dicts and not lists:
            return depth
        depth += 1
        if depth > MAX_METADATA_DEPTH:
            return None


_Level = tuple[int, int, list[dict[str, Any]], list[list[Any]]]


def _sort_level(children: list[Any], width: int) -> _Level | None:
    """(string characters, strings, dicts, lists) among ``children``, or None if one is not plain JSON.

    The children of a level of records with ``width`` members each come in record
    order, so every ``width``-th child is usually of one type: such a column is checked
    whole by one C call (``sum``, ``str.join``) instead of one call per child. Any column
    that is not uniform sends the level to `_sort_mixed_level`.
    """
    columns = (
        [children[i::width] for i in range(width)] if width > 1 and not len(children) % width else [children]
    )
    string_chars = strings = 0
    dicts: list[dict[str, Any]] = []
    lists: list[list[Any]] = []
    for column in columns:
        kind = type(column[0])
        if kind is dict or kind is list:
            if list(map(type, column)).count(kind) != len(column):
                return _sort_mixed_level(children)
            if kind is dict:
                dicts += column
            else:
                lists += column
        # No instance of a class written in Python (it would refer to its class), no
        # non-empty container: what is left cannot run Python code in len() or sum().
        elif gc.get_referents(*column):
            return _sort_mixed_level(children)
        elif kind is str:
            try:
                lengths = list(map(len, column))
            except TypeError:
                return _sort_mixed_level(children)
            column_chars = sum(lengths)
            # What has a length and is not a str either makes orjson raise (bytes, sets...)
            # or is an empty container or tuple: only those need telling from "".
            if column_chars > _CHAR_CAP or (not all(lengths) and not _all_str(column)):
                return _sort_mixed_level(children)
            string_chars += column_chars
            strings += len(column)
        elif kind is int or kind is float or kind is bool:
            try:
                total = sum(column)  # raises unless every one is a number
            except (TypeError, OverflowError):
                return _sort_mixed_level(children)
            # A sum is finite only if each float is (an overflow merely sends us the slow way).
            if (type(total) is float and not math.isfinite(total)) or type(total) not in (int, float):
                return _sort_mixed_level(children)
        elif kind is type(None):
            if column.count(None) != len(column):
                return _sort_mixed_level(children)
        else:
            return None
    return string_chars, strings, dicts, lists


def _all_str(column: list[Any]) -> bool:
    try:
        "".join(column)
    except TypeError:
        return False
    return True


_PLAIN_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})
_CONTAINER_TYPES = frozenset({dict, list})


def _sort_mixed_level(children: list[Any]) -> _Level | None:
    kinds = list(map(type, children))
    present = set(kinds)
    if not present <= _PLAIN_TYPES:
        return None

    def of(kind: type) -> list[Any]:
        return list(compress(children, map(operator.is_, kinds, repeat(kind)))) if kind in present else []

    strings = of(str)
    if float in present and not math.isfinite(sum(of(float), 0.0)):
        return None
    return sum(map(len, strings)), len(strings), of(dict), of(list)


def _key_chars(dicts: list[dict[str, Any]], keys: int, room: int) -> tuple[int, int]:
    """(at least, at most) characters in the keys of ``dicts``, each occurrence counted."""
    if len(dicts) > 16 and keys < 8 * len(dicts):
        # Many small dicts, usually records sharing their keys: bound by the longest key.
        distinct = set().union(*dicts)
        if 4 * len(distinct) <= keys:
            bound = max(map(len, distinct)) * keys
            if bound <= room:
                return sum(map(len, distinct)), bound
    # Exact, one dict at a time: joining one dict's keys copies characters it holds itself.
    total = 0
    for start in range(0, len(dicts), 256):
        total += sum(map(len, map("".join, dicts[start : start + 256])))
        if total >= _LIMIT:
            break  # enough to refuse: the caller's lower bound now passes the limit
    return total, total


_Frame = tuple[Any, Any, Any, tuple[Any, ...], frozenset[int]]  # node, parent, slot, path, ancestors


def _plain_copy(value: Any) -> tuple[dict[str, Any], int]:
    """Rebuild ``value`` from exact JSON types, or raise the error that explains why not.

    Iterative, with a lower bound of the compact size kept on the way (shared
    references counted each time they occur): a value past the size limit is refused
    before its large containers are copied, and it is never encoded.
    """
    root: dict[str, Any] = {}
    stack: list[_Frame] = [(value, None, None, (), frozenset())]
    at_least = 0
    depth = 0
    while stack:
        node, parent, slot, path, ancestors = stack.pop()
        plain: Any
        if isinstance(node, dict | list):
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
                size = dict.__len__(node)
                at_least += 2 + max(size - 1, 0) + 3 * size
                _check_lower_bound(at_least)
                plain = root if parent is None else {}
                children: list[_Frame] = []
                for key, child in list(dict.items(node)):
                    if not isinstance(key, str):
                        raise _incompatible(
                            path, f"has a key {key!r} of type {type(key).__name__}; JSON keys are strings"
                        )
                    if _scalar_problem(key):
                        raise _incompatible(
                            (*path, key), "is named by a key with a lone surrogate, which UTF-8 cannot encode"
                        )
                    plain_key = str.__str__(key)
                    at_least += len(plain_key)
                    children.append((child, plain, plain_key, (*path, plain_key), inner))
                _check_lower_bound(at_least)
                if len({slot for _, _, slot, _, _ in children}) != len(children):
                    raise _incompatible(path, "has keys that are equal as plain strings")
            else:
                size = list.__len__(node)
                at_least += 2 + max(size - 1, 0)
                _check_lower_bound(at_least)
                plain = [None] * size
                children = [
                    (child, plain, i, (*path, i), inner) for i, child in enumerate(list.__iter__(node))
                ]
            stack.extend(reversed(children))
        else:
            problem = _scalar_problem(node)
            if problem:
                raise _incompatible(path, problem)
            if node is None or isinstance(node, bool):
                plain = node
                at_least += 4
            elif isinstance(node, str):
                plain = str.__str__(node)
                at_least += 2 + len(plain)
            elif isinstance(node, int):
                plain = int.__int__(node)
                at_least += 1
            else:
                plain = float.__float__(node)
                at_least += 1
            _check_lower_bound(at_least)
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
        if str.isascii(node) or not _RAW_SURROGATE.search(node):
            return None
        return "is a string with a lone surrogate, which UTF-8 cannot encode"
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


def _check_lower_bound(at_least: int) -> None:
    if at_least >= MAX_METADATA_SIZE_BYTES:
        raise MetadataValidationError(
            _R.SIZE_LIMIT_EXCEEDED,
            f"metadata is at least {at_least:,} bytes as compact JSON (counting each reference to a "
            f"shared object every time it occurs); it must be under {MAX_METADATA_SIZE_BYTES:,} bytes "
            "(128 KiB)",
            size=at_least,
            size_is_lower_bound=True,
        )


def _structure_depth(neutral: bytes) -> int:
    """Deepest bracket nesting outside the string literals of a `_neutral` text (exact for valid JSON)."""
    skeleton = neutral.translate(None, _ALL_BUT_STRUCTURE)
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


def _neutral(data: bytes) -> bytes:
    """``data`` with every escaped backslash or quote replaced by two bytes that are neither.

    Same length, and every quote left delimits a string. Control bytes never occur raw
    in valid JSON, which `_restore_escapes` relies on.
    """
    if b"\\" not in data:
        return data
    return data.replace(b"\\\\", b"\x01\x01").replace(b'\\"', b"\x02\x02")


def _restore_escapes(data: bytes) -> bytes:
    if b"\x01" not in data and b"\x02" not in data:
        return data
    return data.replace(b"\x01\x01", b"\\\\").replace(b"\x02\x02", b'\\"')


def _strings_blanked(neutral: bytes) -> bytes:
    """``neutral`` with the inside of every string literal replaced by spaces (same positions)."""
    parts = neutral.split(b'"')
    if len(parts) > 1:
        parts[1::2] = b'"'.join(parts[1::2]).translate(_BLANK).split(b'"')
    return b'"'.join(parts)


_ALL_BUT_STRUCTURE = bytes(range(256)).translate(None, b'[]{}"')
_ALL_BUT_BRACKETS = bytes(range(256)).translate(None, b"[]{}")
# Matches when a string holds a bracket, comma or colon: strings are taken in order from
# the start, so a closing quote is never mistaken for an opening one.
_PUNCTUATION_IN_STRING = re.compile(rb'(?:[^"]*+"[^"\[\]{},:]*+")*+[^"]*+"[^"]*?[\[\]{},:]')
_WHITESPACE = b" \t\r\n"
_QUOTED = re.compile(rb'"[^"]*"')
_UNIFY = bytes.maketrans(b"[{]}", b"(())")
_OPEN_IS_TWO = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_HIDE = bytes.maketrans(b"[]{},:", b"\x03\x04\x05\x06\x07\x08")
_UNHIDE = bytes.maketrans(b"\x03\x04\x05\x06\x07\x08", b"[]{},:")
_FEW_BLANK_RUNS = 4096
_FEW_KEYS = 64
_BLANKS = re.compile(r"\s")
_COMPLETE_CONTAINER = re.compile(rb"\[[^\[\]{}]*\]|\{[^\[\]{}]*\}")
_OPENING = re.compile(rb"[\[{]")
_BLANK = bytes(i if i == ord('"') else ord(" ") for i in range(256))
_BRACKET = re.compile(rb"[\[\]{}]")
_COLON_NEXT = re.compile(rb"[ \t\r\n]*:")
_NON_SPACE = re.compile(r"[^ \t\r\n]")
_BIG_INT = re.compile(rb"(?<![\d.eE+\-])-?\d{19,}(?![\d.eE])")
# How orjson writes a float of magnitude 1e18 or more.
_HUGE_FLOAT = re.compile(rb"e\+(?:1[89]|[2-9]\d|\d{3})")
_RAW_SURROGATE = re.compile("[\ud800-\udfff]")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _format_path(path: Iterable[Any]) -> str:
    parts = ["$"]
    for step in path:
        if isinstance(step, int):
            parts.append(f"[{step}]")
        elif _IDENTIFIER.match(step):
            parts.append(f".{step}")
        else:
            # ASCII escapes only where orjson cannot write the key (a lone surrogate).
            try:
                parts.append(f"[{orjson.dumps(step).decode()}]")
            except orjson.JSONEncodeError:
                parts.append(f"[{json.dumps(step)}]")
    return "".join(parts)


def _line_column(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    line = text.count("\n", 0, start) + 1 if start else 1
    return line, offset - start + 1


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
