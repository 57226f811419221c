"""The Qt lab GUI, offscreen, driven through its own buttons (qtbot.mouseClick): what is drawn, what is logged."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PyQt5")
pytest.importorskip("pyqtgraph")

from PyQt5.QtCore import QPointF, QSettings, Qt, QTimer  # noqa: E402
from PyQt5.QtWidgets import QFileDialog, QWidget  # noqa: E402

from xbarlab.gui.app import MainWindow  # noqa: E402
from xbarlab.gui.forms import BAD_STYLE, ParamForm  # noqa: E402
from xbarlab.gui.plots import IntegerAxis  # noqa: E402
from xbarlab.logbook import LogReader  # noqa: E402
from xbarlab.sim.stations import sim_station_text  # noqa: E402


def _make_window(qtbot, tmp_path, rows=64, cols=64, log_folder=None):
    station = tmp_path / "bench.toml"
    station.write_text(sim_station_text(rows, cols, seed=4))  # training needs 64 rows (8x8 digits)
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.IniFormat)
    w = MainWindow(str(station), str(log_folder or tmp_path / "logs"), settings=settings)
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    return w


def click(qtbot, w, widget: QWidget) -> None:
    """Show the widget's tab, scroll it into view and press it with the mouse."""
    for k in range(w.tabs.count()):
        if w.tabs.widget(k).isAncestorOf(widget):
            w.tabs.setCurrentIndex(k)
    qtbot.wait(10)
    assert widget.isEnabled(), widget.text() if hasattr(widget, "text") else widget
    qtbot.mouseClick(widget, Qt.LeftButton)


def connect(qtbot, w) -> None:
    click(qtbot, w, w.bench.connect_button)
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=20000)


@pytest.fixture()
def window(qtbot, tmp_path):
    """A 16x16 simulated bench: small arrays keep the runs fast."""
    w = _make_window(qtbot, tmp_path, rows=16, cols=16)
    connect(qtbot, w)
    yield w
    w.close()


@pytest.fixture()
def window64(qtbot, tmp_path):
    """A 64x64 bench: training needs 64 rows (8x8 digits)."""
    w = _make_window(qtbot, tmp_path)
    connect(qtbot, w)
    yield w
    w.close()


def _wait_idle(qtbot, w, timeout=120000):
    qtbot.waitUntil(lambda: not w.controller.busy, timeout=timeout)


def _items(plot):
    return [i for i in plot.getPlotItem().listDataItems() if i.xData is not None and len(i.xData)]


def _logged(w, kind):
    return [r["status"] for r in LogReader(w.controller.log_path).runs() if r["kind"] == kind]


def test_connect_shows_identities_limits_and_the_log_elided(window):
    table = window.bench.instruments
    identities = {table.item(k, 0).text(): table.item(k, 3).text() for k in range(table.rowCount())}
    assert "MODEL 2400" in identities["smu1"] and "crossbar" in identities["board"]
    assert "max_voltage" in window.bench.limits.item(0, 1).text()
    assert str(window.controller.log_path) in window.log_label.text()
    assert window.clock_label.text().startswith("sim clock:")
    assert all(table.columnWidth(c) <= 300 for c in range(table.columnCount() - 1))
    assert window.bench.recent_stations()[0].endswith("bench.toml")


def test_abort_cannot_be_hidden_has_esc_and_says_when_not_connected(qtbot, tmp_path):
    w = _make_window(qtbot, tmp_path)
    assert w.createPopupMenu() is None  # no toolbar context menu to untick "Safety"
    assert not w.safety_bar.toggleViewAction().isVisible() and not w.safety_bar.isMovable()
    click(qtbot, w, w.abort_button)
    assert "not connected" in w.msg_label.text()
    w.msg_label.setText("")
    qtbot.keyClick(w.tabs, Qt.Key_Escape)
    assert "not connected" in w.msg_label.text()
    assert w.abort_shortcut.key().toString() == "Esc"
    w.close()


def test_window_fits_1366x768_with_a_long_log_path(qtbot, tmp_path):
    deep = tmp_path / ("a-rather-long-folder-name-for-the-logs-of-this-bench" * 3)
    w = _make_window(qtbot, tmp_path, rows=16, cols=16, log_folder=deep)
    connect(qtbot, w)
    for k in range(w.tabs.count()):
        w.tabs.setCurrentIndex(k)
        qtbot.wait(5)
        hint = w.minimumSizeHint()
        assert hint.height() < 600 and hint.width() < 1366, (w.tabs.tabText(k), hint)
    assert w.width() <= 1366 and w.height() <= 768
    assert str(deep) in w.log_label.text() and w.log_label.shown_text() != w.log_label.text()  # elided
    w.close()


