"""The peer's identity: an Ed25519 key pair kept in the persistence directory.

The peer key is the public key, encoded as printable ASCII: ``"pk"`` followed by
the unpadded base64url of the 32 raw public-key bytes (45 characters). Writes to
the Big Peer are signed with the private key; the Big Peer verifies a request
with `verify_request`, so both sides share one definition of what is signed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from inspector.core.errors import PersistenceError, PersistenceProblem

__all__ = [
    "NONCE_HEADER",
    "PEER_KEY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "Identity",
    "InvalidPeerKeyError",
    "decode_peer_key",
    "encode_peer_key",
    "signed_message",
    "verify_request",
]

KEY_FILE = "identity.key"
PEER_KEY_PREFIX = "pk"

# Headers of a signed write to the Big Peer.
PEER_KEY_HEADER = "X-Peer-Key"
TIMESTAMP_HEADER = "X-Peer-Timestamp"
NONCE_HEADER = "X-Peer-Nonce"
SIGNATURE_HEADER = "X-Peer-Signature"
_CONTEXT = b"small-peer-info/v1"


class InvalidPeerKeyError(ValueError):
    """The text is not a peer key this package issues."""


def encode_peer_key(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes_raw()
    return PEER_KEY_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_peer_key(peer_key: str) -> Ed25519PublicKey:
    if not isinstance(peer_key, str) or not peer_key.startswith(PEER_KEY_PREFIX) or len(peer_key) != 45:
        raise InvalidPeerKeyError(f"not a peer key: {str(peer_key)[:60]!r}")
    try:
        raw = base64.urlsafe_b64decode(peer_key[len(PEER_KEY_PREFIX) :] + "=")
        if encode_peer_key(Ed25519PublicKey.from_public_bytes(raw)) != peer_key:
            raise ValueError("non-canonical encoding")
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise InvalidPeerKeyError(f"not a peer key: {peer_key!r} ({exc})") from None


def signed_message(method: str, path: str, peer_key: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """The exact bytes a request signature covers: the request line, identity, freshness, body hash."""
    return b"\n".join(
        [
            _CONTEXT,
            method.upper().encode("ascii"),
            path.encode("utf-8"),
            peer_key.encode("ascii"),
            timestamp.encode("ascii"),
            nonce.encode("ascii"),
            hashlib.sha256(body).hexdigest().encode("ascii"),
        ]
    )


@dataclass(frozen=True, slots=True)
class Identity:
    """The key pair of one peer."""

    private_key: Ed25519PrivateKey
    peer_key: str

    @classmethod
    def load(cls, directory: Path) -> Identity | None:
        """The identity kept in ``directory``, or None if it has none yet."""
        path = directory / KEY_FILE
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except IsADirectoryError:
            raw = b""
        if len(raw) != 32:
            raise PersistenceError(
                path,
                PersistenceProblem.DAMAGED,
                f"The peer's key file {path} is damaged ({len(raw)} bytes, expected 32). "
                "Restore it from a backup to keep this peer's identity, or move it aside: "
                "the peer then starts with a new peer key.",
            )
        key = Ed25519PrivateKey.from_private_bytes(raw)
        return cls(key, encode_peer_key(key.public_key()))

    @classmethod
    def create(cls, directory: Path) -> Identity:
        """A new identity, written to ``directory`` (readable by this user only)."""
        key = Ed25519PrivateKey.generate()
        path = directory / KEY_FILE
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, key.private_bytes_raw())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return cls(key, encode_peer_key(key.public_key()))

    @classmethod
    def load_or_create(cls, directory: Path) -> Identity:
        return cls.load(directory) or cls.create(directory)

    def sign(self, message: bytes) -> bytes:
        return self.private_key.sign(message)

    def request_headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        """Headers that prove this peer sent ``body`` to ``path`` just now."""
        timestamp = str(int(time.time() * 1000))
        nonce = secrets.token_hex(16)
        signature = self.sign(signed_message(method, path, self.peer_key, timestamp, nonce, body))
        return {
            PEER_KEY_HEADER: self.peer_key,
            TIMESTAMP_HEADER: timestamp,
            NONCE_HEADER: nonce,
            SIGNATURE_HEADER: base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii"),
        }


def verify_request(
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now_ms: int | None = None,
    max_skew_ms: int = 300_000,
) -> tuple[str, str, int]:
    """Check a signed request; return ``(peer_key, nonce, timestamp_ms)`` or raise ValueError.

    The caller remembers nonces for ``max_skew_ms`` to refuse replays.
    """
    get = headers.get
    peer_key, timestamp, nonce, signature = (
        get(PEER_KEY_HEADER),
        get(TIMESTAMP_HEADER),
        get(NONCE_HEADER),
        get(SIGNATURE_HEADER),
    )
    if not (peer_key and timestamp and nonce and signature):
        raise ValueError(
            f"a signed write needs the headers {PEER_KEY_HEADER}, {TIMESTAMP_HEADER}, "
            f"{NONCE_HEADER} and {SIGNATURE_HEADER}"
        )
    public_key = decode_peer_key(peer_key)
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 16:
        raise ValueError(f"{TIMESTAMP_HEADER} must be milliseconds since the epoch")
    if not nonce.isascii() or not 16 <= len(nonce) <= 64 or not nonce.isalnum():
        raise ValueError(f"{NONCE_HEADER} must be 16 to 64 letters or digits")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    if abs(now - int(timestamp)) > max_skew_ms:
        raise ValueError(f"{TIMESTAMP_HEADER} is more than {max_skew_ms // 1000} s from the Big Peer's clock")
    try:
        raw_signature = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        public_key.verify(raw_signature, signed_message(method, path, peer_key, timestamp, nonce, body))
    except (ValueError, InvalidSignature):
        raise ValueError("the signature does not match the peer key and body") from None
    return peer_key, nonce, int(timestamp)
