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


@pytest.fixture(scope="module", params=["compiled", "python"])
def plain_proof(request):
    """Run a module's tests with each proof that a value is plain JSON: the compiled walk and its fallback.

    Module-scoped (hypothesis refuses function-scoped fixtures around its examples): the
    module runs once per proof. The compiled one is skipped where the package was
    installed without a C compiler; `test_metadata_scan` requires it under CI.
    """
    from inspector.core import metadata

    if request.param == "compiled" and metadata._compiled_scan is None:
        pytest.skip("the compiled proof (inspector/core/_plainjson.c) was not built: no C compiler")
    saved = metadata._c_scan
    metadata._c_scan = metadata._compiled_scan if request.param == "compiled" else None
    yield request.param
    metadata._c_scan = saved
