"""Forward MVMs of differential blocks and multi-array residual programming.

Residual programming (Song et al., Science 2024, "programming memristor arrays with
arbitrarily high precision"): array 1 holds W; array k > 1 holds the error left by the
arrays before it, scaled up to use the whole range, R_k = s_k·(W − Σ_{j<k} Ŵ_j / s_j)
with s_1 = 1 and Ŵ_j the weights array j really realises, as measured through the MVM
path itself (least squares over random probe MVMs: this includes line IR drop and the
cells' non-linearity for inputs of that size). Outputs combine as y = Σ_k y_k / s_k.

The arrays here are disjoint column blocks of one larger array sharing its rows (e.g. three
64×128 blocks of a 64×384 array); one forward MVM drives the shared rows and reads every
block at once. Because the rows are shared, programming a later block changes the row IR
drop every block sees, so each block's realised weights are re-measured after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.calibration.mapping import PairMapping, compensate_stuck
from xbarlab.calibration.pipeline import program_matrix
from xbarlab.errors import ConfigError, InstrumentError
from xbarlab.instruments.interfaces import BenchStation, CrossbarArray, board_limit


@dataclass
class DiffBlocks:
    """Forward MVMs of W-blocks laid out as column pairs on a board (currents in A, weights unitless).

    ``rows``: the input rows (n_in); ``col0s``: first column of each block (2·n_out columns each);
    ``mappings``: the :class:`PairMapping` of each block; ``v_in``: input full scale (V).
    """

    board: CrossbarArray
    rows: np.ndarray
    col0s: list[int]
    n_out: int
    mappings: list[PairMapping]
    v_in: float = 0.2
    offsets: np.ndarray | None = None
    mvms: int = 0
    repeats: int = 1  # MVMs averaged per product (read noise falls as 1/sqrt(repeats))

    def columns(self, k: int) -> np.ndarray:
        return np.arange(self.col0s[k], self.col0s[k] + 2 * self.n_out)

    def _forward(self, v: np.ndarray) -> np.ndarray:
        self.mvms += 1
        try:
            return np.asarray(self.board.mvm_forward(v), dtype=float)
        except InstrumentError as exc:
            raise InstrumentError(self.board.name, exc.code,
                                  f"MVM clipped: raise the TIA range ({exc})") from None

    def set_range(self, read_voltage: float, headroom: float = 1.5, probes: int = 4, seed: int = 0,
                  uniform_probe: bool = False) -> float:
        """TIA full scale (A) = ``headroom`` × the largest current of random full-scale probes
        (and of all inputs at +v_in with ``uniform_probe``)."""
        top = board_limit(self.board, "max_tia_range", 10e-3)
        self.board.configure(read_voltage, top)
        rng = np.random.default_rng(seed)
        peak = 0.0
        for _ in range(probes):
            v = np.zeros(self.board.shape[0])
            v[self.rows] = rng.choice([-1.0, 1.0], self.rows.size) * self.v_in
            if uniform_probe and _ == 0:
                v[self.rows] = self.v_in
            i = self._forward(v)
            cols = np.concatenate([self.columns(k) for k in range(len(self.col0s))])
            peak = max(peak, float(np.max(np.abs(i[cols]))))
        fs = min(top, max(headroom * peak, 1e-7))
        self.board.configure(read_voltage, fs)
        self.offsets = np.mean([self._forward(np.zeros(self.board.shape[0])) for _ in range(8)], axis=0)
        return fs

    def outputs(self, x: np.ndarray) -> np.ndarray:
        """Per-block estimates of W_k·x: shape (blocks, n_out), one physical MVM for all blocks."""
        x = np.asarray(x, dtype=float)
        if x.shape != (self.rows.size,):
            raise ConfigError(f"input has shape {x.shape}, expected ({self.rows.size},)")
        peak = float(np.max(np.abs(x)))
        if peak == 0:
            return np.zeros((len(self.col0s), self.n_out))
        v = np.zeros(self.board.shape[0])
        v[self.rows] = x / peak * self.v_in
        i = self._forward(v) if self.repeats == 1 else np.mean([self._forward(v) for _ in range(self.repeats)], axis=0)
        if self.offsets is not None:
            i = i - self.offsets
        out = np.empty((len(self.col0s), self.n_out))
        for k in range(len(self.col0s)):
            ik = i[self.columns(k)]
            out[k] = (ik[0::2] - ik[1::2]) / (self.mappings[k].unit * self.v_in) * peak
        return out

    def effective_weights(self, probes: int | None = None, seed: int = 1) -> list[np.ndarray]:
        """Least-squares W_k (n_out × n_in) of each block from random probe MVMs (default 4·n_in probes)."""
        n_in = self.rows.size
        m = probes or 4 * n_in
        rng = np.random.default_rng(seed)
        x = rng.uniform(-1, 1, (m, n_in))
        x[np.arange(m), np.argmax(np.abs(x), axis=1)] = np.sign(x[np.arange(m), np.argmax(np.abs(x), axis=1)])
        y = np.stack([self.outputs(xi) for xi in x])  # (m, blocks, n_out)
        sol = [np.linalg.lstsq(x, y[:, k, :], rcond=None)[0].T for k in range(len(self.col0s))]
        return sol


def relative_error(y: np.ndarray, y_ref: np.ndarray) -> float:
    """sqrt(Σ‖y − y_ref‖² / Σ‖y_ref‖²) over a batch of vectors (rows)."""
    return float(np.sqrt(np.sum((y - y_ref) ** 2) / np.sum(y_ref**2)))


@dataclass
class ResidualResult:
    """Relative MVM error with 1, 2, … arrays combined, and the scale of each array."""

    errors: list[float]
    scales: list[float]
    reports: list[Any] = field(default_factory=list)
    first_alone: float = float("nan")  # array 1's error before the other blocks were programmed
    uncompensated_pairs: list[int] = field(default_factory=list)  # pairs a stuck device left short, per block
    errors_without_correction: list[float] = field(default_factory=list)  # no digital defect correction
    digital_corrections: list[int] = field(default_factory=list)  # weights corrected digitally, per block count
    first_alone_without_correction: float = float("nan")
    stage_errors: list[float] = field(default_factory=list)  # blocks 0..k right after block k was programmed
    first_write_verify_only: float = float("nan")  # array 1 before any MVM-path pass
    precondition_mean_pulses: list[float] = field(default_factory=list)  # per later block
    noise_floor: float = float("nan")  # relative error from read noise alone (two independent evaluations)
    single_mvm_errors: list[float] = field(default_factory=list)  # as ``errors`` but each product ONE MVM
    single_mvm_noise_floor: float = float("nan")  # read-noise floor of one MVM

    def summary(self) -> dict[str, Any]:
        return {"errors": self.errors, "first_alone": self.first_alone,
                "first_alone_without_correction": self.first_alone_without_correction,
                "stage_errors": self.stage_errors, "scales": self.scales,
                "yields": [r.yield_fraction for r in self.reports],
                "mean_pulses": [float(np.mean(r.pulses)) for r in self.reports],
                "uncompensated_pairs": self.uncompensated_pairs,
                "errors_without_correction": self.errors_without_correction,
                "digital_corrections": self.digital_corrections}


def program_residual(
    station: BenchStation,
    prep: Any,
    weights: np.ndarray,
    *,
    col0s: list[int],
    tolerance_frac: float = 0.01,
    test_inputs: np.ndarray,
    rows: np.ndarray | None = None,
    max_scale: float = 50.0,
    refine: bool = True,
    repeats: int = 1,
    mvm_passes: int = 0,
    headroom: float = 1.3,
    precondition: bool = True,
    reader: str = "cells",
    checkpoint: Any = None,
) -> ResidualResult:
    """Program W into the first block at ``col0s[0]`` and the residuals into the next ones.

    ``prep``: :func:`~xbarlab.calibration.pipeline.prepare` of the whole array; ``tolerance_frac``
    of the usable range per cell; ``test_inputs`` (vectors × n_in) to report the relative
    error of the combination of the first 1, 2, … blocks. ``max_scale`` bounds the residual
    amplification (the residual of a good array is ~1 % of W). With ``refine`` the last
    block's residual is re-measured and re-programmed once after all blocks are in place
    (shared rows: later blocks change the IR drop earlier ones see). ``repeats``: MVMs averaged
    per product, for the probes and the test (read noise sets a floor of ~0.5 % per single MVM).
    ``mvm_passes``: after write-verify, re-target each block that many times by the error its
    effective weights show through the MVM path (verification through the MVM itself: this
    takes out the systematic row IR drop that cell reads do not see); the mapping then leaves
    ``headroom`` (× the largest |w|) for the compensation. ``precondition``: the shared rows
    carry their final load from the start: the later blocks use centred pairs
    (G± = g_mid ± Δ/2, a pair current independent of the weight) and are first set to w = 0,
    so programming the residuals later hardly changes the row IR drop the earlier blocks see.
    ``reader``: verify reads, "cells" (device conductances) or "array" (READ_ALL rows, which see
    the row IR drop of a forward MVM; slower on the simulator).
    """

    w = np.asarray(weights, dtype=float)
    n_out, n_in = w.shape
    rows = np.arange(n_in) if rows is None else np.asarray(rows, dtype=int)
    lo, hi = prep.usable_range()
    tol = tolerance_frac * (hi - lo)
    read_v = prep.read_voltage
    board = prep.board
    scales: list[float] = []
    mappings: list[PairMapping] = []
    reports = []
    realised: list[np.ndarray] = []
    uncompensated: list[int] = []
    stage: list[float] = []  # error of blocks 0..k right after block k was programmed
    pre_pass: list[float] = []  # array 1 before the MVM-path passes
    precondition_pulses: list[float] = []
    base = PairMapping.for_matrix(w, lo, hi, headroom=headroom if mvm_passes else 1.0)
    centred = PairMapping(lo, hi, base.w_max, centered=True)
    masks: list[np.ndarray] = []  # per block: weights (n_out × n_in) whose pair a stuck device left short

    def union(k: int) -> np.ndarray:
        """Weights some of blocks 0..k−1 left short (a stuck device the partner cannot make up for)."""
        out = np.zeros(w.shape, dtype=bool)
        for j in range(k):
            out |= masks[j]
        return out

    def analog_sum(k: int) -> np.ndarray:
        """Weights blocks 0..k−1 realise in analog, units of W."""
        return sum((realised[j] / scales[j] for j in range(k)), np.zeros(w.shape))

    def residual(k: int) -> np.ndarray:
        """What block k must add: the remaining error, except where the digital correction takes over."""
        return np.where(union(k), 0.0, w - analog_sum(k))

    def correction(k: int) -> np.ndarray:
        """Sparse digital correction (n_out × n_in) with k blocks: the exact remaining error where a
        block left a pair short (one multiply-add per such weight)."""
        return np.where(union(k), w - analog_sum(k), 0.0)

    def blocks(k: int) -> DiffBlocks:
        return DiffBlocks(board, rows, col0s[: k + 1], n_out, mappings[: k + 1], v_in=read_v, repeats=repeats)

    def program_block(k: int, target_w: np.ndarray) -> None:
        cols = np.arange(col0s[k], col0s[k] + 2 * n_out)
        board.configure(read_v, prep.full_scale)
        targets = mappings[k].to_conductance(target_w)
        ri, ci = np.searchsorted(prep.bounds.rows, rows), np.searchsorted(prep.bounds.cols, cols)
        stuck = prep.bounds.stuck[np.ix_(ri, ci)] != 0
        if stuck.any():  # keep each pair's difference with the partner of a stuck device
            g_stuck = 0.5 * (prep.bounds.g_lo + prep.bounds.g_hi)[np.ix_(ri, ci)]
            targets, short = compensate_stuck(targets, stuck, g_stuck, lo, hi)
        else:
            short = np.zeros((targets.shape[0], n_out), dtype=bool)
        rep = program_matrix(station, prep, targets, tolerance=tol, rows=rows, cols=cols, checkpoint=checkpoint,
                             reader=reader)
        if k < len(masks):
            rep.pulses = rep.pulses + reports[k].pulses  # pulses of every pass on this block
            uncompensated[k], masks[k], reports[k] = int(short.sum()), short.T, rep
        else:
            uncompensated.append(int(short.sum()))
            masks.append(short.T)
            reports.append(rep)

    def program_measured(k: int, target: np.ndarray) -> list[np.ndarray]:
        """Program block k, then ``mvm_passes`` re-targetings by what the MVM path realises (line IR
        drop, non-linearity, and the load block k adds to the shared rows of the blocks before it):
        each pass aims block k at the error the blocks before it leave *now*. Returns every
        block's effective weights."""
        programmed = target
        program_block(k, programmed)
        db = blocks(k)
        db.set_range(read_v)
        eff = db.effective_weights()
        if k == 0:  # array 1 after write-verify with read calibration only
            x0 = np.asarray(test_inputs, dtype=float)
            y = np.stack([db.outputs(xi)[0] for xi in x0])
            corr = np.where(masks[0], w - eff[0], 0.0)
            pre_pass.append(relative_error(y + x0 @ corr.T, x0 @ w.T))
        for _ in range(mvm_passes):
            if k == 0:
                desired = target
            else:
                before = sum((eff[j] / scales[j] for j in range(k)), np.zeros(w.shape))
                desired = np.where(union(k), 0.0, w - before) * scales[k]
            programmed = programmed + np.where(masks[k], 0.0, desired - eff[k])
            program_block(k, programmed)
            db.set_range(read_v)
            eff = db.effective_weights()
        return eff

    if precondition and len(col0s) > 1:
        # later blocks hold centred pairs (constant pair current): set them to w = 0 now, so the
        # shared rows carry their final load while block 1 is programmed
        for k in range(1, len(col0s)):
            cols = np.arange(col0s[k], col0s[k] + 2 * n_out)
            board.configure(read_v, prep.full_scale)
            pre = program_matrix(station, prep, centred.to_conductance(np.zeros_like(w)), tolerance=2 * tol,
                                 rows=rows, cols=cols, checkpoint=checkpoint)
            precondition_pulses.append(float(np.mean(pre.pulses)))
    for k in range(len(col0s)):
        if k == 0:
            scale, target = 1.0, w
        else:
            resid = residual(k)
            peak = float(np.max(np.abs(resid)))
            scale = min(max_scale, base.w_max / max(peak, 1e-300))
            target = resid * scale
        scales.append(scale)
        mappings.append(base if k == 0 or not precondition else centred)
        realised = program_measured(k, target)
        db = blocks(k)
        x0 = np.asarray(test_inputs, dtype=float)
        o = np.stack([db.outputs(xi) for xi in x0])
        y0 = sum(o[:, j, :] / scales[j] for j in range(k + 1)) + x0 @ correction(k + 1).T
        stage.append(relative_error(y0, x0 @ w.T))
        if k == 0:
            first_alone = stage[0]
            first_plain = relative_error(y0 - x0 @ correction(1).T, x0 @ w.T)
    if refine and len(col0s) > 1:
        k = len(col0s) - 1
        realised = program_measured(k, residual(k) * scales[k])
    db = blocks(len(col0s) - 1)
    db.set_range(read_v)
    x = np.asarray(test_inputs, dtype=float)
    y_ref = x @ w.T
    outs = np.stack([db.outputs(xi) for xi in x])  # (vectors, blocks, n_out)
    again = np.stack([db.outputs(xi) for xi in x])  # an independent repeat: the read-noise floor
    combine = [sum(o[:, j, :] / scales[j] for j in range(len(col0s))) for o in (outs, again)]
    noise_floor = relative_error(combine[0], combine[1]) / np.sqrt(2)
    # the same products from a single MVM each (what one inference sees), and that floor
    db.repeats = 1
    outs1 = np.stack([db.outputs(xi) for xi in x])
    again1 = np.stack([db.outputs(xi) for xi in x])
    db.repeats = repeats
    single = [relative_error(sum(outs1[:, j, :] / scales[j] for j in range(k + 1)) + x @ correction(k + 1).T, y_ref)
              for k in range(len(col0s))]
    floor1 = relative_error(*(sum(o[:, j, :] / scales[j] for j in range(len(col0s))) for o in (outs1, again1)))
    errors, plain = [], []
    for k in range(len(col0s)):
        y = sum(outs[:, j, :] / scales[j] for j in range(k + 1))
        plain.append(relative_error(y, y_ref))
        errors.append(relative_error(y + x @ correction(k + 1).T, y_ref))
    board.configure(read_v, prep.full_scale)
    res = ResidualResult(errors, scales, reports, first_alone)
    res.uncompensated_pairs = uncompensated
    res.errors_without_correction = plain
    res.first_alone_without_correction = first_plain
    res.stage_errors = stage
    res.noise_floor = float(noise_floor)
    res.single_mvm_errors = [float(e) for e in single]
    res.single_mvm_noise_floor = float(floor1) / np.sqrt(2)
    res.precondition_mean_pulses = precondition_pulses
    res.first_write_verify_only = pre_pass[0] if pre_pass else float("nan")
    res.digital_corrections = [int(union(k + 1).sum()) for k in range(len(col0s))]
    return res