def test_closing_while_connecting_releases_the_session(qtbot, tmp_path, monkeypatch):
    from xbarlab.session import LabSession

    closed = []
    original = LabSession.close
    monkeypatch.setattr(LabSession, "close", lambda self: (closed.append(self), original(self))[1])
    w = _make_window(qtbot, tmp_path, rows=16, cols=16)
    click(qtbot, w, w.bench.connect_button)
    w.close()  # while the connect job runs
    qtbot.wait(50)
    assert w.controller.session is None and len(closed) == 1
    log = next((tmp_path / "logs").glob("session-*.h5"))
    with LabSession.open(None, log, append=True) as again:  # the log is not held by a leaked writer
        assert again.log_path == log


def test_failed_connect_resets_the_bench_tab_with_the_error(qtbot, tmp_path):
    w = _make_window(qtbot, tmp_path, rows=16, cols=16)
    bad = tmp_path / "unreachable.toml"  # nothing listens on port 9: the connect is refused
    bad.write_text('[station]\nname = "unreachable"\n'
                   '[instruments.smu1]\ndriver = "keithley2400"\naddress = "TCPIP0::127.0.0.1::9::SOCKET"\n'
                   'board_port = 0\n[instruments.smu1.limits]\nmax_voltage = 5.0\nmax_current = 1e-3\n'
                   '[instruments.board]\ndriver = "crossbar_board"\naddress = "socket://127.0.0.1:9"\n'
                   '[instruments.board.limits]\nmax_read_voltage = 0.5\nmax_mvm_voltage = 0.5\n'
                   'max_pulse_amplitude = 3.5\nmin_pulse_width = 1e-8\nmax_pulse_width = 1e-3\n'
                   'max_tia_range = 10e-3\n')
    w.bench.station_edit.setText(str(bad))
    click(qtbot, w, w.bench.connect_button)
    qtbot.waitUntil(lambda: not w.controller.busy, timeout=20000)
    assert w.controller.session is None
    assert w.bench.state.text().startswith("connect failed:"), w.bench.state.text()
    assert "not connected" == w.bench.instruments.item(0, 4).text()
    w.close()


def test_array_map_cursor_marker_iv_hold_hysteresis_and_cell_history(qtbot, window):
    tab = window.array
    click(qtbot, window, tab.read.button)
    _wait_idle(qtbot, window)
    assert tab.heatmap.data is not None and tab.heatmap.data.shape == (16, 16)
    # cursor readout: move over cell (5, 7)
    qtbot.wait(50)  # the view ranges to the new image
    vb = tab.heatmap.plot.vb
    scene_pos = vb.mapViewToScene(QPointF(7.5, 5.5))
    tab.heatmap._mouse_moved(scene_pos)
    assert tab.heatmap.readout.text.startswith("cursor row 5, col 7:") and "µS" in tab.heatmap.readout.text
    # click the cell on the map: selects it (marker) and sweeps it
    view_pos = tab.heatmap.mapFromScene(scene_pos)
    qtbot.mouseClick(tab.heatmap.viewport(), Qt.LeftButton, pos=view_pos)
    qtbot.waitUntil(lambda: tab.heatmap.selected == (5, 7), timeout=5000)
    _wait_idle(qtbot, window)
    assert list(tab.heatmap.selected_marker.data["x"]) == [7.5]
    assert len(_items(tab.iv_plot)) == 1
    # hold + up and back: the next sweep is overlaid, its return branch drawn separately
    click(qtbot, window, tab.hold)
    tab.iv.form.editors["return_sweep"].setChecked(True)
    click(qtbot, window, tab.iv.button)
    _wait_idle(qtbot, window)
    names = [i.name() for i in _items(tab.iv_plot)]
    assert len(names) == 3 and names[1].endswith(" up") and names[2].endswith(" back"), names
    assert tab.iv_plot.getPlotItem().getAxis("left").labelUnits == "A"
    iv = LogReader(window.controller.log_path).stream(window.controller.current_run_id, "iv")
    v = iv.column("voltage")
    assert len(v) == 2 * 21 and v[0] == pytest.approx(-0.2) and v[20] == pytest.approx(0.2) and v[-1] == v[0]
    # history: the read and two sweeps of that cell
    click(qtbot, window, tab.history_button)
    hist = {i.name().split(" (")[0]: len(i.xData) for i in _items(tab.history_plot)}
    assert hist == {"whole-array reads": 1, "I–V chord conductance": 2}, hist
    assert _logged(window, "iv_sweep") == ["completed", "completed"]


