"""Collects the facts of one small peer info document from the machine.

Field names follow the sync SDK's own small peer info document so tools that read
it understand ours; everything here is read from the machine at collection time.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from inspector._version import __version__

__all__ = ["format_timestamp", "machine_facts", "parse_timestamp"]

PACKAGE_LOGGER = "inspector"

_PROCESS = psutil.Process()
_PLATFORM_NAMES = {"Darwin": "macOS", "Windows": "Windows", "Linux": "Linux"}


def format_timestamp(ts_ms: int) -> str:
    """ISO-8601 UTC, fixed width with milliseconds: ``2026-11-26T05:38:12.345Z``."""
    seconds, ms = divmod(ts_ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def parse_timestamp(text: str) -> int:
    """Milliseconds since the epoch of a ``last_updated_at`` text (ValueError if it is not one)."""
    if not isinstance(text, str) or len(text) != 24 or not text.endswith("Z") or text[19] != ".":
        raise ValueError(f"not a last_updated_at timestamp (like 2026-11-26T05:38:12.345Z): {text!r}")
    moment = datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    if not text[20:23].isdigit():
        raise ValueError(f"not a last_updated_at timestamp: {text!r}")
    return int(moment.timestamp()) * 1000 + int(text[20:23])


def _directory_bytes(directory: Path) -> int:
    total = 0
    stack = [directory]
    while stack:
        current = stack.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(Path(entry.path))
                        else:
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total


def _logs_config() -> dict[str, Any]:
    logger = logging.getLogger(PACKAGE_LOGGER)
    level = logger.getEffectiveLevel()
    return {
        "enabled": not logger.disabled and logger.isEnabledFor(level),
        "minimum_level": logging.getLevelName(level).lower(),
    }


def machine_facts(directory: Path, database_bytes: int) -> dict[str, Any]:
    """The machine-read part of a document (blocking: run it off the event loop)."""
    disk = psutil.disk_usage(str(directory))
    memory = _PROCESS.memory_info()
    now = time.time()
    return {
        "ditto_sdk_language": "Python",
        "ditto_sdk_platform": _PLATFORM_NAMES.get(platform.system(), platform.system() or sys.platform),
        "ditto_sdk_version": __version__,
        "device_disk_usage": {
            "device_total": disk.total,
            "device_available": disk.free,
            "ditto_total": _directory_bytes(directory),
            "ditto_store": database_bytes,
        },
        "logs_config": _logs_config(),
        "os": {
            "name": platform.system(),
            "release": platform.release(),
            "version": platform.version(),
            "machine": platform.machine(),
        },
        "python_version": platform.python_version(),
        "system_uptime_seconds": round(now - psutil.boot_time(), 3),
        "process": {
            "pid": os.getpid(),
            "uptime_seconds": round(now - _PROCESS.create_time(), 3),
            "memory_rss_bytes": memory.rss,
            "cpu_count": os.cpu_count(),
        },
    }
