"""Small peer info: peer core, inspector window, Big Peer service."""
