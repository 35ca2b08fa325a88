"""Counts and samples of the soak suite (imported by its tests and its conftest)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import psutil

LONG = os.environ.get("INSPECTOR_SOAK_LONG") == "1"


def count(short: int, long: int) -> int:
    """How many times to do something: ``short`` in the normal run, ``long`` in the long run."""
    return long if LONG else short


@dataclass
class Samples:
    """RSS (bytes) and open file descriptors of one process, sampled as a soak runs."""

    pid: int
    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)

    def take(self, label: str = "") -> None:
        process = psutil.Process(self.pid)
        self.rss.append(process.memory_info().rss)
        self.fds.append(process.num_fds())
        self.labels.append(label)

    def table(self) -> str:
        return "\n".join(
            f"{label:>12}  RSS {rss / 2**20:8.1f} MiB  fds {fds}"
            for label, rss, fds in zip(self.labels, self.rss, self.fds, strict=True)
        )

    def assert_flat(self, *, warmup: int, max_rss_growth: int, max_fd_growth: int = 0) -> None:
        """After ``warmup`` samples: RSS grew at most ``max_rss_growth`` bytes, fds at most as given."""
        assert len(self.rss) > warmup, "too few samples"
        base_rss, base_fds = self.rss[warmup], self.fds[warmup]
        growth = max(self.rss[warmup:]) - base_rss
        fd_growth = max(self.fds[warmup:]) - base_fds
        assert growth <= max_rss_growth, (
            f"RSS grew {growth / 2**20:.1f} MiB after warm-up "
            f"(budget {max_rss_growth / 2**20:.0f} MiB):\n{self.table()}"
        )
        assert fd_growth <= max_fd_growth, f"open file descriptors grew by {fd_growth}:\n{self.table()}"
