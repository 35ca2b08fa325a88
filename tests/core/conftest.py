import pytest

from inspector import Ditto


@pytest.fixture
def peer_dir(tmp_path):
    return tmp_path / "peer"


@pytest.fixture
async def ditto(peer_dir):
    peer = Ditto(peer_dir, device_name="test-device", small_peer_info_interval=0.1)
    yield peer
    await peer.close()
