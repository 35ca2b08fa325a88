"""SPEC section 2: the Ditto and SmallPeerInfo API, its defaults, errors, persistence and close."""

import contextlib
import copy
import pickle

import orjson
import pytest

from inspector import (
    Ditto,
    DittoClosedError,
    MetadataChanged,
    MetadataValidationError,
    MetadataValidationReason,
    SmallPeerInfo,
    SmallPeerInfoSyncScope,
    SyncScopeChanged,
)


def test_public_names_are_importable_from_the_package():
    import inspector

    for name in (
        "Ditto",
        "SmallPeerInfo",
        "SmallPeerInfoSyncScope",
        "MetadataValidationError",
        "MetadataValidationReason",
        "PersistenceDirectoryLockedError",
        "DittoClosedError",
        "MAX_METADATA_SIZE_BYTES",
        "MAX_METADATA_DEPTH",
    ):
        assert hasattr(inspector, name)
    assert issubclass(inspector.MetadataValidationError, ValueError)


async def test_a_new_directory_has_the_defaults(ditto):
    sp = ditto.small_peer_info
    assert sp.is_enabled is False
    assert sp.metadata == {}
    assert sp.metadata_json_string == "{}"
    assert await sp.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY
    assert await sp.history() == []


def test_sync_scope_values():
    assert SmallPeerInfoSyncScope.BIG_PEER_ONLY.value == "BigPeerOnly"
    assert SmallPeerInfoSyncScope.LOCAL_PEER_ONLY.value == "LocalPeerOnly"
    assert isinstance(SmallPeerInfoSyncScope.BIG_PEER_ONLY, str)


async def test_small_peer_info_is_the_same_object_every_time(ditto):
    assert ditto.small_peer_info is ditto.small_peer_info
    assert isinstance(ditto.small_peer_info, SmallPeerInfo)


@pytest.mark.parametrize(
    "construct",
    [
        lambda d: SmallPeerInfo(),
        lambda d: SmallPeerInfo(d),
        lambda d: SmallPeerInfo.__new__(SmallPeerInfo),
        lambda d: copy.copy(d.small_peer_info),
        lambda d: pickle.dumps(d.small_peer_info),
    ],
    ids=["no-args", "with-ditto", "__new__", "copy", "pickle"],
)
async def test_small_peer_info_cannot_be_constructed_directly(ditto, construct):
    with pytest.raises(TypeError):
        construct(ditto)


async def test_peer_key_is_printable_stable_and_per_directory(tmp_path):
    async with Ditto(tmp_path / "a") as a:
        key = a.peer_key
    assert isinstance(key, str) and key.isascii() and key.isprintable() and " " not in key
    async with Ditto(tmp_path / "a") as again, Ditto(tmp_path / "b") as other:
        assert again.peer_key == key
        assert other.peer_key != key


async def test_device_name_defaults_to_the_host_name(tmp_path):
    import socket

    async with Ditto(tmp_path / "a") as peer, Ditto(tmp_path / "b", device_name="kiosk-7") as named:
        assert peer.device_name == socket.gethostname()
        assert named.device_name == "kiosk-7"


async def test_directory_is_created_if_missing(tmp_path):
    target = tmp_path / "deep" / "er" / "peer"
    async with Ditto(target):
        assert target.is_dir()


async def test_default_directory_is_the_platform_user_data_dir(tmp_path):
    import platformdirs

    async with Ditto() as peer:
        assert str(peer.persistence_directory).startswith(platformdirs.user_data_dir())
        assert str(peer.persistence_directory).startswith(str(tmp_path.parent))  # redirected by conftest


@pytest.mark.parametrize("value", [1, 0, "true", None, "False", 1.0, [True]])
async def test_is_enabled_takes_a_bool_only(ditto, value):
    with pytest.raises(TypeError):
        ditto.small_peer_info.is_enabled = value
    assert ditto.small_peer_info.is_enabled is False


async def test_metadata_getter_returns_a_copy(ditto):
    sp = ditto.small_peer_info
    sp.metadata = {"nested": {"inner": "value"}, "list": [1]}
    got = sp.metadata
    got["nested"]["inner"] = "changed"
    got["list"].append(2)
    assert sp.metadata == {"nested": {"inner": "value"}, "list": [1]}


async def test_metadata_setter_copies_its_argument(ditto):
    given = {"a": [1]}
    ditto.small_peer_info.metadata = given
    given["a"].append(2)
    assert ditto.small_peer_info.metadata == {"a": [1]}


async def test_metadata_json_string_is_compact_json(ditto):
    sp = ditto.small_peer_info
    sp.metadata = {"foo": "bar", "nested": {"inner": "value"}}
    assert sp.metadata_json_string == '{"foo":"bar","nested":{"inner":"value"}}'
    sp.metadata_json_string = '{\n  "x": [1, 2]\n}'
    assert sp.metadata == {"x": [1, 2]}
    assert sp.metadata_json_string == '{"x":[1,2]}'


