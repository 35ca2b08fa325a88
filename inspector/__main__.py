"""``small-peer-inspector`` and ``python -m inspector``: the inspector window.

The command line is parsed before Qt is imported, so ``--help``, ``--version`` and
usage errors answer quickly, with or without a display.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from inspector._version import __version__
from inspector.core.limits import MIN_INTERVAL

__all__ = ["ADMIN_TOKEN_ENV", "TOKEN_ENV", "build_parser", "main"]

PROG = "small-peer-inspector"
TOKEN_ENV = "INSPECTOR_BIG_PEER_TOKEN"
ADMIN_TOKEN_ENV = "INSPECTOR_ADMIN_TOKEN"


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(seconds) or seconds < MIN_INTERVAL:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_INTERVAL} seconds, got {text}")
    return seconds


def _device_name(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def _url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"must be an http:// or https:// URL, got {text!r}")
    return text.rstrip("/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See and steer the small peer info this device collects and reports to the Big Peer.",
        epilog=f"The Big Peer token is read from the {TOKEN_ENV} environment variable, never from the "
        f"command line; with --fleet, the admin token from {ADMIN_TOKEN_ENV} (or the system keyring, "
        "where File → Open Big Peer… remembered it). Window geometry is remembered per user (QSettings).",
    )
    parser.add_argument(
        "--dir",
        metavar="PATH",
        type=Path,
        help="the peer's persistence directory (default: the platform's user data directory, "
        "e.g. ~/.local/share/small-peer-inspector/peer)",
    )
    parser.add_argument(
        "--interval",
        metavar="S",
        type=_interval,
        default=300.0,
        help="seconds between two collections while collection is on (default: 300)",
    )
    parser.add_argument("--big-peer", metavar="URL", type=_url, help="the Big Peer to replicate to")
    parser.add_argument(
        "--device-name", metavar="NAME", type=_device_name, help="the device name (default: the host name)"
    )
    parser.add_argument(
        "--fleet",
        metavar="URL",
        type=_url,
        help="open the fleet window of the Big Peer at URL (every device reporting to it, read-only) "
        "instead of a peer",
    )
    parser.add_argument(
        "--install-desktop-entry",
        action="store_true",
        help="add the inspector to the desktop's application menu (XDG, with its icon), then exit",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the window; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(name)s: %(levelname)s: %(message)s")
    if args.install_desktop_entry:
        from inspector.desktop import install_desktop_entry

        for path in install_desktop_entry():
            print(f"wrote {path}")
        return 0

    from inspector.gui.app import Options, run  # Qt only now that a window is wanted

    return run(
        Options(
            directory=args.dir,
            interval=args.interval,
            big_peer_url=args.big_peer,
            big_peer_token=os.environ.get(TOKEN_ENV) or None,
            device_name=args.device_name,
            fleet_url=args.fleet,
            admin_token=(os.environ.get(ADMIN_TOKEN_ENV) or None) if args.fleet else None,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
