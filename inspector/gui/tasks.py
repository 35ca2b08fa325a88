"""The asyncio tasks a window starts, kept so that closing it leaves none behind.

Widgets start work on the peer (a store read, ``set_sync_scope``) as tasks on the
running loop (qasync's, in the app). A `TaskSet` holds a reference to each task until
it ends and cancels whatever is left when the window closes.

A task's failure goes to the ``on_error`` it was spawned with (the widget says what
went wrong, next to what failed). A failure nothing expected is a bug: the window
still says it in a sentence (``report``, its status line), and `sys.excepthook`
gets the traceback (the app prints it on stderr, pytest-qt fails the test).
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from inspector.core.errors import DittoClosedError
from inspector.gui.failures import describe_failure

__all__ = ["TaskSet"]

T = TypeVar("T")


class TaskSet:
    """Tasks owned by one window; `cancel()` when it closes, then ``await wait_cancelled()``."""

    def __init__(self, report: Callable[[str], object] | None = None) -> None:
        """``report(sentence)``: where the window says that a task failed unexpectedly."""
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._report = report

    def spawn(
        self,
        coro: Coroutine[Any, Any, T],
        name: str,
        *,
        on_error: Callable[[Exception], object] | None = None,
    ) -> asyncio.Task[T] | None:
        """Run ``coro`` as a task on the running loop; None (and the coroutine closed) once closed.

        ``on_error(error)`` is told if the task fails (not if it is cancelled, nor if
        the peer closed under it).
        """
        if self._closed:
            coro.close()
            return None
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._finished, on_error))
        return task

    def _finished(self, on_error: Callable[[Exception], object] | None, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        # The peer closing under a task (the app shutting down) is not a failure.
        if exc is None or isinstance(exc, DittoClosedError):
            return
        if on_error is not None and isinstance(exc, Exception):
            on_error(exc)
            return
        if self._report is not None and not self._closed:
            self._report(f"Something went wrong ({task.get_name()}): {describe_failure(exc)}")
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
