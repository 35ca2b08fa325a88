"""Memory that stays flat: a peer, alone and with its window, collecting with 127 KiB metadata.

Each soak runs `peer_driver` in its own process (so nothing of pytest's is counted),
samples its RSS and open file descriptors every so many collections, and fails when
they grow past the budget after warm-up: RSS <= 20 MB, descriptors not at all.
Short counts in the normal run; ``python -m tests.soak --long`` runs 10,000
collections each.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sampling import Samples, count

ROOT = Path(__file__).resolve().parents[2]
RSS_BUDGET = 20 * 2**20


def soak(tmp_path: Path, collections: int, every: int, *options: str) -> Samples:
    env = {**os.environ, "SOAK_TMP": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.soak.peer_driver",
            str(tmp_path / "peer"),
            "--collections",
            str(collections),
            "--every",
            str(every),
            *options,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    samples = Samples(pid=0)
    for line in done.stdout.splitlines():
        point = json.loads(line)
        samples.rss.append(point["rss"])
        samples.fds.append(point["fds"])
        samples.labels.append(f"{point['collections']:,}")
    return samples


@pytest.mark.parametrize("change_every", [0, 100], ids=["unchanged", "changing-every-100"])
def test_a_peer_alone_stays_flat(tmp_path, change_every):
    collections = count(short=600, long=10_000)
    samples = soak(tmp_path, collections, collections // 10, "--change-every", str(change_every))
    print(samples.table())
    samples.assert_flat(warmup=2, max_rss_growth=RSS_BUDGET)


@pytest.mark.parametrize("change_every", [0, 100], ids=["unchanged", "changing-every-100"])
def test_a_peer_with_its_window_and_a_busy_user_stays_flat(tmp_path, change_every):
    collections = count(short=400, long=10_000)
    samples = soak(tmp_path, collections, collections // 10, "--change-every", str(change_every), "--window")
    print(samples.table())
    samples.assert_flat(warmup=2, max_rss_growth=RSS_BUDGET)
