"""How the window says what went wrong, in a sentence for people (never a traceback).

A failed read of the Big Peer names its cause (a refused token, an answer that
cannot be used, an unreachable or failing service); anything else says what its
error says (a `PersistenceError` names the file and what to do).
"""

from __future__ import annotations

from inspector.history.remote import BigPeerProtocolError, TokenRefusedError

__all__ = ["describe_failure"]


def describe_failure(error: BaseException) -> str:
    """``error`` as a sentence (capitalised, without the final stop) for a status line."""
    if isinstance(error, TokenRefusedError):
        return (
            "The admin token was refused: check INSPECTOR_ADMIN_TOKEN, "
            "or use File → Open Big Peer… with the right one"
        )
    if isinstance(error, BigPeerProtocolError):
        return f"The Big Peer's answer could not be used: {error}"
    text = str(error) or type(error).__name__  # unreachable, slow, failing (5xx): the error says which
    return text[:1].upper() + text[1:]
