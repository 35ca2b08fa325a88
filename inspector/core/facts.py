"""The facts of one small peer info document, read from the machine at collection time.

Field names follow the sync SDK's own small peer info document so tools that read
it understand ours. Everything here blocks (disk usage, a walk of the persistence
directory): the peer runs it on its own small executor, never on the event loop.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from inspector._version import __version__

__all__ = ["PACKAGE_LOGGER", "machine_facts"]

PACKAGE_LOGGER = "inspector"

_PROCESS = psutil.Process()
_PLATFORM_NAMES = {"Darwin": "macOS", "Windows": "Windows", "Linux": "Linux"}


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


def machine_facts(directory: Path, database_bytes: int, now: float | None = None) -> dict[str, Any]:
    """The machine-read part of a document (blocking: run it off the event loop)."""
    disk = psutil.disk_usage(str(directory))
    memory = _PROCESS.memory_info()
    now = time.time() if now is None else now
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
