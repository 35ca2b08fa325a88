"""One live peer per persistence directory, across processes.

An exclusive ``flock`` (``LockFileEx`` on Windows) on ``<dir>/.lock``: the kernel
releases it when the holder closes it or dies, so a crashed process never leaves a
stale lock behind. The holder's pid is written into the file for error messages.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from inspector.core.errors import PersistenceDirectoryLockedError

LOCK_FILE = ".lock"


class DirectoryLock:
    """The exclusive lock on one persistence directory (see the module doc)."""

    _fd: int | None = None

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        path = directory / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _try_lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise PersistenceDirectoryLockedError(directory, holder) from None
        self._fd = fd
        try:  # the holder's pid only serves error messages: a full disk must not fail the lock
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError:
            pass

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the descriptor drops the lock

    def __del__(self) -> None:  # a peer dropped without close() must not hold the directory forever
        self.release()


def _read_holder(fd: int) -> str | None:
    try:
        pid = os.pread(fd, 32, 0).decode().strip() if hasattr(os, "pread") else ""
    except OSError:
        return None
    return f"process {pid}" if pid.isdigit() else None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
