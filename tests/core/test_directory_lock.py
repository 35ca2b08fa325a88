"""One live Ditto per persistence directory, across processes; released by close() and by death."""

import signal
import subprocess
import sys
import textwrap

import pytest

from inspector import Ditto, PersistenceDirectoryLockedError, PersistenceError

HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from inspector import Ditto

    async def main():
        peer = Ditto(sys.argv[1])
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await peer.close()
        print("closed", flush=True)

    asyncio.run(main())
    """
)


def start_holder(directory):
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    return process


def stop(process):
    process.kill()
    process.wait(timeout=30)
    for pipe in (process.stdin, process.stdout):
        if not pipe.closed:
            pipe.close()


async def test_second_ditto_in_the_same_process_is_refused(peer_dir):
    async with Ditto(peer_dir):
        with pytest.raises(PersistenceDirectoryLockedError) as info:
            Ditto(peer_dir)
        assert str(peer_dir) in str(info.value)


async def test_close_releases_the_directory(peer_dir):
    first = Ditto(peer_dir)
    await first.close()
    async with Ditto(peer_dir):
        pass


async def test_another_process_holding_the_directory_blocks_us_until_it_closes(peer_dir):
    holder = start_holder(peer_dir)
    try:
        with pytest.raises(PersistenceDirectoryLockedError, match=str(peer_dir)):
            Ditto(peer_dir)
        holder.stdin.close()
        assert holder.stdout.readline().strip() == "closed"
        assert holder.wait(timeout=30) == 0
        async with Ditto(peer_dir):
            pass
    finally:
        stop(holder)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_a_killed_process_releases_the_directory(peer_dir):
    holder = start_holder(peer_dir)
    with pytest.raises(PersistenceDirectoryLockedError):
        Ditto(peer_dir)
    holder.send_signal(signal.SIGKILL)
    stop(holder)
    async with Ditto(peer_dir) as peer:
        peer.small_peer_info.metadata = {"after": "crash"}
    async with Ditto(peer_dir) as peer:
        assert peer.small_peer_info.metadata == {"after": "crash"}


async def test_locked_error_leaves_the_holder_working(peer_dir):
    async with Ditto(peer_dir) as holder:
        with pytest.raises(PersistenceDirectoryLockedError):
            Ditto(peer_dir)
        holder.small_peer_info.metadata = {"still": "works"}
        assert holder.small_peer_info.metadata == {"still": "works"}


def test_a_lock_file_that_cannot_be_opened_is_a_persistence_error(peer_dir):
    peer_dir.mkdir(parents=True, exist_ok=True)
    (peer_dir / ".lock").mkdir()
    with pytest.raises(PersistenceError, match=r"\.lock") as caught:
        Ditto(peer_dir)
    assert not isinstance(caught.value, PersistenceDirectoryLockedError)
    assert sorted(p.name for p in peer_dir.iterdir()) == [".lock"]  # nothing else was made
