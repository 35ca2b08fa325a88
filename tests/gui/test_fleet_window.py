"""SPEC §5: the real `FleetWindow` over a real Big Peer process on 127.0.0.1, with real peers reporting."""

from __future__ import annotations

import asyncio
import csv
import itertools
import json
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta

import aiohttp
import orjson
import pytest
from aiohttp import web
from big_peer_harness import (
    ADMIN_TOKEN,
    DEVICE_TOKEN,
    WRITE_PATH,
    small_peer_info,
    start_big_peer,
    timestamp,
    timestamps,
)
from keyring.backend import KeyringBackend
from PySide6.QtCore import QCoreApplication, QEvent, QPoint, QSettings, Qt
from PySide6.QtWidgets import QWidget

from inspector.core.identity import Identity
from inspector.core.replication import ReplicationPolicy
from inspector.gui import FleetWindow
from inspector.gui.fleet_model import Column, FleetModel
from inspector.history.remote import USER_AGENT

pytestmark = pytest.mark.timeout(90)

START = datetime(2026, 11, 26, 5, 0, 0, tzinfo=UTC)
FAST = ReplicationPolicy(backoff_base=0.02, backoff_cap=0.3, request_timeout=5)
LIVE_MS = 5000
"""SPEC §5: a new device, and a new document of the selected device, show within 5 s."""
_ids = itertools.count()


