"""``xbarlab gui``: start the window, or render a tab to a PNG (``--screenshot``) and exit."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from PyQt5.QtWidgets import QApplication

from xbarlab.errors import ConfigError
from xbarlab.gui.app import TABS, MainWindow


def wait(app: QApplication, window: MainWindow, timeout: float = 900.0, settle: float = 0.3) -> None:
    """Process events until the controller is idle (and stays idle for ``settle`` s)."""
    end = time.monotonic() + timeout
    idle_since: float | None = None
    while time.monotonic() < end:
        app.processEvents()
        if window.controller.busy:
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > settle:
            return
        time.sleep(0.01)
    raise TimeoutError("the experiment did not finish in time")


def run_default(app: QApplication, window: MainWindow, tab: str) -> None:
    """Run the tab's default experiment(s) on the connected bench by pressing the tab's own buttons."""
    if tab == "array":
        window.array.read.button.click()
        wait(app, window)
        import numpy as np

        g = window.array.heatmap.data
        if g is not None:
            r, c = np.unravel_index(np.argmin(np.abs(g - np.median(g))), g.shape)
            window.array.select_cell(int(r), int(c))
            window.array.iv.form.set_value("return_sweep", True)
            window.array.iv.button.click()
            wait(app, window)
            window.array.history_button.click()
    elif tab == "calibration":
        window.calibration.panels[window.calibration.choice.currentData()].button.click()
    elif tab == "mvm":
        window.mvm.panel.button.click()
    elif tab == "solve":
        window.solve.refine.button.click()
        wait(app, window)
        window.solve.one_step.button.click()
    elif tab == "onestep":
        window.onestep.panel.form.set_value("potential", "double")
        window.onestep.panel.button.click()
    elif tab == "training":
        for name, value in (("limit", 500), ("epochs", 4), ("lr", 0.1)):  # enough to learn something visible
            window.training.panel.form.set_value(name, value)
        window.training.panel.button.click()
        for _ in range(3):  # float baseline, the analog rule, the conductance map
            wait(app, window)
    elif tab == "logbook":  # an array read (replayed offline), then two float trainings whose epochs are compared
        window.array.read.button.click()
        wait(app, window)
        read_run = window.controller.session.last_run_id
        runs = []
        for seed in (0, 1):
            for name, value in (("rule", "float"), ("epochs", 8), ("limit", 600), ("seed", seed)):
                window.training.panel.form.set_value(name, value)
            window.training.baseline.setChecked(False)
            window.training.panel.button.click()
            wait(app, window)
            runs.append(window.controller.session.last_run_id)
        window.logbook.current_button.click()
        window.logbook.select_run(read_run)
        window.logbook.replay_button.click()
        end = time.monotonic() + 120
        while window.logbook.last_report is None and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
        report = window.logbook.meta.toPlainText()
        window.logbook.select_run(runs[1])
        window.logbook.pick(["train_acc", "test_acc"], right="train_loss", x="epoch")
        window.logbook.compare_with(runs[0])
        window.logbook.meta.setPlainText(report)
    elif tab == "queue":
        window.array.read.queue_button.click()
        window.array.iv.form.set_value("return_sweep", True)
        window.array.iv.queue_button.click()
        window.mvm.panel.form.set_value("n_in", 8)
        window.mvm.panel.form.set_value("n_out", 8)
        window.mvm.panel.queue_button.click()
        window.queue.start_button.click()
    wait(app, window)


def main(station: str | None = None, screenshot: str | None = None, tab: str | None = None,
         log_folder: str | None = None) -> int:
    if tab is not None and tab not in TABS:
        raise ConfigError(f"--tab {tab!r}: expected one of {', '.join(TABS)}")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(station, log_folder)
    if screenshot is not None:
        window.resize(1366, 768)  # the smallest common laptop screen: everything must fit
    window.show()
    if screenshot is None:
        return app.exec_()
    window.tabs.setCurrentIndex(TABS.index(tab or "bench"))
    try:
        window.connect_bench()
        wait(app, window)
        if window.controller.session is None:
            raise ConfigError(f"could not connect: {window.msg_label.text() or window.bench.state.text()}")
        run_default(app, window, tab or "bench")
    except TimeoutError as exc:
        window.close()  # aborts the run at a safe point and closes the log
        raise ConfigError(f"--screenshot: {exc}") from None
    window.tabs.setCurrentIndex(TABS.index(tab or "bench"))
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(screenshot)):
        raise ConfigError(f"{screenshot}: could not write the PNG")
    window.close()
    return 0
