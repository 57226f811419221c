"""Board periphery: input DACs, per-line TIAs and output ADCs.

Defaults are those of a lab test board rather than an inference tile (ArC TWO: 18-bit
ADC, REFERENCE.md): 16-bit DACs, 18-bit ADCs, TIA gain error 2 % (1σ) and offset 2e-4 of
full scale (1σ) per line, fixed per board (seeded), plus 5e-6 of full scale additive
noise per conversion. Outputs clip at ±full scale; the board flags saturation.

Imperfections that a read-path calibration has to find and that do not stay put:

* **DAC errors** (judgement, typical 16-bit DAC datasheets: gain error ≲ ±0.1 % of full scale,
  offset ≲ ±1.5 mV): the input DACs share a reference, so their gain error ``dac_gain_sigma``
  (1σ, 5e-4) is common to every line, and so would be their offset ``dac_offset_sigma``: every
  "0 V" line then drives δ into the array. The read-path calibration now separates it from the TIA
  offsets (:func:`~xbarlab.calibration.readpath.calibrate_read_path`: the intercept of each column's
  board-against-SMU fit; without that, a 0.5 mV offset booked as TIA offset cost write-verify truth
  yield 0.75 at ±1 % on a 10×10 RRAM array) and :class:`~xbarlab.calibration.readpath.CalibratedBoard`
  trims MVM inputs by it. The default is still 0: the intended value (1σ 0.5 mV, a judgement within
  the ≲ ±1.5 mV of such datasheets) has not yet been run through the whole test suite and the
  benchmarks (set ``dac_offset_sigma = 5e-4`` in ``[sim.periphery]`` to use it).
* **Drift** with simulated time (:attr:`Periphery.clock`, linked to the bench's clock by
  :class:`~xbarlab.sim.bench.SimBench`; the drift is a pure function of the seed and the time, so a
  bench restored from a checkpoint, or rebuilt by a resumed sweep worker, drifts along the same path): the board's
  temperature swings ``temp_swing`` K (1 K, judgement: a lab's day–night cycle) with a period of
  one day; each TIA's gain moves with a tempco drawn per line (1σ ``gain_tempco`` 1e-4 /K,
  judgement: thin-film feedback resistors 25–100 ppm/K) and its offset with ``offset_tempco``
  (1σ 1e-5 of full scale per K); on top, both wander as a random walk (``gain_walk`` 2e-4 and
  ``offset_walk`` 1e-5 of full scale per √hour, judgement: component ageing and 1/f drift). A
  read-path calibration therefore goes stale over hours; the calibration layer records its age
  (``max_calibration_age``).

The new imperfections draw from their own seeded stream, so the fixed per-line errors of a
seed are those of earlier versions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_HOUR = 3600.0  # s
_DAY = 86400.0  # s


class Periphery:
    """DAC/ADC/TIA model of one board (V, A)."""

    def __init__(
        self,
        rows: int,
        cols: int,
        seed: int = 0,
        dac_bits: int = 16,
        adc_bits: int = 18,
        gain_sigma: float = 0.02,
        offset_sigma: float = 2e-4,
        noise: float = 5e-6,
        dac_gain_sigma: float = 5e-4,
        dac_offset_sigma: float = 0.0,
        temp_swing: float = 1.0,
        gain_tempco: float = 1e-4,
        offset_tempco: float = 1e-5,
        gain_walk: float = 2e-4,
        offset_walk: float = 1e-5,
    ) -> None:
        if not (1 <= dac_bits <= 32 and 1 <= adc_bits <= 32):
            raise ValueError(f"DAC/ADC bits must be in 1..32, got {dac_bits}, {adc_bits}")
        drift = (dac_gain_sigma, dac_offset_sigma, temp_swing, gain_tempco, offset_tempco, gain_walk, offset_walk)
        if gain_sigma < 0 or offset_sigma < 0 or noise < 0 or min(drift) < 0:
            raise ValueError("gain_sigma, offset_sigma, noise and the DAC and drift spreads must be ≥ 0")
        rng = np.random.default_rng(seed)
        self.dac_bits, self.adc_bits = int(dac_bits), int(adc_bits)
        self.noise = float(noise)
        self.gain = {
            "col": 1 + gain_sigma * rng.standard_normal(cols),
            "row": 1 + gain_sigma * rng.standard_normal(rows),
        }
        self.offset = {"col": offset_sigma * rng.standard_normal(cols), "row": offset_sigma * rng.standard_normal(rows)}
        self._rng = np.random.default_rng(seed + 7919)
        # imperfections added later: their own stream, so the per-line errors above stay those of the seed
        extra = np.random.default_rng([seed, 1_000_003])
        self.dac_gain = 1 + dac_gain_sigma * float(extra.standard_normal())
        self.dac_offset = dac_offset_sigma * float(extra.standard_normal())
        self.temp_swing = float(temp_swing)
        sizes = {"col": cols, "row": rows}
        self._tempco = {s: gain_tempco * extra.standard_normal(n) for s, n in sizes.items()}
        self._otempco = {s: offset_tempco * extra.standard_normal(n) for s, n in sizes.items()}
        self._walk_scale = (float(gain_walk), float(offset_walk))
        self._walk_seed = int(seed)
        self._walk_sizes = (int(cols), int(rows))
        # hourly grid of the walks (col then row lines): a cache of a pure function of (seed, hour), never state
        self._cache: dict[str, np.ndarray] = {"walk": np.zeros((1, 2 * (cols + rows)))}
        self._drifting = temp_swing > 0 and (gain_tempco > 0 or offset_tempco > 0) or gain_walk > 0 or offset_walk > 0
        #: the simulated clock (``now`` in s); None: no drift (time stands still)
        self.clock: Any = None

    # -- drift ---------------------------------------------------------------------------------
    def temperature_delta(self, t: float) -> float:
        """Board temperature minus its mean (K) at simulated time ``t`` s."""
        return self.temp_swing * float(np.sin(2 * np.pi * t / _DAY))

    def _walk_at(self, side: str, t: float) -> np.ndarray:
        """(gain, offset) random walks of every line at ``t`` s: standard Brownian paths on an hourly grid,
        linearly interpolated. Hour k's increments are drawn from a generator seeded by (seed, k), so the
        path depends on nothing but the seed: not on the order of the queries, nor on a checkpoint."""
        h = max(t, 0.0) / _HOUR
        grid = self._cache["walk"]
        need = int(np.ceil(h)) + 1
        if grid.shape[0] < need:  # one hour after the other: the same sums however the grid was extended
            rows = [grid[-1]]
            for k in range(grid.shape[0], need):
                rows.append(rows[-1] + np.random.default_rng([self._walk_seed, 1_000_033, k]).standard_normal(
                    grid.shape[1]))
            grid = np.vstack([grid, *rows[1:]])
            self._cache["walk"] = grid
        k = int(np.floor(h))
        f = h - k
        row = grid[k] if f == 0 else (1 - f) * grid[k] + f * grid[k + 1]
        n_col, n_row = self._walk_sizes
        return row[: 2 * n_col] if side == "col" else row[2 * n_col:]

    def line_errors(self, side: str, t: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(gain, offset as a fraction of full scale) of every TIA on ``side`` at simulated time ``t`` s
        (default: the clock's now; without a clock the fixed errors)."""
        if t is None:
            t = float(self.clock.now) if self.clock is not None else 0.0
        if not self._drifting or t == 0.0:
            return self.gain[side], self.offset[side]
        at = self._cache.get("at")
        if at is not None and at[0] == t and side in at[1]:
            return at[1][side]
        dt = self.temperature_delta(t)
        w = self._walk_at(side, t)
        n = self.gain[side].size
        gain = self.gain[side] * (1 + self._tempco[side] * dt + self._walk_scale[0] * w[:n])
        offset = self.offset[side] + self._otempco[side] * dt + self._walk_scale[1] * w[n:]
        cache = at[1] if at is not None and at[0] == t else {}
        cache[side] = (gain, offset)
        self._cache["at"] = (t, cache)
        return gain, offset

    # -- conversions ---------------------------------------------------------------------------
    def _dac_errors(self, v: np.ndarray) -> np.ndarray:
        if self.dac_gain != 1.0:
            np.multiply(v, self.dac_gain, out=v)
        if self.dac_offset != 0.0:
            np.add(v, self.dac_offset, out=v)
        return v

    def dac(self, voltages: np.ndarray, v_range: float) -> np.ndarray:
        """Voltages actually applied (V): with the DAC's gain and offset error, clipped to ±v_range and
        quantised to the DAC step."""
        # np.maximum/np.minimum and np.rint are np.clip and np.round(decimals=0) without their
        # Python wrappers: the same numbers (NaN propagates either way)
        x = np.asarray(voltages, dtype=float)
        v = self._dac_errors(np.array(x, dtype=float))
        np.maximum(v, -v_range, out=v)
        np.minimum(v, v_range, out=v)
        lsb = 2 * v_range / (2**self.dac_bits)
        np.divide(v, lsb, out=v)
        np.rint(v, out=v)
        np.multiply(v, lsb, out=v)
        return v

    def dac_in_range(self, voltages: np.ndarray, v_range: float) -> np.ndarray:
        """:meth:`dac` of voltages the caller has checked to lie within ±v_range."""
        if self.dac_gain != 1.0 or self.dac_offset != 0.0:  # the errors may carry a value past the range
            return self.dac(voltages, v_range)
        lsb = 2 * v_range / (2**self.dac_bits)
        v = np.divide(voltages, lsb, dtype=float)  # float32 → float64 is exact: the same quotients
        np.rint(v, out=v)
        np.multiply(v, lsb, out=v)
        return v

    def adc(self, currents: np.ndarray, full_scale: float, side: str = "col") -> np.ndarray:
        """Currents the board reports (A) for true line currents: gain, offset, noise, quantisation, clipping."""
        i = np.asarray(currents, dtype=float)
        n = i.size
        gain, offset = self.line_errors(side)
        measured = gain[:n] * i
        measured += offset[:n] * full_scale
        noise = self._rng.standard_normal(n)
        noise *= self.noise * full_scale
        measured += noise
        lsb = 2 * full_scale / (2**self.adc_bits)
        np.divide(measured, lsb, out=measured)
        np.rint(measured, out=measured)
        np.multiply(measured, lsb, out=measured)
        np.maximum(measured, -full_scale, out=measured)
        return np.minimum(measured, full_scale, out=measured)
