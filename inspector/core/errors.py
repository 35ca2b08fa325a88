"""The typed errors of the public API."""

from __future__ import annotations

from enum import Enum
from pathlib import Path


class PersistenceProblem(str, Enum):
    """What is wrong with a persistence directory or database (`PersistenceError.problem`)."""

    NOT_A_DIRECTORY = "not_a_directory"
    NOT_A_DATABASE = "not_a_database"
    DAMAGED = "damaged"
    CANNOT_OPEN = "cannot_open"
    READ_ONLY = "read_only"
    DISK_FULL = "disk_full"
    IO_ERROR = "io_error"
    NEWER_VERSION = "newer_version"


class PersistenceError(OSError):
    """A persistence directory or database cannot be used; the message names ``path`` and what to do.

    ``problem`` says what kind of failure it is (a `PersistenceProblem`). Raised when a
    peer opens and whenever a write or read fails while it runs, never as a bare
    ``sqlite3`` error. An `OSError`, so code that handles file errors handles it too.
    """

    def __init__(self, path: Path, problem: PersistenceProblem, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.problem = problem
        self.message = message

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.path, self.problem, self.message))


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
            f"The persistence directory {directory} is in use by another peer{detail}. "
            "Close the program using it, or choose another directory."
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
