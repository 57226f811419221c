"""Shared test helper (not a test module): a numpy crossbar TEST DOUBLE for fast unit tests of the
experiments' numerics (no bench, no protocol).

The real physics lives in xbarlab.sim and is exercised by the station-level tests; this double only
has what the experiment layer needs: soft-bounds devices with a pulse threshold, optional up/down
asymmetry, read noise, and ideal periphery.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from xbarlab.instruments.interfaces import BoardInfo, CrossbarArray, Pulse
from xbarlab.instruments.links import WallClock


class FakeCrossbar(CrossbarArray):
    """TEST DOUBLE: soft-bounds cells, Δg_up = step·up·(1 − s), Δg_down = step·down·s, s = (g − g_min)/span."""

    def __init__(
        self,
        rows: int = 16,
        cols: int = 16,
        *,
        g_min: float = 1e-6,
        g_max: float = 100e-6,
        step: float = 0.01,  # fraction of the window per pulse at the far bound
        up: float = 1.0,
        down: float = 1.0,
        threshold: float = 0.8,  # V: |amplitude| below this does nothing (half-select safe)
        read_noise: float = 0.0,  # A per output, as a fraction of one cell's current at g_max and 0.2 V
        seed: int = 0,
    ) -> None:
        self.rows, self.cols = rows, cols
        self.g_min, self.g_max = g_min, g_max
        self.step, self.up, self.down, self.threshold = step, up, down, threshold
        self.read_noise = read_noise
        self.rng = np.random.default_rng(seed)
        self.g = self.rng.uniform(g_min, g_max, size=(rows, cols))
        self.read_voltage, self.tia_range = 0.2, 1e-3
        self.pulses = 0
        self.mvm_count = 0
        self.off_calls = 0

    # -- helpers for tests ---------------------------------------------------------------------
    def set_conductances(self, rows: np.ndarray, cols: np.ndarray, g: np.ndarray) -> None:
        self.g[np.ix_(rows, cols)] = g

    def _noisy(self, i: np.ndarray) -> np.ndarray:
        if not self.read_noise:
            return i
        return i + self.rng.normal(0.0, self.read_noise * self.g_max * 0.2, size=i.shape)

    def _pulse(self, r: int, c: int, amplitude: float) -> None:
        if abs(amplitude) < self.threshold:
            return
        span = self.g_max - self.g_min
        s = (self.g[r, c] - self.g_min) / span
        if amplitude > 0:
            self.g[r, c] += self.step * self.up * (1.0 - s) * span
        else:
            self.g[r, c] -= self.step * self.down * s * span
        self.g[r, c] = min(max(self.g[r, c], self.g_min), self.g_max)
        self.pulses += 1

    # -- CrossbarArray ---------------------------------------------------------------------------
    def identify(self) -> BoardInfo:
        return BoardInfo("fake", 1, self.rows, self.cols, "1T1R", 1)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.rows, self.cols)

    def configure(self, read_voltage: float, tia_range: float) -> None:
        self.read_voltage, self.tia_range = read_voltage, tia_range

    def read_cell(self, row: int, col: int) -> float:
        return float(self.g[row, col])

    def read_all(self) -> np.ndarray:
        return self.g.copy()

    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        self.mvm_count += 1
        return self._noisy(self.g.T @ np.asarray(row_voltages, dtype=float))

    def mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        self.mvm_count += 1
        return self._noisy(self.g @ np.asarray(col_voltages, dtype=float))

    def pulse_cell(self, row: int, col: int, amplitude: float, width: float) -> None:
        self._pulse(row, col, amplitude)

    def pulse_batch(self, pulses: list[Pulse]) -> None:
        for p in pulses:
            self._pulse(p.row, p.col, p.amplitude)

    def outer_product_update(self, row_trains, col_trains, amplitude, width) -> None:
        rt, ct = np.asarray(row_trains, dtype=float), np.asarray(col_trains, dtype=float)
        if abs(amplitude) < self.threshold:
            return
        span = self.g_max - self.g_min
        for t in range(rt.shape[1]):
            r, c = np.nonzero(rt[:, t])[0], np.nonzero(ct[:, t])[0]
            if not (r.size and c.size):
                continue
            sign = np.sign(amplitude) * np.outer(rt[r, t], ct[c, t])
            g = self.g[np.ix_(r, c)]
            s = (g - self.g_min) / span
            g = g + np.where(sign > 0, self.step * self.up * (1 - s), -self.step * self.down * s) * span
            self.g[np.ix_(r, c)] = np.clip(g, self.g_min, self.g_max)
            self.pulses += sign.size

    def route_smu(self, port: int, row: int, col: int) -> None:
        pass

    def unroute_smu(self, port: int) -> None:
        pass

    def all_off(self) -> None:
        self.off_calls += 1


class FakeStation:
    """TEST DOUBLE of Station around a FakeCrossbar (no SMUs, wall-clock instrument time)."""

    def __init__(self, board: FakeCrossbar) -> None:
        self.board = board
        self.sim = None
        self.safe_calls = 0

        class _Cfg:
            read_voltage = 0.2
            tia_range = 1e-3
            device = None

        self.config = _Cfg()

    def require_board(self) -> FakeCrossbar:
        return self.board

    def sim_time(self) -> None:
        return None

    def wait(self, seconds: float, checkpoint: Callable[[], None] | None = None) -> None:
        WallClock().idle(seconds, checkpoint)

    def safe_state(self) -> list[str]:
        self.safe_calls += 1
        self.board.all_off()
        return []