@pytest.mark.parametrize("value", [b"{}", {}, None, 1])
async def test_metadata_json_string_takes_str_only(ditto, value):
    with pytest.raises(TypeError):
        ditto.small_peer_info.metadata_json_string = value


@pytest.mark.parametrize(
    ("setter", "value", "expected"),
    [
        ("metadata", [1], MetadataValidationReason.NOT_AN_OBJECT),
        ("metadata", '{"a": 1}', MetadataValidationReason.NOT_AN_OBJECT),
        ("metadata", {"a": float("nan")}, MetadataValidationReason.NOT_JSON_COMPATIBLE),
        ("metadata_json_string", "{oops", MetadataValidationReason.INVALID_JSON),
        ("metadata_json_string", "[1]", MetadataValidationReason.NOT_AN_OBJECT),
        (
            "metadata_json_string",
            '{"a":' * 65 + "1" + "}" * 65,
            MetadataValidationReason.DEPTH_LIMIT_EXCEEDED,
        ),
        (
            "metadata_json_string",
            '{"a": "' + "x" * 131072 + '"}',
            MetadataValidationReason.SIZE_LIMIT_EXCEEDED,
        ),
    ],
)
async def test_invalid_metadata_raises_and_changes_nothing(ditto, setter, value, expected):
    sp = ditto.small_peer_info
    sp.metadata = {"kept": True}
    with pytest.raises(MetadataValidationError) as info:
        setattr(sp, setter, value)
    assert info.value.reason is expected
    assert sp.metadata == {"kept": True}


async def test_set_sync_scope_takes_members_and_their_values(ditto):
    sp = ditto.small_peer_info
    await sp.set_sync_scope(SmallPeerInfoSyncScope.BIG_PEER_ONLY)
    assert await sp.get_sync_scope() is SmallPeerInfoSyncScope.BIG_PEER_ONLY
    await sp.set_sync_scope("LocalPeerOnly")
    assert await sp.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY
    await sp.set_sync_scope("BigPeerOnly")
    assert await sp.get_sync_scope() is SmallPeerInfoSyncScope.BIG_PEER_ONLY


async def test_the_last_sync_scope_request_wins(ditto):
    """A request equal to the current scope still waits for an earlier one, then wins."""
    import asyncio

    sp = ditto.small_peer_info
    share = asyncio.ensure_future(sp.set_sync_scope(SmallPeerInfoSyncScope.BIG_PEER_ONLY))
    await asyncio.sleep(0)  # the first request holds the lock and waits on the store
    keep_local = asyncio.ensure_future(sp.set_sync_scope(SmallPeerInfoSyncScope.LOCAL_PEER_ONLY))
    await asyncio.gather(share, keep_local)
    assert await sp.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY
    await ditto.close()
    async with Ditto(ditto.persistence_directory) as again:
        assert await again.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


@pytest.mark.parametrize("value", ["bigpeeronly", "BIG_PEER_ONLY", "", "Everyone", " BigPeerOnly"])
async def test_set_sync_scope_refuses_other_strings_with_value_error(ditto, value):
    with pytest.raises(ValueError, match="BigPeerOnly"):
        await ditto.small_peer_info.set_sync_scope(value)
    assert await ditto.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


@pytest.mark.parametrize("value", [None, 1, True, object(), ["BigPeerOnly"]])
async def test_set_sync_scope_refuses_non_strings(ditto, value):
    with pytest.raises((TypeError, ValueError)):
        await ditto.small_peer_info.set_sync_scope(value)
    assert await ditto.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


async def test_settings_persist_across_reopening(peer_dir):
    metadata = {"app": "kiosk", "build": 42, "nested": {"list": [1, 2, {"x": None}]}}
    async with Ditto(peer_dir) as peer:
        peer.small_peer_info.is_enabled = True
        peer.small_peer_info.metadata = metadata
        await peer.small_peer_info.set_sync_scope("BigPeerOnly")
    async with Ditto(peer_dir) as peer:
        assert peer.small_peer_info.is_enabled is True
        assert peer.small_peer_info.metadata == metadata
        assert await peer.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.BIG_PEER_ONLY
        peer.small_peer_info.is_enabled = False
        peer.small_peer_info.metadata = {}
        await peer.small_peer_info.set_sync_scope("LocalPeerOnly")
    async with Ditto(peer_dir) as peer:
        assert peer.small_peer_info.is_enabled is False
        assert peer.small_peer_info.metadata == {}
        assert await peer.small_peer_info.get_sync_scope() is SmallPeerInfoSyncScope.LOCAL_PEER_ONLY


def test_settings_persist_when_set_outside_an_event_loop(peer_dir):
    import asyncio

    peer = Ditto(peer_dir)
    peer.small_peer_info.metadata = {"sync": "code"}
    asyncio.run(peer.close())
    reopened = Ditto(peer_dir)
    assert reopened.small_peer_info.metadata == {"sync": "code"}
    asyncio.run(reopened.close())


