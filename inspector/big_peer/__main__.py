"""``inspector-big-peer`` / ``python -m inspector.big_peer``: run the Big Peer until SIGTERM or SIGINT.

Once it accepts connections it prints exactly one line to stdout,
``listening on http://HOST:PORT`` (the real port when started with ``--port 0``),
and flushes it; logs go to stderr. On SIGTERM or SIGINT it stops accepting
connections, lets requests in flight finish (at most ``--shutdown-timeout``
seconds), closes the database and exits with code 0.

With ``--workers N`` (N > 1) this process supervises N worker processes that
serve the port together (`inspector.big_peer.workers`); it prints the line once
every worker serves, and on a signal exits once every worker has drained.

Exit codes: 0 after a signal, 1 if it cannot start (address in use, data
directory or database unusable, a worker that cannot start) or, with workers,
if they kept failing to restart or one had to be killed at shutdown, 2 for an
unusable command line (missing tokens included), 130 for an interrupt before it
was set up.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from inspector.big_peer.config import parse_config
from inspector.big_peer.service import configure_logging, serve, tune_garbage_collection
from inspector.big_peer.workers import supervise

__all__ = ["main", "serve"]


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure_logging(config)
    try:
        if config.workers > 1:
            return asyncio.run(supervise(config))
        tune_garbage_collection()
        return asyncio.run(serve(config))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