def test_mvm_button_draws_outputs_programmed_weights_with_units_and_progress_moves(qtbot, window):
    tab = window.mvm
    for name, value in (("n_in", 6), ("n_out", 6), ("vectors", 4), ("direction", "forward")):
        tab.panel.form.set_value(name, value)
    seen = []
    window.controller.progress.connect(lambda kind, p: seen.append((p.done, p.total)) if kind == "mvm" else None)
    click(qtbot, window, tab.panel.button)
    _wait_idle(qtbot, window)
    assert len(_items(tab.scatter)[-1].xData) == 6 * 4
    assert len(_items(tab.programmed)[-1].xData) == 36
    assert "W·x" in tab.scatter.getPlotItem().getAxis("bottom").labelText
    assert "median relative error" in tab.stats.text()
    totals = {t for _d, t in seen}
    done = [d for d, _t in seen]
    assert totals == {6 * 12 + 4} and done == sorted(done) and done[-1] == 6 * 12 + 4 and len(seen) > 5, seen
    assert _logged(window, "mvm") == ["completed"]


def test_mvm_aborted_shows_what_it_measured(qtbot, window):
    tab = window.mvm
    for name, value in (("n_in", 6), ("n_out", 6), ("vectors", 400), ("direction", "forward")):
        tab.panel.form.set_value(name, value)
    seen = []
    window.controller.progress.connect(lambda kind, p: seen.append(p.done) if kind == "mvm" else None)
    click(qtbot, window, tab.panel.button)
    qtbot.waitUntil(lambda: any(d > 72 + 5 for d in seen), timeout=60000)  # programmed, vectors running
    qtbot.keyClick(tab, Qt.Key_Escape)
    _wait_idle(qtbot, window)
    assert "aborted" in window.msg_label.text()
    assert len(_items(tab.programmed)[-1].xData) == 72  # the programmed devices, from the log
    assert tab.programmed.getPlotItem().getAxis("bottom").labelUnits == "S"
    assert "aborted" in tab.stats.text()
    assert _logged(window, "mvm") == ["aborted"]


def test_forms_check_station_limits_on_entry(qtbot, window):
    form = window.mvm.panel.form
    form.set_value("v_in", "5 V")  # the sim board's max_mvm_voltage is far lower
    assert not window.mvm.panel.button.isEnabled()
    assert "max_mvm_voltage" in form.error.text()
    form.set_value("v_in", "200 mV")
    assert window.mvm.panel.button.isEnabled() and form.error.text() == ""
    iv = window.array.iv.form
    iv.set_value("stop", 50.0)
    assert iv.editors["stop"].styleSheet() == BAD_STYLE and "max_voltage" in iv.error.text()
    assert not window.array.iv.button.isEnabled()
    iv.set_value("stop", 0.2)
    assert window.array.iv.button.isEnabled()
    # human names with units, raw names in tooltips
    assert "compliance" in iv.editors["compliance"].toolTip() and iv.editors["compliance"].text() == "100 µA"


def test_parameter_forms_say_what_is_wrong(qtbot):
    from xbarlab.experiments.measurements import IVSweep

    form = ParamForm(IVSweep)
    qtbot.addWidget(form)
    form.set_value("points", "many")
    form.set_value("compliance", -1)
    _, problems = form.values()
    text = form.error.text()
    assert any("points" in p for p in problems) and "points" in text and "compliance" in text
    assert not form.valid


def test_solve_button_separates_a_second_run(qtbot, window):
    tab = window.solve
    for name, value in (("n", 6), ("max_outer", 4)):
        tab.refine.form.set_value(name, value)
    click(qtbot, window, tab.refine.button)
    _wait_idle(qtbot, window)
    first = np.array(tab.curve.yData)
    assert first.size >= 1 and tab.previous is None
    tab.refine.form.set_value("seed", 3)
    click(qtbot, window, tab.refine.button)
    _wait_idle(qtbot, window)
    assert np.array_equal(tab.previous.yData, first)  # the first run, grey
    assert not np.array_equal(tab.curve.yData, first) and len(tab.curve.yData) >= 1
    assert isinstance(tab.plot.getPlotItem().getAxis("bottom"), IntegerAxis)
    assert _logged(window, "linear_solve") == ["completed", "completed"]


