"""Board periphery: input DACs, per-line TIAs and output ADCs.

Defaults are those of a lab test board rather than an inference tile (ArC TWO: 18-bit
ADC, REFERENCE.md): 16-bit DACs, 18-bit ADCs, TIA gain error 2 % (1σ) and offset 2e-4 of
full scale (1σ) per line, fixed per board (seeded), plus 5e-6 of full scale additive
noise per conversion. Outputs clip at ±full scale; the board flags saturation.
"""

from __future__ import annotations

import numpy as np


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
    ) -> None:
        if not (1 <= dac_bits <= 32 and 1 <= adc_bits <= 32):
            raise ValueError(f"DAC/ADC bits must be in 1..32, got {dac_bits}, {adc_bits}")
        if gain_sigma < 0 or offset_sigma < 0 or noise < 0:
            raise ValueError("gain_sigma, offset_sigma and noise must be ≥ 0")
        rng = np.random.default_rng(seed)
        self.dac_bits, self.adc_bits = int(dac_bits), int(adc_bits)
        self.noise = float(noise)
        self.gain = {
            "col": 1 + gain_sigma * rng.standard_normal(cols),
            "row": 1 + gain_sigma * rng.standard_normal(rows),
        }
        self.offset = {"col": offset_sigma * rng.standard_normal(cols), "row": offset_sigma * rng.standard_normal(rows)}
        self._rng = np.random.default_rng(seed + 7919)

    def dac(self, voltages: np.ndarray, v_range: float) -> np.ndarray:
        """Voltages actually applied (V): clipped to ±v_range and quantised to the DAC step."""
        # np.maximum/np.minimum and np.rint are np.clip and np.round(decimals=0) without their
        # Python wrappers: the same numbers (NaN propagates either way)
        x = np.asarray(voltages, dtype=float)
        v = np.maximum(x, -v_range, out=np.empty(x.shape))
        np.minimum(v, v_range, out=v)
        lsb = 2 * v_range / (2**self.dac_bits)
        np.divide(v, lsb, out=v)
        np.rint(v, out=v)
        np.multiply(v, lsb, out=v)
        return v

    def dac_in_range(self, voltages: np.ndarray, v_range: float) -> np.ndarray:
        """:meth:`dac` of voltages the caller has checked to lie within ±v_range (the clip is a no-op)."""
        lsb = 2 * v_range / (2**self.dac_bits)
        v = np.divide(voltages, lsb, dtype=float)  # float32 → float64 is exact: the same quotients
        np.rint(v, out=v)
        np.multiply(v, lsb, out=v)
        return v

    def adc(self, currents: np.ndarray, full_scale: float, side: str = "col") -> np.ndarray:
        """Currents the board reports (A) for true line currents: gain, offset, noise, quantisation, clipping."""
        i = np.asarray(currents, dtype=float)
        n = i.size
        measured = self.gain[side][:n] * i
        measured += self.offset[side][:n] * full_scale
        noise = self._rng.standard_normal(n)
        noise *= self.noise * full_scale
        measured += noise
        lsb = 2 * full_scale / (2**self.adc_bits)
        np.divide(measured, lsb, out=measured)
        np.rint(measured, out=measured)
        np.multiply(measured, lsb, out=measured)
        np.maximum(measured, -full_scale, out=measured)
        return np.minimum(measured, full_scale, out=measured)
