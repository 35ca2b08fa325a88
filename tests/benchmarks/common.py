"""What every benchmark reports: a measurement, its baseline from the same run, and its budget.

A benchmark module ``bench_*.py`` defines ``run(args) -> list[Result]`` (``args`` from
its own ``add_arguments(parser)``, if it has one) and ends with::

    if __name__ == "__main__":
        sys.exit(common.main(run, __doc__, add_arguments))

Run alone it prints its table and exits 1 when a budget is missed. ``python -m
tests.benchmarks`` runs every module, each in its own process (a Qt benchmark needs a
fresh QApplication), and prints one table of all of them.

Budgets are what the issues state, in one of three forms, and every row prints its
ratio against the baseline whatever the form:

* ``max_ratio``: measured / baseline must not exceed it (``<= 2.0x orjson.loads``);
* ``max_value``: the measurement itself (``<= 150 ms``, ``<= 4096 B/doc``);
* ``max_extra``: measured - baseline (``<= 300 ms more than the window without it``).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["Result", "best_of", "main", "median_of", "print_table", "run_on_qt"]


@dataclass(frozen=True)
class Result:
    group: str
    name: str
    measured: float
    baseline: float
    baseline_name: str
    unit: str
    max_ratio: float | None = None
    max_value: float | None = None
    max_extra: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.measured / self.baseline if self.baseline else float("inf")

    @property
    def ok(self) -> bool:
        checks = []
        if self.max_ratio is not None:
            checks.append(self.ratio <= self.max_ratio)
        if self.max_value is not None:
            checks.append(self.measured <= self.max_value)
        if self.max_extra is not None:
            checks.append(self.measured - self.baseline <= self.max_extra)
        return all(checks)

    @property
    def budget(self) -> str:
        parts = []
        if self.max_ratio is not None:
            parts.append(f"<= {self.max_ratio:g}x")
        if self.max_value is not None:
            parts.append(f"<= {_number(self.max_value)} {self.unit}")
        if self.max_extra is not None:
            parts.append(f"<= +{_number(self.max_extra)} {self.unit}")
        return ", ".join(parts) or "(reported)"


def _number(value: float) -> str:
    if value == 0 or abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def print_table(results: Sequence[Result], file: Any = None) -> None:
    out = file or sys.stdout
    rows = [
        (
            r.group,
            r.name,
            f"{_number(r.measured)} {r.unit}",
            f"{_number(r.baseline)} {r.unit} ({r.baseline_name})",
            f"{r.ratio:.2f}x",
            r.budget,
            "ok" if r.ok else "MISSED",
        )
        for r in results
    ]
    header = ("group", "measurement", "measured", "baseline (same run)", "ratio", "budget", "")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)), file=out)
    for r in results:
        if r.note:
            print(f"  note: {r.group} / {r.name}: {r.note}", file=out)


def best_of(fn: Callable[[], object], repeat: int = 7, number: int = 20) -> float:
    """The best mean time per call (seconds) over ``repeat`` runs of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def median_of(samples: Iterable[float]) -> float:
    return statistics.median(list(samples))


def run_on_qt(measure: Callable[[], Coroutine[Any, Any, list[Result]]]) -> list[Result]:
    """Run a Qt benchmark's coroutine on qasync's loop, the application configured as the app does."""
    import asyncio

    import qasync
    from PySide6.QtWidgets import QApplication

    from inspector.gui.app import configure_application

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    configure_application(app)  # as the app runs: its style sheet, and no quitting on close
    with asyncio.Runner(loop_factory=lambda: qasync.QEventLoop(app)) as runner:
        return runner.run(measure())


def main(
    run: Callable[[argparse.Namespace], list[Result]],
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
    argv: Sequence[str] | None = None,
) -> int:
    parser = argparse.ArgumentParser(
        description=(doc or "").strip().splitlines()[0] if doc else None,
        epilog="Exits 1 when a budget is missed.",
    )
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument("--json", type=Path, help="also write the results to this file (for the runner)")
    if add_arguments is not None:
        add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(args)
    print_table(results)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in results]))
    return 0 if all(r.ok for r in results) else 1