async def test_close_is_idempotent_and_closes_every_member(peer_dir):
    peer = Ditto(peer_dir)
    sp = peer.small_peer_info
    await peer.close()
    await peer.close()
    for action in (
        lambda: sp.is_enabled,
        lambda: setattr(sp, "is_enabled", True),
        lambda: sp.metadata,
        lambda: setattr(sp, "metadata", {}),
        lambda: sp.metadata_json_string,
        lambda: setattr(sp, "metadata_json_string", "{}"),
        lambda: sp.observe(print),
    ):
        with pytest.raises(DittoClosedError):
            action()
    for coroutine in (
        sp.get_sync_scope,
        lambda: sp.set_sync_scope("BigPeerOnly"),
        sp.history,
        sp.collect_now,
    ):
        with pytest.raises(DittoClosedError):
            await coroutine()
    with pytest.raises(DittoClosedError):
        await peer.store.find_by_id("__small_peer_info", peer.peer_key)


async def test_async_with_closes_on_exit(peer_dir):
    async with Ditto(peer_dir) as peer:
        pass
    assert peer.is_closed
    with pytest.raises(DittoClosedError):
        peer.small_peer_info.is_enabled  # noqa: B018


async def test_observers_hear_setting_changes(ditto):
    sp = ditto.small_peer_info
    events = []
    subscription = sp.observe(events.append)
    sp.metadata = {"a": 1}
    sp.metadata = {"a": 1}  # unchanged: no event
    await sp.set_sync_scope("BigPeerOnly")
    subscription.cancel()
    sp.metadata = {"a": 2}
    assert len(events) == 2
    assert isinstance(events[0], MetadataChanged)
    assert events[0].metadata.text == '{"a":1}'
    assert events[1] == SyncScopeChanged(SmallPeerInfoSyncScope.BIG_PEER_ONLY)


async def test_a_failing_observer_does_not_break_the_setter(ditto, caplog):
    def broken(event):
        raise RuntimeError("observer bug")

    ditto.small_peer_info.observe(broken)
    ditto.small_peer_info.metadata = {"a": 1}
    assert ditto.small_peer_info.metadata == {"a": 1}
    assert "observer bug" in caplog.text


async def test_find_by_id_returns_none_for_unknown_documents(ditto):
    assert await ditto.store.find_by_id("__small_peer_info", ditto.peer_key) is None
    assert await ditto.store.find_by_id("other", "x") is None


@pytest.mark.parametrize("interval", [0, 0.05, -1, float("nan"), float("inf")])
def test_interval_below_the_minimum_is_refused(peer_dir, interval):
    with pytest.raises(ValueError):
        Ditto(peer_dir, small_peer_info_interval=interval)


async def test_history_arguments_are_checked(ditto):
    sp = ditto.small_peer_info
    with pytest.raises(TypeError):
        await sp.history(limit="10")
    with pytest.raises(ValueError):
        await sp.history(limit=-1)
    with pytest.raises(ValueError):
        await sp.history(before="yesterday")
    assert orjson.dumps(await sp.history(limit=0)) == b"[]"
    sp.is_enabled = True
    assert await sp.collect_now() is not None
    sp.is_enabled = False
    everything = await sp.history(limit=1000)
    assert everything
    # Past SQLite's 64-bit integers: more than any history holds, so all of it.
    assert await sp.history(limit=2**63) == await sp.history(limit=2**100) == everything


async def test_concurrent_closes_both_wait_for_the_directory_to_be_free(peer_dir):
    import asyncio

    peer = Ditto(peer_dir)
    await asyncio.gather(peer.close(), peer.close())
    first = asyncio.ensure_future(peer.close())
    await peer.close()
    await first
    async with Ditto(peer_dir):
        pass


async def test_closing_while_the_scope_changes_leaves_no_background_work(peer_dir):
    import asyncio

    peer = Ditto(peer_dir, big_peer_url="http://127.0.0.1:9")
    change = asyncio.ensure_future(peer.small_peer_info.set_sync_scope("BigPeerOnly"))
    await asyncio.sleep(0)
    await peer.close()
    with contextlib.suppress(DittoClosedError):
        await change
    leftovers = [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]
    assert leftovers == []


async def test_close_stops_every_background_task(peer_dir):
    import asyncio

    before = asyncio.all_tasks()
    peer = Ditto(peer_dir, small_peer_info_interval=0.1, big_peer_url="http://127.0.0.1:9")
    await peer.small_peer_info.set_sync_scope("BigPeerOnly")
    peer.small_peer_info.is_enabled = True
    await peer.small_peer_info.collect_now()
    assert asyncio.all_tasks() - before  # collection and replication are running
    await peer.close()
    assert {t for t in asyncio.all_tasks() - before if not t.done()} == set()