class MemoryKeyring(KeyringBackend):
    """A keyring in memory: no test ever touches the machine's real one."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.passwords: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.passwords.get((service, username))

    def set_password(self, service, username, password):
        self.passwords[(service, username)] = password

    def delete_password(self, service, username):
        self.passwords.pop((service, username), None)


@pytest.fixture(autouse=True)
def memory_keyring():
    import keyring

    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture
def big_peer(tmp_path):
    running = []

    def start(port=None, *extra):
        args = [*(("--port", str(port)) if port else ()), "--access-log", *extra]
        process = start_big_peer(tmp_path / "big-peer-data", tmp_path / f"service{len(running)}.log", args)
        running.append(process)
        return process

    start.running = running
    yield start
    for process in running:
        assert process.stop() == 0, process.log()
        assert "Traceback" not in process.log(), process.log()


def new_identity(tmp_path):
    directory = tmp_path / f"identity-{next(_ids)}"
    directory.mkdir()
    return Identity.load_or_create(directory)


def post(url, device, documents):
    """Store documents as ``device`` (a signed write, as a peer makes it)."""
    body = orjson.dumps({"documents": documents})
    headers = device.request_headers("POST", WRITE_PATH, body)
    headers.update({"Authorization": f"Bearer {DEVICE_TOKEN}", "Content-Type": "application/json"})
    request = urllib.request.Request(url + WRITE_PATH, data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def admin_get(url, path):
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def add_devices(url, tmp_path, names, **fields):
    """One device per name with one document each; their peer keys by name."""
    keys = {}
    for offset, name in enumerate(names):
        device = new_identity(tmp_path)
        moment = timestamp(START + timedelta(minutes=offset))
        post(url, device, [small_peer_info(device.peer_key, moment, device_name=name, **fields)])
        keys[name] = device.peer_key
    return keys


@pytest.fixture
def settings(settings_path):
    return QSettings(str(settings_path), QSettings.Format.IniFormat)


@pytest.fixture
def make_fleet(qtbot, qloop, run, settings):
    windows = []

    def make(url, token=ADMIN_TOKEN, **options):
        window = FleetWindow(url, token, settings, **options)
        windows.append(window)
        window.resize(1400, 850)
        window.show()
        qtbot.waitExposed(window)
        qtbot.waitUntil(lambda: window.model.loaded or window.model.error is not None)
        return window

    yield make
    for window in windows:
        window.close()
        run(window.wait_closed())
        window.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


@pytest.fixture
def reporting_peer(make_ditto, run, tmp_path):
    """``reporting_peer(url, name, interval)``: a real `Ditto` replicating to the Big Peer."""

    def make(url, name, interval=3600.0, metadata=None):
        ditto = make_ditto(
            tmp_path / f"peer-{name}",
            device_name=name,
            small_peer_info_interval=interval,
            big_peer_url=url,
            big_peer_token=DEVICE_TOKEN,
            replication_policy=FAST,
        )
        if metadata is not None:
            ditto.small_peer_info.metadata = metadata
        run(ditto.small_peer_info.set_sync_scope("BigPeerOnly"))
        ditto.small_peer_info.is_enabled = True
        return ditto

    return make


def arrived(url, peer_key):
    """How many documents of the device the Big Peer holds (0 for an unknown device)."""
    try:
        return len(admin_get(url, f"/api/v1/devices/{peer_key}/history?limit=1000")["documents"])
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return 0
        raise


def names(window):
    model = window.model
    return [model.index(row, Column.NAME).data() for row in range(model.rowCount())]


def click_header(qtbot, window, column):
    header = window.table.horizontalHeader()
    x = header.sectionViewportPosition(column) + header.sectionSize(column) // 2
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))


def test_pages_sorts_and_filters_through_the_big_peer(big_peer, make_fleet, tmp_path, qtbot, qtmodeltester):
    service = big_peer()
    site = {"Oslo": ["delta", "alpha", "kilo"], "Lima": ["charlie", "bravo", "echo", "foxtrot", "golf"]}
    for city, group in site.items():
        add_devices(service.url, tmp_path, group, metadata={"site": city, "battery": {"level": 50}})
    add_devices(service.url, tmp_path, ["hotel", "india", "juliet"], metadata={})
    window = make_fleet(service.url, page_size=4)
    model = window.model

    # The view asks for as many pages as it needs to fill itself, no more.
    assert names(window)[:4] == ["alpha", "bravo", "charlie", "delta"]
    assert model.rowCount() < 11
    qtmodeltester.check(model)
    assert f"Showing {model.rowCount()} of 11 devices" in window.status_label.text()
    # Scrolling to the end reads the next pages, one at a time.
    while model.rowCount() < 11:
        shown = model.rowCount()
        window.table.scrollToBottom()
        if model.canFetchMore():
            model.fetchMore()
        qtbot.waitUntil(lambda shown=shown: model.rowCount() > shown)
    assert names(window) == sorted(names(window))
    assert not model.canFetchMore()
    qtmodeltester.check(model)

    click_header(qtbot, window, Column.LAST_SEEN)
    qtbot.waitUntil(lambda: model.loaded and model.sort_order_name == "last_updated_at")
    newest_first = admin_get(service.url, "/api/v1/fleet?sort=last_updated_at&limit=4")["devices"]
    assert names(window)[:4] == [d["device_name"] for d in newest_first]
    assert window.table.horizontalHeader().sortIndicatorSection() == Column.LAST_SEEN
    assert window.table.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.DescendingOrder

    click_header(qtbot, window, Column.NAME)
    qtbot.waitUntil(lambda: model.loaded and model.sort_order_name == "device_name")
    assert names(window)[:4] == ["alpha", "bravo", "charlie", "delta"]
    click_header(qtbot, window, Column.NAME)  # the Big Peer sorts names one way: the order stays
    assert window.table.horizontalHeader().sortIndicatorOrder() == Qt.SortOrder.AscendingOrder
    click_header(qtbot, window, Column.PLATFORM)  # not an order of the Big Peer: nothing changes
    assert window.table.horizontalHeader().sortIndicatorSection() == Column.NAME
    assert model.sort_order_name == "device_name"

    qtbot.keyClicks(window.filter_edit, '"site":"oslo"')
    qtbot.waitUntil(lambda: model.loaded and model.query == '"site":"oslo"')
    assert names(window) == ["alpha", "delta", "kilo"]
    assert "Showing 3 of 3 devices matching" in window.status_label.text()
    qtmodeltester.check(model)


def test_selecting_a_device_shows_its_timeline_document_and_plot(
    big_peer, make_fleet, reporting_peer, run, qtbot, tmp_path
):
    service = big_peer()
    add_devices(service.url, tmp_path, ["another-device"])
    peer = reporting_peer(
        service.url, "warehouse-scanner", metadata={"site": "Oslo", "battery": {"level": 80}}
    )
    qtbot.waitUntil(lambda: arrived(service.url, peer.peer_key) >= 1, timeout=10_000)
    window = make_fleet(service.url)
    qtbot.waitUntil(lambda: window.model.row_of(peer.peer_key) is not None)

    assert window.select_device(peer.peer_key)
    qtbot.waitUntil(lambda: window.document_panel is not None and window.document_panel.document is not None)
    count = arrived(service.url, peer.peer_key)
    timeline = window.timeline_panel
    assert timeline.view.objectName() == "timelineView"
    assert window.findChild(type(timeline.view), "timelineView") is timeline.view
    qtbot.waitUntil(lambda: timeline.model.rowCount() == count)
    document = window.document_panel.document
    assert document["_id"] == peer.peer_key
    assert document["device_name"] == "warehouse-scanner"
    assert '"warehouse-scanner"' in window.document_panel.view.toPlainText()
    assert window.document_panel.view.objectName() == "documentView"
    plot = window.plot_panel
    assert plot.plot.objectName() == "historyPlot"
    curve = plot.curve("device_disk_usage.device_available")
    qtbot.waitUntil(lambda: not plot.busy and curve.yData is not None and len(curve.yData) > 0)
    assert curve.yData[-1] == document["device_disk_usage"]["device_available"]
    assert "warehouse-scanner" in window.device_view.title.text()
    # Read-only: none of the peer's controls is here.
    for name in ("collectionToggle", "syncScopeCombo", "metadataEditor", "applyMetadataButton"):
        assert window.findChild(QWidget, name) is None


def test_a_new_device_and_a_new_document_show_within_5_seconds(
    big_peer, make_fleet, reporting_peer, qtbot, tmp_path
):
    service = big_peer()
    peer = reporting_peer(service.url, "bench-peer", interval=1.0)
    qtbot.waitUntil(lambda: arrived(service.url, peer.peer_key) >= 1, timeout=10_000)
    window = make_fleet(service.url)
    qtbot.waitUntil(lambda: window.select_device(peer.peer_key))
    qtbot.waitUntil(lambda: window.timeline_panel is not None and window.timeline_panel.timeline.loaded)

    # A new document of the selected device: counted from the moment the Big Peer stored it.
    shown = window.timeline_panel.timeline.total_count
    qtbot.waitUntil(lambda: arrived(service.url, peer.peer_key) > shown, timeout=10_000)
    stored = arrived(service.url, peer.peer_key)
    qtbot.waitUntil(lambda: window.timeline_panel.timeline.total_count >= stored, timeout=LIVE_MS)

    # A device reporting for the first time.
    newcomer = reporting_peer(service.url, "newcomer")
    qtbot.waitUntil(lambda: arrived(service.url, newcomer.peer_key) >= 1, timeout=10_000)
    qtbot.waitUntil(lambda: window.model.row_of(newcomer.peer_key) is not None, timeout=LIVE_MS)
    assert "newcomer" in names(window)
    assert window.selected_peer_key == peer.peer_key  # the selection stayed on its device


def test_a_wrong_token_is_a_message(big_peer, make_fleet, tmp_path):
    service = big_peer()
    add_devices(service.url, tmp_path, ["a-device"])

    window = make_fleet(service.url, token="not-the-admin-token")

    assert "The admin token was refused" in window.status_label.text()
    assert window.model.rowCount() == 0


def test_the_window_keeps_its_rows_while_the_big_peer_is_down_and_recovers(
    big_peer, make_fleet, qtbot, tmp_path
):
    service = big_peer()
    add_devices(service.url, tmp_path, ["first", "second"])
    window = make_fleet(service.url)
    port = int(service.url.rsplit(":", 1)[1])
    window.select_device(window.model.device(0).peer_key)
    qtbot.waitUntil(lambda: window.document_panel.document is not None)

    assert service.stop() == 0
    qtbot.waitUntil(lambda: window.model.error is not None, timeout=LIVE_MS)
    refused = f"The Big Peer at {service.url} cannot be reached (connection refused"
    assert refused in window.status_label.text()
    assert "retrying" in window.status_label.text()
    assert names(window) == ["first", "second"]
    assert window.document_panel.document is not None

    restarted = big_peer(port)
    add_devices(restarted.url, tmp_path, ["third"])
    qtbot.waitUntil(lambda: names(window) == ["first", "second", "third"], timeout=2 * LIVE_MS)
    assert window.model.error is None
    assert "up to date" in window.status_label.text()


class Front:
    """An HTTP front of the Big Peer on 127.0.0.1 (its own thread and loop) that can fail on demand."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.mode = "pass"
        self.requests = 0
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self):
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self):
        self.session = aiohttp.ClientSession()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"

    async def _handle(self, request):
        self.requests += 1
        if self.mode == "500":
            return web.Response(status=503, text="upstream unavailable")
        if self.mode == "junk":
            return web.Response(status=200, text="<html>captive portal</html>", content_type="text/html")
        if self.mode == "slow":
            await asyncio.sleep(3)
        headers = {
            k: v for k, v in request.headers.items() if k.lower() in ("authorization", "if-none-match")
        }
        async with self.session.get(self.upstream + request.path_qs, headers=headers) as answer:
            body = await answer.read()
            kept = {k: v for k, v in answer.headers.items() if k.lower() in ("etag", "content-type")}
            return web.Response(status=answer.status, body=body, headers=kept)

    def close(self):
        async def stop():
            await self.runner.cleanup()
            await self.session.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def front(big_peer):
    fronts = []

    def make(url):
        fronts.append(Front(url))
        return fronts[-1]

    yield make
    for made in fronts:
        made.close()


