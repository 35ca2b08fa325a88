"""The asyncio tasks a window starts, kept so that closing it leaves none behind.

Widgets start work on the peer (a store read, ``set_sync_scope``) as tasks on the
running loop (qasync's, in the app). A `TaskSet` holds a reference to each task until
it ends, reports failures through `sys.excepthook` (where pytest-qt sees them and
the app prints them), and cancels whatever is left when the window closes.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

from inspector.core.errors import DittoClosedError

__all__ = ["TaskSet"]

T = TypeVar("T")


class TaskSet:
    """Tasks owned by one window; `cancel()` when it closes, then ``await wait_cancelled()``."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T] | None:
        """Run ``coro`` as a task on the running loop; None (and the coroutine closed) once closed."""
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        # The peer closing under a task (the app shutting down) is not a failure.
        if exc is not None and not isinstance(exc, DittoClosedError):
            sys.excepthook(type(exc), exc, exc.__traceback__)

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        """Cancel every task and refuse new ones."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()

    async def wait_cancelled(self) -> None:
        """Cancel, then wait until every task has ended."""
        self.cancel()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