def test_training_button_runs_the_baseline_first_draws_curves_and_abort_leaves_outputs_off(qtbot, window64):
    window = window64
    tab = window.training
    assert tab.baseline.isChecked()
    for name, value in (("rule", "sgd"), ("epochs", 3), ("limit", 600), ("hidden", 8)):
        tab.panel.form.set_value(name, value)
    click(qtbot, window, tab.panel.button)
    qtbot.waitUntil(lambda: "sgd" in tab.curves, timeout=60000)  # the float baseline is done, the array trains
    assert list(tab.curves["float"]["acc"].xData) == [1, 2, 3] and len(tab.curves["float"]["loss"].yData) == 3
    assert max(tab.curves["float"]["acc"].yData) > 0.3
    ticks = []  # the event loop answers within 100 ms while the worker runs: a 20 ms timer keeps ticking
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    qtbot.wait(1500)
    timer.stop()
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(gaps) > 20 and max(gaps) - 0.02 < 0.1, max(gaps)
    click(qtbot, window, window.abort_button)
    _wait_idle(qtbot, window, timeout=60000)
    assert "aborted" in window.msg_label.text() and "aborted" in tab.info.text()
    for name, emu in window.controller.session.station.sim.emulators.items():
        if name != "board":
            assert not any(ch.output for ch in emu.ch), name
    ticks_x = tab.acc.getPlotItem().getAxis("bottom").tickValues(0.5, 2.5, 400)
    assert ticks_x and all(float(v).is_integer() for _s, vals in ticks_x for v in vals)
    runs = LogReader(window.controller.log_path).runs()
    assert [(r["params"].get("rule"), r["status"]) for r in runs if r["kind"] == "train"] == [
        ("float", "completed"), ("sgd", "aborted")]


def test_closing_during_a_run_aborts_safely_and_closes_the_log(qtbot, window64):
    window = window64
    tab = window.training
    tab.baseline.setChecked(False)
    for name, value in (("rule", "sgd"), ("epochs", 50), ("limit", 600)):
        tab.panel.form.set_value(name, value)
    seen = []
    window.controller.progress.connect(lambda kind, p: seen.append(p))
    click(qtbot, window, tab.panel.button)
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=60000)  # programming the weights has begun
    log = window.controller.log_path
    window.close()  # aborts at a safe point, closes the log
    assert window.controller.session is None
    assert [r["status"] for r in LogReader(log).runs() if r["kind"] == "train"] == ["aborted"]


def test_calibration_tab_runs_device_fit_from_its_button(qtbot, window):
    tab = window.calibration
    assert tab.select("device_fit")
    for name, value in (("cells", 6), ("pulses", 20), ("cycles", 2)):
        tab.panels["device_fit"].form.set_value(name, value)
    click(qtbot, window, tab.panels["device_fit"].button)
    _wait_idle(qtbot, window)
    names = [item.name() for item in _items(tab.main_plot)]
    assert "cell 0: measured" in names and "cell 0: fitted model" in names, names
    assert tab.main_plot.getPlotItem().getAxis("left").labelUnits == "S"
    assert "dw_up" in tab.live.text()
    assert _logged(window, "device_fit") == ["completed"]


def test_logbook_column_picker_second_axis_compare_export_and_replay(qtbot, window64, tmp_path, monkeypatch):
    window = window64
    tr = window.training
    tr.baseline.setChecked(False)
    for name, value in (("rule", "float"), ("epochs", 3), ("limit", 150)):
        tr.panel.form.set_value(name, value)
    click(qtbot, window, tr.panel.button)
    _wait_idle(qtbot, window)
    first = window.controller.current_run_id
    tr.panel.form.set_value("seed", 5)
    click(qtbot, window, tr.panel.button)
    _wait_idle(qtbot, window)
    second = window.controller.current_run_id
    click(qtbot, window, window.array.read.button)
    _wait_idle(qtbot, window)
    tab = window.logbook
    click(qtbot, window, tab.current_button)
    assert tab.runs.rowCount() == 4  # the session run, two trainings, the read
    assert tab.select_run(second) and tab.stream_choice.currentText() == "epochs"
    tab.pick(["train_acc", "test_acc"], right="train_loss", x="epoch")
    left = [i.name() for i in _items(tab.plot)]
    assert left == ["train_acc", "test_acc"] and len(tab.right_vb.addedItems) == 1
    assert tab.plot.getPlotItem().getAxis("right").isVisible()
    assert tab.compare_with(first)
    assert len(_items(tab.plot)) == 4 and len(tab.right_vb.addedItems) == 2  # both runs, both axes
    # export the drawn data as CSV from the visible button
    target = tmp_path / "epochs.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    click(qtbot, window, tab.plot_box.export.csv)
    rows = target.read_text().splitlines()
    assert rows[0].startswith("series,epoch") and len(rows) == 1 + 4 * 3
    png = tmp_path / "epochs.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(png), ""))
    click(qtbot, window, tab.plot_box.export.png)
    assert png.read_bytes()[:4] == b"\x89PNG"
    # a conductance frame shows as an image with one colour-bar label; replay it offline
    assert tab.select_run(window.controller.current_run_id)
    assert tab.showing_image and tab.image.bar.getAxis("left").labelText == "conductance"
    assert tab.image.bar.getAxis("left").labelUnits == "S"
    click(qtbot, window, tab.replay_button)
    qtbot.waitUntil(lambda: tab.last_report is not None, timeout=60000)
    assert "bit for bit" in tab.meta.toPlainText()