def test_failing_junk_and_slow_answers_are_states_and_it_recovers(
    big_peer, front, make_fleet, qtbot, tmp_path
):
    service = big_peer()
    add_devices(service.url, tmp_path, ["steady"])
    proxy = front(service.url)
    window = make_fleet(proxy.url, timeout=1.0, poll_interval=0.3)
    assert names(window) == ["steady"]

    for mode, words in (
        ("500", "The Big Peer failed (HTTP 503: upstream unavailable)"),
        ("junk", "The Big Peer's answer could not be used: the answer is not JSON"),
        ("slow", "The Big Peer did not answer within 1 s"),
    ):
        proxy.mode = mode
        qtbot.waitUntil(lambda words=words: words in window.status_label.text(), timeout=LIVE_MS)
        assert names(window) == ["steady"]
        proxy.mode = "pass"
        qtbot.waitUntil(lambda: window.model.error is None, timeout=LIVE_MS)
        assert "up to date" in window.status_label.text()


def test_an_idle_window_costs_the_big_peer_at_most_one_request_a_second(
    big_peer, make_fleet, reporting_peer, qtbot, tmp_path
):
    service = big_peer()
    peer = reporting_peer(service.url, "busy-peer", interval=0.5)  # the fleet changes all the time
    qtbot.waitUntil(lambda: arrived(service.url, peer.peer_key) >= 1, timeout=10_000)
    window = make_fleet(service.url)
    window.select_device(peer.peer_key)
    qtbot.waitUntil(lambda: window.plot_panel is not None and not window.plot_panel.busy)

    def requests():
        return sum(1 for line in service.log().splitlines() if USER_AGENT in line)

    polls, before, started = window.model.polls, requests(), time.monotonic()
    qtbot.waitUntil(lambda: window.model.polls >= polls + 3, timeout=15_000)
    elapsed, made = time.monotonic() - started, requests() - before

    assert made / elapsed <= 1.0, f"{made} requests in {elapsed:.1f} s"
    assert made >= 3


