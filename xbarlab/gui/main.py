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
    """Run the tab's default experiment(s) on the connected bench."""
    if tab == "array":
        window.array.refresh()
        wait(app, window)
        import numpy as np

        g = window.array.heatmap.data
        if g is not None:
            r, c = np.unravel_index(np.argmin(np.abs(g - np.median(g))), g.shape)
            window.array.sweep_cell(int(r), int(c))
    elif tab == "calibration":
        window.calibration.run()
    elif tab == "mvm":
        window.mvm.run()
    elif tab == "solve":
        window.solve.run()
        wait(app, window)
        window.solve.one_step.start()
    elif tab == "training":
        for name, value in (("limit", 500), ("epochs", 4), ("lr", 0.1)):  # enough to learn something visible
            window.training.panel.form.set_value(name, value)
        window.training.run()
        for _ in range(3):  # float baseline, the analog rule, the conductance map
            wait(app, window)
    elif tab == "logbook":
        window.array.refresh()
        wait(app, window)
        window.logbook.open(window.controller.log_path)
        window.logbook.select_run(window.controller.session.last_run_id)
        window.logbook.replay_selected()
        end = time.monotonic() + 60
        while window.logbook.last_report is None and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.01)
    wait(app, window)


def main(station: str | None = None, screenshot: str | None = None, tab: str | None = None,
         log_folder: str | None = None) -> int:
    if tab is not None and tab not in TABS:
        raise ConfigError(f"--tab {tab!r}: expected one of {', '.join(TABS)}")
    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(station, log_folder)
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
