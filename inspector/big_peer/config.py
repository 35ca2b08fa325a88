"""The Big Peer's command line: ``inspector-big-peer --host H --port P --data DIR ...``.

The database is SQLite in ``--data`` unless ``--database postgresql://...`` (or
``INSPECTOR_DATABASE_URL``) names a PostgreSQL database; then ``--data`` is not
used, and any number of Big Peer processes, on this machine or others, may serve
that database at once. ``--workers N`` runs N processes on one port here.

The tokens may come from ``INSPECTOR_DEVICE_TOKEN`` / ``INSPECTOR_ADMIN_TOKEN``
instead of the command line (better: the command line is visible to every user
of the machine); an option wins over the environment. The service refuses to
start (exit code 2, the reason on stderr) without both tokens, or with the same
token for both roles, which would let devices read every device's documents.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from inspector._version import __version__

__all__ = [
    "ADMIN_TOKEN_ENV",
    "DATABASE_URL_ENV",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_DOCUMENTS",
    "DEVICE_TOKEN_ENV",
    "BigPeerConfig",
    "default_data_dir",
    "default_max_connections",
    "parse_config",
]

DEVICE_TOKEN_ENV = "INSPECTOR_DEVICE_TOKEN"
ADMIN_TOKEN_ENV = "INSPECTOR_ADMIN_TOKEN"
DATABASE_URL_ENV = "INSPECTOR_DATABASE_URL"
_DATABASE_SCHEMES = ("postgresql://", "postgres://")
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_MAX_DOCUMENTS = 1000
DEFAULT_IDLE_TIMEOUT = 60.0
# File descriptors kept for everything but client connections: the database and its
# write-ahead log, the listening sockets, stdio, the event loop, a refused connection.
_RESERVED_FDS = 100
_MAX_DEFAULT_CONNECTIONS = 10_000
_DATA_DIR_APP_NAME = "small-peer-inspector-big-peer"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(_DATA_DIR_APP_NAME))


def default_max_connections() -> int:
    """Client connections the service holds open by default: what the file descriptor limit allows.

    The soft ``RLIMIT_NOFILE`` less what the service needs besides connections,
    at most 10,000 (each idle connection still costs memory); 1,000 where the
    limit cannot be read.
    """
    if sys.platform == "win32":
        return 1000
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_DEFAULT_CONNECTIONS
    return max(16, min(_MAX_DEFAULT_CONNECTIONS, soft - _RESERVED_FDS))


@dataclass(frozen=True, slots=True)
class BigPeerConfig:
    """Everything the service needs to run."""

    device_token: str = field(repr=False)
    admin_token: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = field(default_factory=default_data_dir)
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_documents: int = DEFAULT_MAX_DOCUMENTS
    shutdown_timeout: float = 30.0
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    """Seconds a connection may go without completing a request, or a body without a byte arriving."""
    max_connections: int = field(default_factory=default_max_connections)
    """Client connections held open at most (by each worker); past it unserved ones are closed, then new
    ones refused."""
    access_log: bool = False
    log_level: str = "INFO"
    database_url: str | None = field(default=None, repr=False)
    """A PostgreSQL URL (``postgresql://USER@HOST:PORT/DB``), or None for SQLite in `data_dir`.

    Not in the repr: a URL may hold a password."""
    workers: int = 1
    """Processes serving the port (`inspector.big_peer.workers`)."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535 (0: any free port), not {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0, not {text}")
    return value


def _timeout(text: str) -> float:
    value = _seconds(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inspector-big-peer",
        description="The Big Peer service: small peers replicate their small peer info to it over HTTP.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=_port,
        default=8080,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"directory of the database, created if missing (default: {default_data_dir()})",
    )
    parser.add_argument(
        "--database",
        default=None,
        metavar="URL",
        help="store everything in this PostgreSQL database (postgresql://USER[:PASSWORD]@HOST[:PORT]/DB) "
        f"instead of SQLite in --data; several Big Peers may serve one database (or ${DATABASE_URL_ENV})",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="processes serving the port, each with its own event loop and database connections; "
        "--max-connections and --idle-timeout apply to each of them (default: %(default)s)",
    )
    parser.add_argument(
        "--device-token", default=None, help=f"bearer token devices write with (or ${DEVICE_TOKEN_ENV})"
    )
    parser.add_argument(
        "--admin-token", default=None, help=f"bearer token dashboards read with (or ${ADMIN_TOKEN_ENV})"
    )
    parser.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_BODY_BYTES,
        help="larger write bodies are refused with 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-documents",
        type=_positive_int,
        default=DEFAULT_MAX_DOCUMENTS,
        help="writes with more documents are refused with 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=_seconds,
        default=30.0,
        help="seconds requests in flight may take to finish after SIGTERM/SIGINT (default: %(default)s)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_timeout,
        default=DEFAULT_IDLE_TIMEOUT,
        help="seconds a connection may take to send a complete request (head), or go without a byte of "
        "the body it is sending, before it is closed; also how long an idle keep-alive connection "
        "stays open (default: %(default)s)",
    )
    parser.add_argument(
        "--max-connections",
        type=_positive_int,
        default=None,
        help="client connections held open at most (by each worker, with --workers); at the bound the "
        "oldest one that sent no request yet is closed for a new one, and if there is none the new one "
        "is answered 503 and closed "
        f"(default: from the open-file limit, here {default_max_connections()})",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="(default: %(default)s)",
    )
    return parser


def _token_problem(token: str) -> str | None:
    if not token:
        return "is empty"
    if not all("!" <= character <= "~" for character in token):
        return "must be printable ASCII without spaces (it travels in an Authorization header)"
    return None


def parse_config(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> BigPeerConfig:
    """The configuration from the command line and environment; exits with code 2 if it is unusable."""
    environ = os.environ if environ is None else environ
    parser = _parser()
    args = parser.parse_args(argv)
    tokens = {}
    for role, option, env in (
        ("device", args.device_token, DEVICE_TOKEN_ENV),
        ("admin", args.admin_token, ADMIN_TOKEN_ENV),
    ):
        token = option if option is not None else environ.get(env)
        if token is None:
            parser.error(f"no {role} token: pass --{role}-token or set {env}; the Big Peer never runs open")
        problem = _token_problem(token)
        if problem is not None:
            parser.error(f"the {role} token {problem}")
        tokens[role] = token
    if tokens["device"] == tokens["admin"]:
        parser.error("the device token and the admin token must differ: the device token must not read")
    database_url = args.database if args.database is not None else environ.get(DATABASE_URL_ENV) or None
    if database_url is not None and not database_url.startswith(_DATABASE_SCHEMES):
        parser.error(
            "the database URL must start with postgresql:// (SQLite needs no URL: it lives in --data)"
        )
    return BigPeerConfig(
        device_token=tokens["device"],
        admin_token=tokens["admin"],
        host=args.host,
        port=args.port,
        data_dir=args.data if args.data is not None else default_data_dir(),
        max_body_bytes=args.max_body_bytes,
        max_documents=args.max_documents,
        shutdown_timeout=args.shutdown_timeout,
        idle_timeout=args.idle_timeout,
        max_connections=args.max_connections or default_max_connections(),
        access_log=args.access_log,
        log_level=args.log_level,
        database_url=database_url,
        workers=args.workers,
    )
