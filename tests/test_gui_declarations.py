"""The GUI takes what it shows from the steps' declarations: plots of a stream, calibration steps by category."""

from __future__ import annotations

import pytest

pytest.importorskip("PyQt5")
pytest.importorskip("pyqtgraph")

from PyQt5.QtCore import Qt  # noqa: E402
from PyQt5.QtWidgets import QFileDialog  # noqa: E402

from xbarlab.gui.calibration import calibration_kinds  # noqa: E402
from xbarlab.gui.controller import BenchController  # noqa: E402
from xbarlab.gui.logbook import LogbookTab  # noqa: E402
from xbarlab.runs.session import LabSession  # noqa: E402
from xbarlab.runs.step import STEP_TYPES  # noqa: E402


def test_the_logbook_tab_plots_a_stream_as_its_step_declares(qtbot, tmp_path, monkeypatch):
    log = tmp_path / "iv.h5"
    with LabSession.open(None, log) as lab:
        lab.run("iv_sweep", {"points": 7})
        run_id = lab.last_run_id
    tab = LogbookTab(BenchController())
    qtbot.addWidget(tab)
    tab.show()
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(log), ""))
    qtbot.mouseClick(tab.open_button, Qt.LeftButton)
    assert tab.select_run(run_id)
    qtbot.waitUntil(lambda: tab.stream_choice.currentText() == "iv", timeout=5000)
    ticked = [tab.y_list.item(k).text() for k in range(tab.y_list.count())
              if tab.y_list.item(k).checkState() == Qt.Checked]
    # declared: current against voltage; the compliance flags (0/1, far off the current's scale) are not drawn
    assert tab.x_choice.currentText() == "voltage" and ticked == ["current"]
    assert tab.right_choice.currentData() == -1
    assert "I-V sweep" in tab.plot.getPlotItem().titleLabel.text


def test_the_calibration_tab_lists_steps_by_their_declared_category():
    kinds = calibration_kinds()
    assert {"read_calibration", "write_verify", "forming", "pulse_response"} <= set(kinds)
    assert "mvm" not in kinds and "iv_sweep" not in kinds
    assert all(STEP_TYPES[k].category == "calibration" for k in kinds)
