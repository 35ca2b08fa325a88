"""The reliability suite: small counts in the normal run;
full ones with ``python -m tests.reliability --full``.
"""

from __future__ import annotations

import pytest
from counts import FULL, count

__all__ = ["FULL", "count"]


@pytest.fixture
def full_run() -> bool:
    return FULL
