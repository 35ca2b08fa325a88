"""The Big Peer service: small peers replicate their small peer info to it over HTTP.

Run it with ``inspector-big-peer`` or ``python -m inspector.big_peer`` (`__main__`;
options in `config`); one process serves with `service`, several with `workers`.
The HTTP contract is in `app`; connections are accepted,
bounded and timed out by `connections`; documents are checked by `documents`; the
fleet summaries, orders and cursors are defined by `fleet`; replays are refused with
the claims of `replay`. Everything is kept by a `storage.BigPeerStorage`: SQLite
(`sqlite_storage`) by default, with no SQL anywhere else. Nothing here imports Qt.
"""
