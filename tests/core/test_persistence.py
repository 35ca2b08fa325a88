"""Directories and databases that cannot be used: a typed error that names the file and what to do.

Every failure raises `PersistenceError` (an `OSError`) with the path and advice,
changes nothing on disk and leaves the directory unlocked. A full disk never loses
an accepted setting silently. Full and read-only disks are real tmpfs mounts.
"""

import asyncio
import os
import sqlite3

import pytest
from waiting import wait_for

from inspector import (
    Ditto,
    PersistenceChanged,
    PersistenceError,
    PersistenceProblem,
    SmallPeerInfoSyncScope,
)
from inspector.core.store import DATABASE_FILE


def files_of(directory):
    """Every file below ``directory`` with its bytes (the lock file aside: it is ours to make)."""
    return {
        path.relative_to(directory): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def assert_unlocked(directory):
    """The directory is free again: opening it does not say it is in use."""
    try:
        Ditto(directory)
    except PersistenceError:
        pass  # the same problem again, not "in use"
    else:
        raise AssertionError("expected the same PersistenceError on a second try")


def test_a_file_that_is_not_a_database_is_refused_naming_it(tmp_path):
    directory = tmp_path / "peer"
    directory.mkdir()
    (directory / DATABASE_FILE).write_bytes(b"this is a text file, not SQLite\n" * 200)
    before = files_of(directory)

    with pytest.raises(PersistenceError) as raised:
        Ditto(directory)

    error = raised.value
    assert isinstance(error, OSError)
    assert error.problem is PersistenceProblem.NOT_A_DATABASE
    assert error.path == directory / DATABASE_FILE
    assert str(directory / DATABASE_FILE) in str(error)
    assert "Move it aside" in str(error)
    assert files_of(directory) == before
    assert_unlocked(directory)


def test_a_sqlite_file_of_another_program_is_refused_untouched(tmp_path):
    directory = tmp_path / "peer"
    directory.mkdir()
    with sqlite3.connect(directory / DATABASE_FILE) as other:
        other.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    other.close()
    before = files_of(directory)

    with pytest.raises(PersistenceError) as raised:
        Ditto(directory)

    assert raised.value.problem is PersistenceProblem.NOT_A_DATABASE
    assert files_of(directory) == before


def test_a_directory_where_the_database_should_be_is_refused(tmp_path):
    directory = tmp_path / "peer"
    (directory / DATABASE_FILE).mkdir(parents=True)

    with pytest.raises(PersistenceError) as raised:
        Ditto(directory)

    assert raised.value.problem is PersistenceProblem.CANNOT_OPEN
    assert str(raised.value).startswith(f"The peer's database {directory / DATABASE_FILE} is a directory")
    assert_unlocked(directory)


def test_a_file_given_as_the_directory_is_refused_in_plain_words(tmp_path):
    path = tmp_path / "not-a-directory"
    path.write_text("hello")

    with pytest.raises(PersistenceError) as raised:
        Ditto(path)

    assert raised.value.problem is PersistenceProblem.NOT_A_DIRECTORY
    assert str(raised.value) == (
        f"The persistence directory {path} is a file, not a directory. "
        "Choose another path, or move the file aside."
    )
    assert path.read_text() == "hello"


def test_a_damaged_key_file_is_refused_without_creating_a_database(tmp_path):
    directory = tmp_path / "peer"
    directory.mkdir()
    (directory / "identity.key").write_bytes(b"short")

    with pytest.raises(PersistenceError) as raised:
        Ditto(directory)

    assert raised.value.problem is PersistenceProblem.DAMAGED
    assert "new peer key" in str(raised.value)
    assert not (directory / DATABASE_FILE).exists()


def test_a_database_from_a_newer_version_is_refused_untouched(tmp_path):
    directory = tmp_path / "peer"
    directory.mkdir()
    with sqlite3.connect(directory / DATABASE_FILE) as newer:
        newer.execute("PRAGMA user_version = 99")
    newer.close()
    before = files_of(directory)

    with pytest.raises(PersistenceError) as raised:
        Ditto(directory)

    assert raised.value.problem is PersistenceProblem.NEWER_VERSION
    assert files_of(directory) == before


def persistence_events(peer):
    events = []
    peer.small_peer_info.observe(lambda e: events.append(e) if isinstance(e, PersistenceChanged) else None)
    return events


def damage(path, fraction_from=0.5):
    """Overwrite the database from ``fraction_from`` of its length on with garbage pages."""
    size = path.stat().st_size
    with open(path, "r+b") as file:
        file.seek(int(size * fraction_from) // 4096 * 4096)
        file.write(os.urandom(size - file.tell()))


async def filled_peer(directory, documents=400):
    async with Ditto(directory, small_peer_info_interval=300) as peer:
        peer.small_peer_info.metadata = {"padding": "x" * 2000}
        peer.small_peer_info.is_enabled = True
        for i in range(documents):
            peer.small_peer_info.metadata = {"padding": "x" * 2000, "i": i}
            await peer.small_peer_info.collect_now()
        await peer.store.checkpoint()


async def test_a_database_damaged_after_start_is_reported_once_and_the_rest_keeps_working(tmp_path):
    directory = tmp_path / "peer"
    await filled_peer(directory)

    async with Ditto(directory, small_peer_info_interval=300) as peer:
        damage(directory / DATABASE_FILE, 0.3)  # pages the running peer has not read yet
        events = persistence_events(peer)
        for _ in range(3):
            with pytest.raises(PersistenceError) as raised:
                await peer.small_peer_info.history(limit=1000)
            assert raised.value.problem in (PersistenceProblem.DAMAGED, PersistenceProblem.NOT_A_DATABASE)
            assert str(directory / DATABASE_FILE) in str(raised.value)
        await wait_for(lambda: events)
        await asyncio.sleep(0.05)
        assert len(events) == 1  # told once, however often it is met
        assert events[0].error.problem is PersistenceProblem.DAMAGED
        assert peer.persistence_problem is events[0].error
        # What does not touch the damaged pages still works.
        assert peer.small_peer_info.is_enabled is True
        assert await peer.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


# --- full and read-only disks ----------------------------------------------------------------------


def fill(directory, leave=0):
    """Fill the filesystem of ``directory`` until at most ``leave`` bytes are free."""
    filler = directory / "filler"
    with open(filler, "wb") as file:
        chunk = b"\0" * 65536
        try:
            while True:
                file.write(chunk)
                file.flush()
        except OSError:
            pass
    if leave:
        with open(filler, "r+b") as file:
            file.truncate(max(0, filler.stat().st_size - leave))
    return filler


async def test_metadata_set_while_the_disk_is_full_lands_once_space_is_freed(small_disk):
    disk = small_disk(4 * 2**20)
    directory = disk / "peer"
    async with Ditto(directory, small_peer_info_interval=300) as peer:
        await peer.store.checkpoint()
        events = persistence_events(peer)
        filler = fill(disk)

        peer.small_peer_info.metadata = {"big": "y" * 100_000}

        await wait_for(lambda: events and events[-1].error is not None)
        assert events[-1].error.problem is PersistenceProblem.DISK_FULL
        assert "Free some space" in str(events[-1].error)
        assert peer.small_peer_info.metadata == {"big": "y" * 100_000}  # accepted, waiting to land
        filler.unlink()
        await wait_for(lambda: events[-1].error is None, timeout=30)
        assert peer.persistence_problem is None
    async with Ditto(directory) as reopened:
        assert reopened.small_peer_info.metadata == {"big": "y" * 100_000}


async def test_close_says_when_a_setting_never_landed_and_still_releases_the_directory(small_disk):
    disk = small_disk(4 * 2**20)
    directory = disk / "peer"
    peer = Ditto(directory, small_peer_info_interval=300)
    await peer.store.checkpoint()
    fill(disk)
    peer.small_peer_info.metadata = {"big": "z" * 100_000}

    with pytest.raises(PersistenceError) as raised:
        await peer.close()

    assert raised.value.problem is PersistenceProblem.DISK_FULL
    assert "never saved" in str(raised.value)
    (disk / "filler").unlink()
    async with Ditto(directory) as reopened:  # not locked: the same process opens it again
        assert reopened.small_peer_info.metadata == {}


async def test_the_sync_scope_cannot_change_on_a_full_disk_and_says_why(small_disk):
    disk = small_disk(4 * 2**20)
    directory = disk / "peer"
    async with Ditto(directory) as peer:
        await peer.store.checkpoint()
        filler = fill(disk)
        with pytest.raises(PersistenceError) as raised:
            await peer.small_peer_info.set_sync_scope("BigPeerOnly")
        assert raised.value.problem is PersistenceProblem.DISK_FULL
        assert await peer.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY
        filler.unlink()
        await peer.small_peer_info.set_sync_scope("BigPeerOnly")
        assert await peer.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.BIG_PEER_ONLY


async def test_collecting_on_a_full_disk_raises_a_persistence_error(small_disk):
    disk = small_disk(4 * 2**20)
    async with Ditto(disk / "peer", small_peer_info_interval=300) as peer:
        peer.small_peer_info.metadata = {"x": "x" * 50_000}
        await peer.store.checkpoint()
        peer.small_peer_info.is_enabled = True
        await wait_for(lambda: peer.small_peer_info.last_collected_at is not None)
        filler = fill(disk)

        async def collect_until_it_fails():
            for i in range(50):  # the write-ahead log has some room left: fill it
                peer.small_peer_info.metadata = {"x": "x" * 50_000, "i": i}
                await peer.small_peer_info.collect_now()

        with pytest.raises(PersistenceError) as raised:
            await collect_until_it_fails()
        assert raised.value.problem is PersistenceProblem.DISK_FULL
        filler.unlink()


async def test_opening_on_a_full_disk_fails_and_leaves_the_directory_unlocked(small_disk):
    disk = small_disk(2 * 2**20)
    directory = disk / "peer"
    directory.mkdir()
    filler = fill(disk)

    with pytest.raises(PersistenceError) as raised:
        Ditto(directory)

    assert raised.value.problem is PersistenceProblem.DISK_FULL
    filler.unlink()
    async with Ditto(directory) as peer:  # the same process may open it once there is room
        assert peer.small_peer_info.is_enabled is False


async def test_a_read_only_directory_is_refused_with_what_to_do(small_disk):
    disk = small_disk(2 * 2**20)
    async with Ditto(disk / "peer") as peer:
        peer.small_peer_info.metadata = {"kept": True}
    small_disk.remount(disk, readonly=True)
    before = files_of(disk / "peer")

    with pytest.raises(PersistenceError) as raised:
        Ditto(disk / "peer")

    assert raised.value.problem is PersistenceProblem.READ_ONLY
    assert "permissions" in str(raised.value)
    assert files_of(disk / "peer") == before
