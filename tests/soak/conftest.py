"""The soak suite: short in the normal run, long with ``python -m tests.soak --long``.

A soak test samples RSS and open file descriptors of the process under test
(`sampling.Samples`) and fails when they grow past their budget after warm-up.
"""

from __future__ import annotations

import pytest
from sampling import LONG, Samples, count

__all__ = ["LONG", "Samples", "count"]


@pytest.fixture
def long_run() -> bool:
    return LONG
