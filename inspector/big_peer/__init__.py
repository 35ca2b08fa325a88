"""The Big Peer service: small peers replicate their small peer info to it over HTTP.

Run it with ``inspector-big-peer`` or ``python -m inspector.big_peer`` (`__main__`;
options in `config`). The HTTP contract is in `app`; documents are checked by
`documents`, replayed writes refused by `replay`, and kept by a `storage.BigPeerStorage`
(SQLite by default). Nothing here imports Qt.
"""