def test_exports_round_trip(big_peer, make_fleet, reporting_peer, qtbot, tmp_path, run):
    service = big_peer()
    add_devices(
        service.url, tmp_path, ["lima-1", "lima-2"], metadata={"site": "Lima", "battery": {"level": 7}}
    )
    add_devices(service.url, tmp_path, ["oslo-1"], metadata={"site": "Oslo"})
    peer = reporting_peer(service.url, "exported-peer", interval=3600.0)
    qtbot.waitUntil(lambda: arrived(service.url, peer.peer_key) >= 1, timeout=10_000)
    window = make_fleet(service.url)
    window.add_metadata_column("battery.level")
    window.filter_edit.setText("lima")
    window.apply_filter()
    qtbot.waitUntil(lambda: window.model.loaded and window.model.rowCount() == 2)

    path = tmp_path / "fleet.csv"
    run(window.export_csv(path))
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    expected = admin_get(service.url, "/api/v1/fleet?q=lima")["devices"]
    assert [r["peer_key"] for r in rows] == [d["peer_key"] for d in expected]
    assert [r["device_name"] for r in rows] == ["lima-1", "lima-2"]
    assert [r["metadata.battery.level"] for r in rows] == ["7", "7"]
    assert [int(r["document_count"]) for r in rows] == [d["document_count"] for d in expected]
    assert rows[0]["last_updated_at"] == expected[0]["last_updated_at"]

    window.filter_edit.setText("exported")
    window.apply_filter()
    qtbot.waitUntil(lambda: window.model.loaded and window.select_device(peer.peer_key))
    qtbot.waitUntil(lambda: window.timeline_panel.timeline.loaded)
    history = tmp_path / "history.jsonl"
    run(window.device_view.export.export_history(history))
    lines = [orjson.loads(line) for line in history.read_bytes().splitlines()]
    stored = admin_get(service.url, f"/api/v1/devices/{peer.peer_key}/history?limit=1000")["documents"]
    assert lines == list(reversed(stored))