def test_logbook_follows_a_log_another_writer_is_filling(qtbot, window, tmp_path):
    from xbarlab.session import LabSession

    log = tmp_path / "campaign.h5"
    with LabSession.open(None, log) as other:
        other.run("array_read", {})
        tab = window.logbook
        window.tabs.setCurrentWidget(tab)
        assert tab.open(log) and tab.runs.rowCount() == 2  # the session run and the read
        other.run("array_read", {})
        qtbot.waitUntil(lambda: tab.runs.rowCount() == 3, timeout=6000)  # the 2 s follow timer


def test_queue_runs_one_after_another_and_abort_asks_about_the_rest(qtbot, window, monkeypatch):
    q = window.queue
    click(qtbot, window, window.array.read.queue_button)
    window.array.iv.form.set_value("points", 5)
    click(qtbot, window, window.array.iv.queue_button)
    assert len(q.pending()) == 2 and q.table.rowCount() == 2
    click(qtbot, window, q.start_button)
    qtbot.waitUntil(lambda: not q.active and not window.controller.busy, timeout=60000)
    assert [e.status for e in q.entries] == ["completed", "completed"]
    assert _logged(window, "array_read") == ["completed"] and _logged(window, "iv_sweep") == ["completed"]
    # an aborted run asks about the rest; "no" keeps them queued
    asked = []
    monkeypatch.setattr(window, "confirm", lambda text: asked.append(text) or False)
    click(qtbot, window, q.clear_button)
    for name, value in (("n_in", 6), ("n_out", 6), ("vectors", 400)):
        window.mvm.panel.form.set_value(name, value)
    click(qtbot, window, window.mvm.panel.queue_button)
    click(qtbot, window, window.array.read.queue_button)
    seen = []
    window.controller.progress.connect(lambda kind, p: seen.append(kind))
    click(qtbot, window, q.start_button)
    qtbot.waitUntil(lambda: "mvm" in seen, timeout=30000)
    click(qtbot, window, window.abort_button)
    qtbot.waitUntil(lambda: not window.controller.busy and not q.active, timeout=60000)
    assert asked and "1 remaining" in asked[0]
    assert [e.status for e in q.entries] == ["aborted", "queued"]
    assert _logged(window, "mvm") == ["aborted"]


def test_station_from_recent_list(qtbot, tmp_path):
    w = _make_window(qtbot, tmp_path, rows=16, cols=16)
    w.settings.setValue("recent_stations", [str(tmp_path / "bench.toml"), ""])
    w.bench._fill_recent()
    assert w.bench.recent.count() == 2 and w.bench.recent.itemText(1) == "(embedded simulated bench)"
    w.bench.recent.setCurrentIndex(1)
    w.bench.recent.activated.emit(1)
    assert w.bench.station_source() is None
    w.close()


def test_export_helpers_write_heatmap_csv(qtbot, tmp_path):
    from xbarlab.gui.plots import Heatmap, save_plot

    h = Heatmap("map", "G (µS)", scale=1e6)
    qtbot.addWidget(h)
    h.set_data(np.array([[1e-6, 2e-6], [3e-6, 4e-6]]))
    path = save_plot(h, tmp_path / "map.csv")
    lines = Path(path).read_text().splitlines()
    assert lines[0] == "row,col,G (µS)" and lines[-1].startswith("1,1,4.0")


