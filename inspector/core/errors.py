"""The typed errors of the public API."""

from __future__ import annotations

from enum import Enum
from pathlib import Path


class DittoClosedError(RuntimeError):
    """Raised by every member of a closed peer's API."""

    def __init__(self, what: str = "this Ditto instance") -> None:
        super().__init__(f"{what} is closed; open a new Ditto on the directory to use it again")


class PersistenceDirectoryLockedError(RuntimeError):
    """Another live Ditto (in this process or another) holds the persistence directory."""

    def __init__(self, directory: Path, holder: str | None = None) -> None:
        self.directory = directory
        detail = f" (held by {holder})" if holder else ""
        super().__init__(
            f"the persistence directory {str(directory)!r} is in use by another Ditto{detail}; "
            "close it first or choose another directory"
        )


class MetadataValidationReason(str, Enum):
    """Which metadata rule a rejected value broke."""

    INVALID_JSON = "INVALID_JSON"
    NOT_AN_OBJECT = "NOT_AN_OBJECT"
    NOT_JSON_COMPATIBLE = "NOT_JSON_COMPATIBLE"
    DEPTH_LIMIT_EXCEEDED = "DEPTH_LIMIT_EXCEEDED"
    SIZE_LIMIT_EXCEEDED = "SIZE_LIMIT_EXCEEDED"


class MetadataValidationError(ValueError):
    """A metadata value broke one of the rules; nothing was changed.

    ``reason`` names the rule. Where it applies: ``line``/``column`` (1-based, in
    characters of the given text) locate the problem in JSON text, ``path`` names
    the offending node (``$.a[0].b``), ``size`` is the compact encoding's byte size
    (a lower bound when ``size_is_lower_bound``), ``depth`` the nesting found.
    """

    def __init__(
        self,
        reason: MetadataValidationReason,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
        size: int | None = None,
        size_is_lower_bound: bool = False,
        depth: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.line = line
        self.column = column
        self.path = path
        self.size = size
        self.size_is_lower_bound = size_is_lower_bound
        self.depth = depth