def test_metadata_columns_are_kept_in_the_settings(big_peer, make_fleet, tmp_path, settings, qtbot, run):
    service = big_peer()
    add_devices(service.url, tmp_path, ["tablet"], metadata={"site": "Oslo", "battery": {"level": 42}})
    window = make_fleet(service.url)
    assert "battery.level" in window.known_metadata_paths()
    window.table.setFocus(Qt.FocusReason.TabFocusReason)  # the keyboard's current row is not a choice
    qtbot.waitUntil(window.table.hasFocus)
    assert window.device_view is None

    window.add_metadata_column("battery.level")
    window.add_metadata_column("metadata.site")

    model = window.model
    assert [
        model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(Column), model.columnCount())
    ] == [
        "battery.level",
        "site",
    ]
    assert model.index(0, len(Column)).data() == "42"
    assert model.index(0, len(Column) + 1).data() == "Oslo"
    assert json.loads(settings.value("fleet/metadataColumns")) == ["battery.level", "site"]
    window.close()
    run(window.wait_closed())
    again = make_fleet(service.url)
    assert again.model.metadata_columns == ["battery.level", "site"]
    again.remove_metadata_column("site")
    assert again.model.metadata_columns == ["battery.level"]
    settings.sync()
    with open(settings.fileName(), encoding="utf-8") as saved:
        assert ADMIN_TOKEN not in saved.read()


def test_model_merges_moves_without_losing_the_selection(
    big_peer, make_fleet, qtbot, tmp_path, qtmodeltester
):
    service = big_peer()
    identities = {name: new_identity(tmp_path) for name in ("a", "b", "c")}
    for offset, (name, device) in enumerate(identities.items()):
        moment = timestamp(START + timedelta(minutes=offset))
        post(service.url, device, [small_peer_info(device.peer_key, moment, device_name=name)])
    window = make_fleet(service.url, poll_interval=0.2)
    click_header(qtbot, window, Column.LAST_SEEN)
    qtbot.waitUntil(lambda: names(window) == ["c", "b", "a"])
    window.select_device(identities["a"].peer_key)
    qtmodeltester.check(window.model)

    later = timestamp(START + timedelta(hours=1))
    post(service.url, identities["a"], [small_peer_info(identities["a"].peer_key, later, device_name="a")])
    qtbot.waitUntil(lambda: names(window) == ["a", "c", "b"], timeout=LIVE_MS)
    assert window.table.currentIndex().row() == 0
    assert window.selected_peer_key == identities["a"].peer_key
    assert isinstance(window.model, FleetModel)
    qtmodeltester.check(window.model)


@pytest.mark.parametrize(
    ("last_updated_at", "zone", "shown"),
    [
        ("0001-01-01T00:00:00.000Z", "UTC", "0001-01-01 00:00:00 UTC"),
        ("9999-12-31T23:59:59.999Z", "Asia/Tokyo", "9999-12-31 23:59:59 UTC"),
    ],
)
def test_a_device_reporting_a_year_local_time_cannot_hold_is_shown(
    big_peer, make_fleet, tmp_path, qtbot, time_zone, last_updated_at, zone, shown
):
    """The Big Peer stores any well-formed last_updated_at; painting it ended the process."""
    time_zone(zone)
    service = big_peer()
    device = new_identity(tmp_path)
    post(service.url, device, [small_peer_info(device.peer_key, last_updated_at, device_name="odd")])
    window = make_fleet(service.url)
    qtbot.waitUntil(lambda: window.model.row_of(device.peer_key) is not None)

    assert window.select_device(device.peer_key)
    qtbot.waitUntil(lambda: window.timeline_panel is not None and window.timeline_panel.model.rowCount() == 1)
    model = window.timeline_panel.model
    qtbot.waitUntil(lambda: model.index(0, 0).data() != "…")
    assert model.index(0, 0).data().startswith(shown + " · ")
    plot = window.plot_panel
    qtbot.waitUntil(lambda: not plot.busy)
    assert plot.range_label.text()  # pyqtgraph's view ends at 9999-01-01: the range is said, in words
    window.grab()  # paints every part: the table, the timeline, the plot and its time axis


def test_exporting_a_history_while_the_big_peer_is_down_is_a_message(big_peer, make_fleet, tmp_path, qtbot):
    service = big_peer()
    device = new_identity(tmp_path)
    moments = timestamps(1500, START)  # more than the window reads to show them: the export must ask
    for first in range(0, len(moments), 100):
        post(service.url, device, [small_peer_info(device.peer_key, m) for m in moments[first : first + 100]])
    window = make_fleet(service.url)
    assert window.select_device(device.peer_key)
    qtbot.waitUntil(lambda: window.timeline_panel.timeline.loaded)
    assert service.stop() == 0

    path = tmp_path / "history.jsonl"
    task = window.device_view.export.export_history(path)

    qtbot.waitUntil(task.done)
    assert task.exception() is None
    said = window.statusBar().currentMessage()
    assert said.startswith(f"Could not export the history: The Big Peer at {service.url} cannot be reached")
    assert not path.exists() and not path.with_name(path.name + ".part").exists()