def test_form_names_units_and_si_entry(qtbot):
    from xbarlab.experiments.mvm import MvmExperiment
    from xbarlab.gui.forms import human_name, parse_quantity

    specs = {p.name: p for p in MvmExperiment.params_spec}
    assert human_name(specs["n_in"]) == "Matrix inputs" and human_name(specs["seed"]) == "Seed"
    assert parse_quantity("5 µS", "S") == pytest.approx(5e-6) and parse_quantity("5u", "S") == pytest.approx(5e-6)
    assert parse_quantity("100 ns", "s") == pytest.approx(1e-7) and parse_quantity("0.2", "V") == 0.2
    with pytest.raises(ValueError):
        parse_quantity("5 parsecs", "V")
    from xbarlab.instruments.config import load_station
    from xbarlab.instruments.station import embedded_station_path

    config = load_station(embedded_station_path("sim"))
    form = ParamForm(MvmExperiment, only=("g_min", "g_max"), station_config=lambda: config)
    qtbot.addWidget(form)
    assert form.editors["g_min"].text() == "5 µS" and "g_min [S]" in form.editors["g_min"].toolTip()
    form.set_value("g_min", "70 µS")  # above g_max: the experiment's own check names both
    assert not form.valid and form.editors["g_min"].styleSheet() == BAD_STYLE and "g_max" in form.error.text()


def test_logbook_follows_a_cli_campaign_live(qtbot, window, tmp_path):
    """A campaign run by the CLI in another process writes the log (SWMR); the tab shows its runs as they come."""
    import subprocess
    import sys

    (tmp_path / "small.toml").write_text(sim_station_text(16, 16, seed=3))
    campaign = tmp_path / "reads.toml"
    campaign.write_text('[campaign]\nname = "reads"\nstation = "small.toml"\n'
                        '[[steps]]\ntype = "array_read"\n[steps.params]\nrepeats = 40\n'
                        f'[steps.sweep]\nread_voltage = {[round(0.1 + 0.004 * i, 3) for i in range(24)]}\n')
    log = tmp_path / "reads.h5"
    err = tmp_path / "stderr.txt"  # a file, not a pipe: an unread pipe would fill and stall the campaign
    with err.open("w") as err_file:
        proc = subprocess.Popen([sys.executable, "-c", "import sys; from xbarlab.cli import main; sys.exit(main())",
                                 "run", str(campaign), "-o", str(log), "-q"], cwd=Path(__file__).resolve().parents[1],
                                stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        tab = window.logbook
        window.tabs.setCurrentWidget(tab)
        tab.timer.setInterval(200)  # follow faster than the campaign's steps, however quick the machine
        qtbot.waitUntil(lambda: log.exists() and tab.open(log) and tab.runs.rowCount() >= 1, timeout=60000)
        seen = set()

        def progressed() -> bool:
            seen.add(tab.runs.rowCount())
            return proc.poll() is not None

        qtbot.waitUntil(progressed, timeout=120000)
        assert proc.returncode == 0, err.read_text()
        qtbot.waitUntil(lambda: tab.runs.rowCount() == 25, timeout=6000)  # the session run and 24 reads
        assert len(seen) >= 2, seen  # rows appeared while the campaign was still writing
    finally:
        if proc.poll() is None:
            proc.kill()


def test_eqprop_button_trains_and_draws_outputs_and_accuracy_per_epoch(qtbot, window64, tmp_path):
    from test_eqprop_experiment import tiny_dataset

    window = window64
    section = window.training.eqprop
    click(qtbot, window, window.training.modes)  # the Training tab, then its equilibrium-propagation page
    bar = window.training.modes.tabBar()
    qtbot.mouseClick(bar, Qt.LeftButton, pos=bar.tabRect(1).center())
    assert window.training.modes.currentWidget() is section
    data = tiny_dataset(tmp_path / "tiny.npz")
    for name, value in (("dataset", str(data)), ("hidden", 4), ("epochs", 2), ("limit", 0), ("batch", 8)):
        section.panel.form.set_value(name, value)
    click(qtbot, window, section.panel.button)
    _wait_idle(qtbot, window, timeout=120000)
    assert list(section.acc_curve.xData) == [1, 2]
    assert len(section.output_curves) == 3  # one solid (free) and one dashed (nudged) curve per class
    free, nudged = section.output_curves[0]
    assert len(free.yData) == len(nudged.yData) == 2 and list(free.yData) != list(nudged.yData)
    assert "test accuracy" in section.info.text()
    runs = LogReader(window.controller.log_path).runs()
    assert [(r["params"].get("rule"), r["status"]) for r in runs if r["kind"] == "equilibrium_train"] == [
        ("board", "completed")]
