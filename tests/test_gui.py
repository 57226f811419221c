"""The Qt lab GUI, offscreen: connect, MVM, training with live plots, abort, logbook replay, forms."""

from __future__ import annotations

import time

import pytest

pytest.importorskip("PyQt5")
pytest.importorskip("pyqtgraph")

from PyQt5.QtCore import QSettings, QTimer  # noqa: E402

from xbarlab.gui.app import MainWindow  # noqa: E402
from xbarlab.gui.forms import ParamForm  # noqa: E402
from xbarlab.logbook import LogReader  # noqa: E402
from xbarlab.sim.stations import sim_station_text  # noqa: E402


@pytest.fixture()
def window(qtbot, tmp_path):
    station = tmp_path / "bench.toml"
    station.write_text(sim_station_text(64, 64, seed=4))  # training needs 64 rows (8x8 digits)
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.IniFormat)
    w = MainWindow(str(station), str(tmp_path / "logs"), settings=settings)
    qtbot.addWidget(w)
    w.show()
    w.connect_bench()
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=20000)
    yield w
    w.close()


def _wait_idle(qtbot, w, timeout=120000):
    qtbot.waitUntil(lambda: not w.controller.busy, timeout=timeout)


def test_connecting_the_sim_station_shows_identities_limits_and_the_log(window):
    table = window.bench.instruments
    identities = {table.item(k, 0).text(): table.item(k, 3).text() for k in range(table.rowCount())}
    assert "MODEL 2400" in identities["smu1"] and "crossbar" in identities["board"]
    assert "max_voltage" in window.bench.limits.item(0, 1).text()
    assert str(window.controller.log_path) in window.log_label.text()
    assert window.clock_label.text().startswith("sim clock:")


def test_mvm_from_the_gui_plots_data_and_logs_the_run(qtbot, window):
    form = window.mvm.panel.form
    for name, value in (("n_in", 6), ("n_out", 6), ("vectors", 4), ("direction", "forward")):
        form.set_value(name, value)
    assert window.mvm.run()
    _wait_idle(qtbot, window)
    items = window.mvm.scatter.getPlotItem().listDataItems()
    assert items and len(items[-1].xData) == 6 * 4  # 6 outputs of 4 input vectors, measured vs expected
    assert "median relative error" in window.mvm.stats.text()
    runs = LogReader(window.controller.log_path).runs()
    assert [r["status"] for r in runs if r["kind"] == "mvm"] == ["completed"]


def test_training_plots_live_curves_keeps_the_ui_responsive_and_abort_leaves_outputs_off(qtbot, window):
    tab = window.training
    tab.baseline.setChecked(False)
    for name, value in (("rule", "float"), ("epochs", 3), ("limit", 600), ("hidden", 8)):
        tab.panel.form.set_value(name, value)
    assert tab.run()
    # the event loop answers within 100 ms while the worker trains: a 20 ms timer keeps ticking
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start(20)
    qtbot.wait(1500)
    timer.stop()
    assert window.controller.busy or len(tab.curves["float"]["test_acc"]) == 3
    gaps = [b - a for a, b in zip(ticks, ticks[1:], strict=False)]
    assert len(gaps) > 20 and max(gaps) - 0.02 < 0.1, max(gaps)
    qtbot.waitUntil(lambda: bool(tab.curves["float"]["test_acc"]), timeout=120000)  # live: an epoch arrived
    _wait_idle(qtbot, window)
    assert len(tab.curves["float"]["acc"].xData) == 3 and max(tab.curves["float"]["acc"].yData) > 0.3
    # training on the array, aborted mid-way
    tab.panel.form.set_value("rule", "sgd")
    tab.panel.form.set_value("epochs", 50)
    seen = []
    window.controller.progress.connect(lambda kind, p: seen.append(p))
    assert tab.run()
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=60000)  # programming the weights has begun
    window.abort_button.click()
    _wait_idle(qtbot, window, timeout=60000)
    assert "aborted" in window.msg_label.text()
    station = window.controller.session.station
    for name, emu in station.sim.emulators.items():
        if name != "board":
            assert not any(ch.output for ch in emu.ch), name
    log = window.controller.log_path
    window.close()  # disconnects: log closed
    runs = LogReader(log).runs()
    assert [r["status"] for r in runs if r["kind"] == "train"] == ["completed", "aborted"]
    assert "running" not in {r["status"] for r in runs}


def test_closing_during_a_run_aborts_safely_and_closes_the_log(qtbot, window):
    tab = window.training
    tab.baseline.setChecked(False)
    for name, value in (("rule", "sgd"), ("epochs", 50), ("limit", 600)):
        tab.panel.form.set_value(name, value)
    seen = []
    window.controller.progress.connect(lambda kind, p: seen.append(p))
    assert tab.run()
    qtbot.waitUntil(lambda: len(seen) >= 1, timeout=60000)
    log = window.controller.log_path
    window.close()
    assert window.controller.session is None
    runs = LogReader(log).runs()
    assert runs[-1]["status"] == "aborted"


def test_logbook_tab_opens_lists_plots_and_replays(qtbot, window):
    window.array.refresh()
    _wait_idle(qtbot, window)
    assert window.array.heatmap.data is not None and window.array.heatmap.data.shape == (64, 64)
    assert window.array.sweep_cell(3, 4)
    _wait_idle(qtbot, window)
    tab = window.logbook
    assert tab.open(window.controller.log_path)
    assert tab.runs.rowCount() == 3
    assert tab.select_run(window.controller.session.last_run_id)
    assert tab.stream_choice.currentText() == "iv"
    assert tab.plot.getPlotItem().listDataItems()
    assert tab.replay_selected()
    qtbot.waitUntil(lambda: tab.last_report is not None, timeout=60000)
    assert len(tab.last_report.reproduced) == 2 and "bit for bit" in tab.meta.toPlainText()
    # a log from another session, opened from a file
    assert tab.open(window.controller.log_path)


def test_parameter_forms_say_what_is_wrong(qtbot):
    from xbarlab.experiments.measurements import IVSweep

    form = ParamForm(IVSweep)
    qtbot.addWidget(form)
    form.set_value("points", "many")
    form.set_value("compliance", -1)
    _, problems = form.values()
    text = form.error.text()
    assert any("points" in p for p in problems) and "points" in text and "compliance" in text


def test_calibration_tab_runs_write_verify_and_device_fit(qtbot, window):
    tab = window.calibration
    assert tab.select("device_fit")
    for name, value in (("cells", 6), ("pulses", 20), ("cycles", 2)):
        tab.panels["device_fit"].form.set_value(name, value)
    assert tab.run()
    _wait_idle(qtbot, window)
    names = [item.name() for item in tab.main_plot.getPlotItem().listDataItems()]
    status = tab.panels["device_fit"].status.text()
    assert "cell 0: measured" in names and "cell 0: fitted model" in names, (status, names)
    assert "dw_up" in tab.live.text()
