"""Run every benchmark, each in its own process, and print one table: ``python -m tests.benchmarks``.

``python -m tests.benchmarks [--quick] [NAME ...]`` (a NAME selects ``bench_NAME.py``);
exits 1 when any budget is missed or any benchmark fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from tests.benchmarks.common import Result, print_table

HERE = Path(__file__).resolve().parent


def settle(busy_percent: float = 15.0, patience: float = 30.0) -> None:
    """Wait (at most ``patience`` s) until the machine is quiet: what one benchmark leaves behind
    (a server flushing, a process exiting) must not be measured by the next one."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline:
        if psutil.cpu_percent(interval=1.0) < busy_percent:
            return
    print(f"   (the machine stayed over {busy_percent:.0f}% busy for {patience:.0f} s: measuring anyway)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts, for a smoke run")
    parser.add_argument(
        "--keep",
        type=Path,
        help="a directory where benchmarks that generate big data sets (a million documents) keep them "
        "for the next run, one subdirectory each",
    )
    parser.add_argument("names", nargs="*", help="only these benchmarks (bench_NAME.py)")
    args = parser.parse_args()
    modules = sorted(HERE.glob("bench_*.py"))
    if args.names:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in args.names]
        if not modules:
            parser.error(f"no benchmark named {args.names}")
    results: list[Result] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for module in modules:
            out = Path(tmp) / f"{module.stem}.json"
            command = [sys.executable, "-m", f"tests.benchmarks.{module.stem}", "--json", str(out)]
            if args.quick:
                command.append("--quick")
            if args.keep is not None and '"--keep"' in module.read_text():
                command += ["--keep", str(args.keep.resolve() / module.stem)]
            print(f"== {module.stem}", flush=True)
            settle()
            started = time.perf_counter()
            code = subprocess.call(command, cwd=HERE.parent.parent)
            print(f"   ({time.perf_counter() - started:.0f} s, exit {code})", flush=True)
            if out.exists():
                results.extend(Result(**row) for row in json.loads(out.read_text()))
            if code not in (0, 1) or not out.exists():
                failed.append(module.stem)
    print("\n== all benchmarks")
    print_table(results)
    if failed:
        print(f"\nfailed to run: {', '.join(failed)}")
    missed = [r for r in results if not r.ok]
    print(f"\n{len(results)} measurements, {len(missed)} missed their budget")
    return 1 if failed or missed else 0


if __name__ == "__main__":
    sys.exit(main())
