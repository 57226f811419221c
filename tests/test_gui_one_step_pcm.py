"""GUI: the One-step tab (Sun 2019 problems) and the PCM training options, pressed with the mouse, offscreen."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PyQt5")
pytest.importorskip("pyqtgraph")

from PyQt5.QtCore import QSettings, Qt  # noqa: E402

from xbarlab.gui.app import MainWindow  # noqa: E402
from xbarlab.logbook import LogReader  # noqa: E402
from xbarlab.sim.stations import sim_station_text  # noqa: E402

#: how long a run started from the GUI may take before the test calls it hung (ms of wall time): the PCM + 3T1C
#: training run took 140 s of wall time on the 2-core machine at load 16, beyond the 120 s allowed before
RUN_TIMEOUT_MS = 600_000


def _window(qtbot, tmp_path, text: str) -> MainWindow:
    station = tmp_path / "bench.toml"
    station.write_text(text)
    settings = QSettings(str(tmp_path / "g.ini"), QSettings.IniFormat)
    w = MainWindow(str(station), str(tmp_path / "logs"), settings=settings)
    qtbot.addWidget(w)
    w.resize(1366, 768)
    w.show()
    _click(qtbot, w, w.bench.connect_button)
    qtbot.waitUntil(lambda: w.controller.session is not None, timeout=20000)
    return w


def _click(qtbot, w, widget) -> None:
    for k in range(w.tabs.count()):
        if w.tabs.widget(k).isAncestorOf(widget):
            w.tabs.setCurrentIndex(k)
    qtbot.wait(10)
    assert widget.isEnabled()
    qtbot.mouseClick(widget, Qt.LeftButton)


def _curves(plot) -> dict[str, object]:
    items = plot.getPlotItem().listDataItems()
    return {i.name(): i for i in items if getattr(i, "xData", None) is not None and len(i.xData)}


def _runs(w, kind):
    return [r for r in LogReader(w.controller.log_path).runs() if r["kind"] == kind]


def test_one_step_tab_draws_wavefunctions_and_pagerank_and_logs(qtbot, tmp_path):
    w = _window(qtbot, tmp_path, sim_station_text(16, 16, seed=4))
    tab = w.onestep
    assert w.tabs.tabText(w.tabs.indexOf(tab)) == "One-step"
    for name, value in (("problem", "schrodinger"), ("potential", "double"), ("n", 8), ("states", 2)):
        tab.panel.form.set_value(name, value)
    _click(qtbot, w, tab.panel.button)
    qtbot.waitUntil(lambda: not w.controller.busy and "overlap" in tab.result.text(), timeout=RUN_TIMEOUT_MS)
    curves = _curves(tab.plot)
    assert "V(x)" in curves and len(curves) == 5  # the well, 2 states x (array, numpy)
    res = tab.last_result
    for k in range(2):  # each curve is the state's wavefunction offset by its energy (array: measured E)
        array_k = next(c for n, c in curves.items() if n.startswith(f"state {k}, array"))
        numpy_k = next(c for n, c in curves.items() if n.startswith(f"state {k}, numpy"))
        assert np.array_equal(array_k.xData, res.x) and len(res.x) == 8
        for curve, psi, e in ((array_k, res.wavefunctions[k], res.energies[k]),
                              (numpy_k, res.wavefunctions_exact[k], res.energies_exact[k])):
            shape = curve.yData - e
            assert np.allclose(shape / np.max(np.abs(shape)), psi / np.max(np.abs(psi)), atol=1e-9)
        assert f"{res.energies[k]:.2f}" in next(n for n in curves if n.startswith(f"state {k}, array"))
    assert f"overlap {res.overlaps[0]:.4f}" in tab.result.text()
    item = tab.plot.getPlotItem()
    assert "x (box length 1)" in item.getAxis("bottom").labelText and "ħ²/(m·L²)" in item.getAxis("left").labelText
    runs = _runs(w, "one_step")
    assert [(r["params"]["problem"], r["status"]) for r in runs] == [("schrodinger", "completed")]
    assert runs[0]["run_id"] in tab.result.text()

    tab.panel.form.set_value("problem", "pagerank")
    tab.panel.form.set_value("n", 8)  # 2n columns of a 16-column array
    _click(qtbot, w, tab.panel.button)
    qtbot.waitUntil(lambda: not w.controller.busy and "Kendall" in tab.result.text(), timeout=RUN_TIMEOUT_MS)
    curves = _curves(tab.plot)
    assert set(curves) == {"digital PageRank", "array"}
    scores = curves["digital PageRank"].yData
    assert len(scores) == 8 and np.all(np.diff(scores) <= 1e-12) and abs(scores.sum() - 1) < 1e-6
    assert "PageRank score" in item.getAxis("left").labelText
    assert [r["params"]["problem"] for r in _runs(w, "one_step")] == ["schrodinger", "pagerank"]
    w.close()


def test_training_tab_pcm_3t1c_option_and_refused_push_pull(qtbot, tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    data = tmp_path / "tiny.npz"
    np.savez(data, X=rng.normal(size=(40, 4)) + 2 * y[:, None], y=y)
    w = _window(qtbot, tmp_path, sim_station_text(16, 32, device="pcm", seed=7, wire_resistance=0.0,
                                                  stuck_fraction=0.0, cap_cells={}))
    tab = w.training
    form = tab.panel.form
    for name, value in (("rule", "sgd"), ("dataset", str(data)), ("hidden", 2), ("epochs", 1), ("limit", 0)):
        form.set_value(name, value)
    qtbot.wait(10)
    problems = form.values()[1]
    assert any("PCM station refuses" in p for p in problems) and not tab.panel.button.isEnabled()
    for name, value in (("rule", "pcm_3t1c"), ("cap_transfer_every", 8), ("significance", 3.0)):
        form.set_value(name, value)
    qtbot.wait(10)
    assert not form.values()[1]
    tab.baseline.setChecked(False)
    _click(qtbot, w, tab.panel.button)
    qtbot.waitUntil(lambda: not w.controller.busy and "capacitor transfers" in tab.info.text(), timeout=RUN_TIMEOUT_MS)
    assert "pcm_3t1c: test accuracy" in tab.info.text()
    runs = _runs(w, "train")
    assert [(r["params"]["rule"], r["status"]) for r in runs] == [("pcm_3t1c", "completed")]
    transfers = LogReader(w.controller.log_path).stream(runs[0]["run_id"], "transfers")
    assert transfers.data.shape[0] >= 3
    w.close()
