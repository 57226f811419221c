"""Write-verify programming of a target conductance matrix (pulse, read, adapt, repeat).

Model-based adaptive programming (in the spirit of Alibart et al., Nanotechnology 23,
075201 (2012): adaptive pulses to ~1 % of the range). Each cell follows the soft-bounds
response that characterisation measured (:mod:`xbarlab.calibration.characterize`):

    SET:   g' = g + k·(g_hi − g),   RESET: g' = g − k·(g − g_lo),
    k = exp(s + (V − v_ref)/v_scale) · (width / width_ref)^β

with v_scale and β per direction as fitted, and a per-cell, per-direction log step factor
``s`` learned online from every pulse (prior: the fitted population value). There is no
built-in device model: the :class:`PulseModel` comes from a characterisation. Each round
every cell outside tolerance gets one pulse whose amplitude (and, below the smallest
characterised amplitude, width) is chosen to cover ``aim`` × its remaining error; all
pulses of a round go out as one batch, then only those cells are re-read. Reads are
averaged as many times as the measured read noise needs to resolve the tolerance
(``verify_reads``). A cell that does not move after ``stuck_after`` pulses at the largest
amplitude is reported as stuck (never having moved) or unreachable (its target beyond its
range); a cell that spends ``max_pulses`` is reported as out of budget. Optionally
(``patience``) a cell whose error has not shrunk by 10 % over that many pulses is given up
as unreachable too (it churns at a bound). Nothing loops without bound: ``max_rounds``
caps the run. The reported state is a final averaged read of every programmed cell.

Abrupt-RESET devices (PCM) are handled by ``reset="abrupt"``: a cell above its target is
reset to the bottom of its range (at the measured abrupt-RESET amplitude) and re-approached
from below with gradual SETs (SET-only climbing, RESET and restart on overshoot: the
iterative programming of Nandakumar et al. 2018 / IBM).

Devices whose conductance keeps moving after a pulse (PCM: programming noise that emerges
over seconds, then drift; RRAM relaxation) are verified at a fixed delay (``verify_delay``):
after each round the pulsed cells are read only once ``verify_delay`` s of instrument time
have passed (``wait``), so every verify read sees a cell at the same age after its last
pulse, and an accepted cell's reported value is a fresh averaged read taken at acceptance
(the same age), not at the end of the run when early cells have drifted further. Targets
are then conductances at that age; later drift is the MVM's business (global drift
compensation).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.instruments.interfaces import (
    AdcSaturationError,
    BatchedPulses,
    CellReads,
    CrossbarArray,
    Pulse,
    board_limit,
    require,
)

# cell status codes
ACTIVE, DONE, STUCK, UNREACHABLE, BUDGET, SKIPPED = 0, 1, 2, 3, 4, 5
STATUS_NAMES = {ACTIVE: "active", DONE: "within", STUCK: "stuck", UNREACHABLE: "unreachable",
                BUDGET: "budget_spent", SKIPPED: "skipped"}


@dataclass(frozen=True)
class PulseModel:
    """What the programming algorithm assumes of the devices: a measured characterisation
    (:meth:`xbarlab.calibration.characterize.Characterization.pulse_model`), never a built-in guess.

    ``s_up``/``s_down``: natural log of the fraction of the remaining headroom one pulse of
    ``v_ref`` V, ``width_ref`` s covers; ``v_scale`` (SET) / ``v_scale_down`` (RESET, default the
    same): V per e-fold of the step; ``width_exp``/``width_exp_down``: exponent β of the width
    dependence; ``read_sigma`` relative and ``read_sigma_abs`` (S) 1σ read noise of one read;
    ``reset``: "gradual" or "abrupt" (PCM); ``v_min``: smallest amplitude the model was measured
    at (below it pulses are shortened instead); ``v_reset``: amplitude of an abrupt RESET.
    """

    s_up: float
    s_down: float
    v_ref: float  # V
    v_scale: float  # V
    width_ref: float  # s
    width_exp: float
    read_sigma: float
    reset: str = "gradual"
    v_scale_down: float | None = None  # V
    width_exp_down: float | None = None
    read_sigma_abs: float = 0.0  # S
    v_min: float | None = None  # V
    v_reset: float | None = None  # V

    def __post_init__(self) -> None:
        vals = (self.s_up, self.s_down, self.v_ref, self.v_scale, self.width_ref, self.width_exp, self.read_sigma)
        if not all(np.isfinite(v) for v in vals):
            raise ConfigError("pulse model: every parameter must be a finite number")
        if not (self.v_scale > 0 and self.width_ref > 0 and self.read_sigma >= 0 and self.read_sigma_abs >= 0
                and self.width_exp > 0):
            raise ConfigError("pulse model: v_scale, width_ref and width_exp must be > 0, read noise >= 0")
        if self.v_scale_down is not None and not self.v_scale_down > 0:
            raise ConfigError("pulse model: v_scale_down must be > 0")
        if self.width_exp_down is not None and not self.width_exp_down > 0:
            raise ConfigError("pulse model: width_exp_down must be > 0")
        if self.reset not in ("gradual", "abrupt"):
            raise ConfigError(f"pulse model reset {self.reset!r}: expected 'gradual' or 'abrupt'")

    @property
    def v_scales(self) -> np.ndarray:
        """(SET, RESET) V per e-fold."""
        return np.array([self.v_scale, self.v_scale_down if self.v_scale_down is not None else self.v_scale])

    @property
    def width_exps(self) -> np.ndarray:
        """(SET, RESET) width exponents."""
        return np.array([self.width_exp, self.width_exp_down if self.width_exp_down is not None else self.width_exp])

    def sigma(self, g: np.ndarray) -> np.ndarray:
        """1σ (S) of one read of conductances g (S)."""
        return np.sqrt(self.read_sigma_abs**2 + (self.read_sigma * np.abs(g)) ** 2)

    def reads_for(self, g: float, tolerance: float, target: float = 0.15, most: int = 256) -> int:
        """Reads to average so that the mean's 1σ at ``g`` S is ≤ ``target`` × ``tolerance`` (at least 4)."""
        n = (float(self.sigma(np.asarray(g))) / (target * tolerance)) ** 2
        return int(np.clip(np.ceil(n), 4, most))


@dataclass
class ProgramReport:
    """Outcome of one write-verify run (conductances in S, times in s)."""

    targets: np.ndarray
    achieved: np.ndarray  # final verification read
    status: np.ndarray  # per cell, STATUS_NAMES codes
    tolerance: float  # S
    pulses: np.ndarray  # per cell
    rounds: int
    sim_time_s: float
    wall_s: float
    g_range: tuple[float, float]
    stop_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def within(self) -> np.ndarray:
        return np.abs(self.achieved - self.targets) <= self.tolerance

    @property
    def live(self) -> np.ndarray:
        """Cells not reported stuck (nor skipped as known-stuck)."""
        return (self.status != STUCK) & (self.status != SKIPPED)

    @property
    def yield_fraction(self) -> float:
        live = self.live
        return float(np.mean(self.within[live])) if live.any() else 0.0

    def error_histogram(self, bins: int = 21) -> tuple[np.ndarray, np.ndarray]:
        """(counts, edges): final error of live cells in units of the tolerance, ±5 tolerances, clipped."""
        err = (self.achieved - self.targets)[self.live] / self.tolerance
        return np.histogram(np.clip(err, -5, 5), bins=bins, range=(-5, 5))

    def summary(self) -> dict[str, Any]:
        live = self.live
        p = self.pulses[live] if live.any() else np.zeros(1)
        counts, edges = self.error_histogram()
        return {
            "cells": int(self.targets.size),
            "live_cells": int(live.sum()),
            "yield": self.yield_fraction,
            "tolerance_S": float(self.tolerance),
            "tolerance_frac_of_range": float(self.tolerance / (self.g_range[1] - self.g_range[0])),
            "mean_pulses": float(np.mean(p)),
            "max_pulses": int(np.max(p)),
            "rounds": int(self.rounds),
            "sim_time_s": float(self.sim_time_s),
            "wall_s": float(self.wall_s),
            "stuck": int(np.sum(self.status == STUCK)),
            "skipped_known_stuck": int(np.sum(self.status == SKIPPED)),
            "unreachable": int(np.sum(self.status == UNREACHABLE)),
            "budget_spent": int(np.sum(self.status == BUDGET)),
            "rms_error_S": float(np.sqrt(np.mean((self.achieved - self.targets)[live] ** 2))) if live.any() else 0.0,
            "error_hist_counts": counts.tolist(),
            "error_hist_edges_tol": edges.tolist(),
            "stop_reason": self.stop_reason,
        }

    def describe(self) -> str:
        s = self.summary()
        return (f"write-verify: {s['yield']:.4f} of {s['live_cells']} live cells within ±{s['tolerance_S']:.3g} S "
                f"({s['tolerance_frac_of_range']:.3g} of range); pulses mean {s['mean_pulses']:.1f}, max "
                f"{s['max_pulses']}; known stuck (not pulsed) {s['skipped_known_stuck']}, "
                f"found stuck {s['stuck']}, unreachable {s['unreachable']}, budget spent "
                f"{s['budget_spent']}; {s['rounds']} rounds, {s['sim_time_s']:.2f} s instrument, "
                f"{s['wall_s']:.2f} s wall ({s['stop_reason']})")


def cell_reader(board: CrossbarArray, read_voltage: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Conductances (S) of listed cells by READ_CELLS; a clipped sample reads as its clipped value."""
    cells = require(board, CellReads)

    def read(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        if rows.size == 0:
            return np.zeros(0)
        try:
            return np.asarray(cells.read_cells(rows, cols), dtype=float)
        except AdcSaturationError as exc:
            return np.asarray(exc.currents, dtype=float) / read_voltage

    return read


def array_reader(board: CrossbarArray, read_voltage: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Conductances (S) of listed cells taken from READ_ALL (one row driven at a time, every column
    read): each cell is seen with the IR drop of its own row's current, as in a forward MVM.

    Only the rows holding listed cells are read (``board.read_rows`` per run of consecutive rows; a
    board without a block read reads the whole array for it); a clipped sample reads as its clipped value.
    """

    def clipped_ok(call: Callable[[], Any]) -> np.ndarray:
        try:
            return np.asarray(call(), dtype=float)
        except AdcSaturationError as exc:
            return np.asarray(exc.currents, dtype=float) / read_voltage

    def read(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
        if rows.size == 0:
            return np.zeros(0)
        needed = np.unique(rows)
        runs = np.split(needed, np.nonzero(np.diff(needed) > 1)[0] + 1)
        g: np.ndarray | None = None
        for run in runs:
            first, count = int(run[0]), int(run[-1] - run[0] + 1)
            block = clipped_ok(lambda first=first, count=count: board.read_rows(first, count))
            if g is None:
                g = np.full((int(needed[-1]) + 1, block.shape[1]), np.nan)
            g[first : first + count] = block
        assert g is not None
        return g[rows, cols]

    return read


def _pulse(board: CrossbarArray, rows: np.ndarray, cols: np.ndarray, amps: np.ndarray, widths: np.ndarray) -> None:
    if isinstance(board, BatchedPulses):
        board.pulse_arrays(rows, cols, amps, widths)
        return
    board.pulse_batch([Pulse(int(r), int(c), float(a), float(w)) for r, c, a, w in zip(rows, cols, amps, widths,
                                                                                      strict=True)])


def program_conductances(
    board: CrossbarArray,
    rows: np.ndarray,
    cols: np.ndarray,
    targets: np.ndarray,
    *,
    tolerance: float,
    g_lo: np.ndarray | float,
    g_hi: np.ndarray | float,
    model: PulseModel,
    reader: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
    read_voltage: float = 0.2,
    width: float | None = None,
    v_min: float | None = None,
    v_max: float | None = None,
    min_width: float | None = None,
    max_pulses: int = 100,
    max_rounds: int = 300,
    aim: float = 0.9,
    accept: float = 0.5,
    verify_reads: int | None = None,
    stuck_after: int = 3,
    patience: int = 0,
    skip: np.ndarray | None = None,
    clock: Callable[[], float] | None = None,
    checkpoint: Callable[[], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    g_range: tuple[float, float] | None = None,
    final_reads: int | None = None,
    verify_delay: float = 0.0,
    wait: Callable[[float], None] | None = None,
    read_spacing: float = 0.0,
    spread: int = 8,
) -> ProgramReport:
    """Program ``targets`` (S, shape len(rows) × len(cols)) into the block rows × cols.

    ``g_lo``/``g_hi``: each cell's (or the common) bottom/top of range (S), e.g. from
    :func:`~xbarlab.calibration.characterize.characterize`; ``tolerance`` (S); ``model``: the
    characterisation's :class:`PulseModel`; ``reader(rows, cols)`` returns conductances of listed
    cells (default READ_CELLS; pass a calibrated board). ``width`` (s): pulse width (default the
    model's ``width_ref``); ``v_min`` (V): smallest amplitude (default the model's ``v_min``, else
    v_ref − 2·v_scale); below it pulses are shortened down to ``min_width`` (default the board's
    limit). A cell is accepted when the mean of ``verify_reads`` reads (default: enough for the
    model's read noise to resolve the tolerance, :meth:`PulseModel.reads_for`) is within
    ``accept`` × tolerance, and reported with a fresh final read of ``final_reads`` (same default).
    ``skip``: cells known stuck (not pulsed, reported as skipped). ``clock()``: instrument time (s).
    ``patience`` (0 = off): give a cell up (unreachable, or stuck if it never moved) when its
    error has not shrunk by 10 % over that many pulses.
    ``g_range``: the range (S) the tolerance is quoted against in the report (default: median bounds).
    ``verify_delay`` (s, 0 = off): read pulsed cells only after this much instrument time, passed by
    ``wait(seconds)`` (e.g. ``station.wait``); accepted cells are then reported by a read at acceptance.
    ``read_spacing`` (s, 0 = off): averaged reads are taken in ``spread`` groups this far apart, so a 1/f
    read noise's parts with correlation times below the spread's span average away (consecutive reads
    share them); needs ``wait``.
    """
    t_wall = time.perf_counter()
    t0 = clock() if clock is not None else 0.0
    if not isinstance(model, PulseModel):
        raise ConfigError("write-verify needs a PulseModel from a device characterisation")
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    tgt = np.asarray(targets, dtype=float)
    shape = (len(rows), len(cols))
    if tgt.shape != shape:
        raise ConfigError(f"targets have shape {tgt.shape}, expected {shape}")
    if not tolerance > 0:
        raise ConfigError(f"write-verify tolerance must be > 0 S, got {tolerance}")
    if max_pulses < 1 or max_rounds < 1:
        raise ConfigError("max_pulses and max_rounds must be >= 1")
    if not np.all(np.isfinite(tgt)):
        raise ConfigError("targets must be finite conductances (S)")
    if not (np.isfinite(verify_delay) and verify_delay >= 0):
        raise ConfigError(f"verify_delay must be >= 0 s, got {verify_delay}")
    if verify_delay > 0 and wait is None:
        raise ConfigError("verify_delay needs a wait(seconds) callable (e.g. station.wait)")
    if not (np.isfinite(read_spacing) and read_spacing >= 0 and spread >= 1):
        raise ConfigError(f"read_spacing must be >= 0 s and spread >= 1, got {read_spacing}, {spread}")
    if read_spacing > 0 and wait is None:
        raise ConfigError("read_spacing needs a wait(seconds) callable (e.g. station.wait)")
    limit = board_limit(board, "max_pulse_amplitude", 3.0)
    v_top = min(v_max if v_max is not None else limit, limit)
    width = float(model.width_ref if width is None else width)
    w_floor = board_limit(board, "min_pulse_width", 1e-8) if min_width is None else float(min_width)
    vs_d, be_d = model.v_scales, model.width_exps
    if v_min is None:
        v_min = model.v_min if model.v_min is not None else model.v_ref - 2 * float(vs_d.max())
    v_min = max(float(v_min), 2 * abs(read_voltage))
    if v_min > v_top:
        raise ConfigError(f"v_min {v_min} V exceeds the largest allowed amplitude {v_top} V")
    v_reset = min(model.v_reset, v_top) if model.v_reset is not None else v_top
    if verify_reads is None:
        verify_reads = model.reads_for(float(np.max(np.abs(tgt), initial=0.0)), tolerance)
    if final_reads is None:
        final_reads = max(verify_reads, 8)
    read = reader or cell_reader(board, read_voltage)

    def read_avg(ri: np.ndarray, ci: np.ndarray, n: int) -> np.ndarray:
        n = max(n, 1)
        if read_spacing <= 0 or n < 2:
            return np.mean([read(ri, ci) for _ in range(n)], axis=0)
        # reads spread over time: ``spread`` groups, ``read_spacing`` s apart (1/f noise decorrelates)
        groups = np.array_split(np.arange(n), min(spread, n))
        out = []
        for k, grp in enumerate(groups):
            if k:
                assert wait is not None
                wait(read_spacing)
            out += [read(ri, ci) for _ in grp]
        return np.mean(out, axis=0)

    rr = np.repeat(rows, len(cols))
    cc = np.tile(cols, len(rows))
    t = tgt.ravel().copy()
    n = t.size
    lo = np.broadcast_to(np.asarray(g_lo, dtype=float), shape).ravel().copy()
    hi = np.broadcast_to(np.asarray(g_hi, dtype=float), shape).ravel().copy()
    status = np.full(n, ACTIVE, dtype=np.int8)
    if skip is not None:
        sk = np.asarray(skip, dtype=bool)
        if sk.shape != shape:
            raise ConfigError(f"skip mask has shape {sk.shape}, expected {shape}")
        status[sk.ravel()] = SKIPPED
    s = np.stack([np.full(n, model.s_up), np.full(n, model.s_down)])  # per direction log step factors
    n_obs = np.zeros((2, n))
    pulses = np.zeros(n, dtype=int)
    idle = np.zeros(n, dtype=int)  # consecutive pulses at full amplitude without the intended move
    idle_ref = np.full(n, np.nan)  # the read before such a run: a slow mover's net progress is judged against it
    best = np.full(n, np.inf)  # smallest |error| read so far
    since_best = np.zeros(n, dtype=int)  # pulses since the error last shrank by 10 %
    moved_ever = np.zeros(n, dtype=bool)
    still_run = np.zeros(n, dtype=int)  # consecutive pulses that should have moved the cell and did not
    g = np.full(n, np.nan)
    n_read = np.ones(n)  # reads averaged into g
    at_accept = np.full(n, np.nan)  # verify_delay: the read taken when a cell was accepted
    act = status == ACTIVE

    def close_to(target: np.ndarray, value: np.ndarray) -> np.ndarray:
        # near enough for an averaged read to decide: 3 tolerances plus 3σ of a single read
        return np.abs(target - value) <= 3 * tolerance + 3 * model.sigma(target)

    first_reads = min(verify_reads, 16)

    def refine(cells: np.ndarray, g1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Averaged reads of cells near target, in two stages: ``first_reads`` for all of them, the
        rest of ``verify_reads`` only for those the first average puts within 2 tolerances + 2σ
        (the others get pulsed anyway). Returns (mean S, reads averaged)."""
        m = (g1 + (first_reads - 1) * read_avg(rr[cells], cc[cells], first_reads - 1)) / first_reads
        k = np.full(cells.size, float(first_reads))
        if verify_reads > first_reads:
            sig = model.sigma(t[cells]) / np.sqrt(first_reads)
            sel = np.flatnonzero(np.abs(t[cells] - m) <= 2 * tolerance + 2 * sig)
            if sel.size:
                extra = verify_reads - first_reads
                m[sel] = (first_reads * m[sel] + extra * read_avg(rr[cells[sel]], cc[cells[sel]], extra)
                          ) / verify_reads
                k[sel] = verify_reads
        return m, k

    g[act] = read(rr[act], cc[act])
    near = close_to(t, g)
    j = np.flatnonzero(act & near)
    if verify_reads > 1 and j.size:
        g[j], n_read[j] = refine(j, g[j])
    span = float(np.median(hi - lo))
    accept_tol = accept * tolerance
    rounds = 0
    stop = "every cell settled"
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - reported
        if checkpoint is not None:
            checkpoint()
        act = status == ACTIVE
        err = t - g
        # acceptance: within accept·tol on an averaged read (cells near target were read averaged)
        ok = act & near & (n_read >= verify_reads) & (np.abs(err) <= accept_tol)
        status[ok] = DONE
        if verify_delay > 0 and ok.any():  # report at the verify age: a fresh read now, before more time passes
            k = np.flatnonzero(ok)
            at_accept[k] = read_avg(rr[k], cc[k], final_reads)
        act &= ~ok
        status[act & (pulses >= max_pulses)] = BUDGET
        act &= pulses < max_pulses
        idx = np.flatnonzero(act)
        if progress is not None:
            progress(rounds, int(idx.size))
        if idx.size == 0:
            break
        e = err[idx]
        gi, li, hii = g[idx], lo[idx], hi[idx]
        up = e > 0
        # abrupt RESET: a cell above target goes to the bottom of its range, then SETs up again
        abrupt = (~up) & (model.reset == "abrupt")
        head = np.where(up, hii - gi, gi - li)
        head = np.maximum(head, 0.02 * span)
        k_need = np.clip(np.abs(e) / head, 1e-6, 1.0)
        k_aim = np.clip(aim * k_need, 1e-6, 1.0)
        d = np.where(up, 0, 1)
        s_i = s[d, idx]
        vs, be = vs_d[d], be_d[d]
        # amplitude for the aimed step at this width; below v_min shorten the pulse (k ∝ width^β)
        v = model.v_ref + vs * (np.log(k_aim) - s_i - be * np.log(width / model.width_ref))
        wid = np.full(idx.size, width)
        low = v < v_min
        if low.any():
            wid[low] = np.maximum(width * np.exp((v[low] - v_min) / (vs[low] * be[low])), w_floor)
            v[low] = v_min
        v = np.minimum(v, v_top)
        v = np.where(abrupt, v_reset, v)
        wid = np.where(abrupt, width, wid)
        amps = np.where(up, v, -v)
        _pulse(board, rr[idx], cc[idx], amps, wid)
        pulses[idx] += 1
        if verify_delay > 0:
            assert wait is not None
            wait(verify_delay)
        # re-read the pulsed cells; average the reads of cells that are close to target
        g_new = read(rr[idx], cc[idx])
        nr = np.ones(idx.size)
        close = close_to(t[idx], g_new)
        if verify_reads > 1 and close.any():
            j = np.flatnonzero(close)
            g_new[j], nr[j] = refine(idx[j], g_new[j])
        near[idx] = close
        dg = g_new - gi
        sig_new = model.sigma(g_new) / np.sqrt(nr)
        sig_old = model.sigma(gi) / np.sqrt(n_read[idx])
        noise = 3 * np.hypot(sig_new, sig_old) + 0.1 * tolerance
        n_read[idx] = nr
        moved = np.where(up, dg, -dg) > noise
        moved_ever[idx] |= moved
        # learn the step factor from cells that moved in the intended direction (gradual steps only)
        learn = moved & ~abrupt
        if learn.any():
            k_obs = np.clip(np.abs(dg[learn]) / head[learn], 1e-9, 1.0)
            rate = (v[learn] - model.v_ref) / vs[learn] + be[learn] * np.log(wid[learn] / model.width_ref)
            s_est = np.log(k_obs) - rate
            di, ci = d[learn], idx[learn]
            w = 1.0 / (n_obs[di, ci] + 2.0)  # prior counts as one observation
            s[di, ci] = s[di, ci] + w * np.clip(s_est - s[di, ci], -3, 3)
            n_obs[di, ci] += 1
        # no intended move: a big enough pulse should have moved it -> push harder
        expected = k_aim * head > noise
        still = ~moved & ~abrupt & expected
        # escalating: one step that failed may be cycle-to-cycle noise, a run of them is not
        still_run[idx] = np.where(still, still_run[idx] + 1, 0)
        if still.any():
            s[d[still], idx[still]] -= 0.5 * still_run[idx[still]]
        full = still & (v >= v_top - 1e-9) & (wid >= width)
        starts = full & (idle[idx] == 0)
        idle_ref[idx[starts]] = gi[starts]
        # a cell whose single steps hide in the read noise but that has moved over the run is not idle
        net = np.where(up, g_new - idle_ref[idx], idle_ref[idx] - g_new)
        crept = full & (idle[idx] > 0) & (net > 0.5 * noise)
        idle[idx[full & ~crept]] += 1
        idle[idx[~still | crept]] = 0
        # a cell that has moved before is at a bound only after twice the run (its steps may just be noisy)
        given_up = idle[idx] >= np.where(moved_ever[idx], 2 * stuck_after, stuck_after)
        if patience > 0:
            e_new = np.abs(t[idx] - g_new)
            better = e_new < 0.9 * best[idx]
            best[idx] = np.where(better, e_new, best[idx])
            since_best[idx] = np.where(better, 0, since_best[idx] + 1)
            given_up |= since_best[idx] >= patience
        given_up &= status[idx] == ACTIVE
        if given_up.any():
            gu = idx[given_up]
            status[gu] = np.where(moved_ever[gu], UNREACHABLE, STUCK)
        g[idx] = g_new
    else:
        stop = f"max_rounds = {max_rounds} reached"
        status[status == ACTIVE] = BUDGET
    if np.any(status == BUDGET) and stop == "every cell settled":
        stop = "some cells spent their pulse budget"
    # final verification after the last pulse: a fresh averaged read of every cell (the skipped ones too, so
    # a caller's earlier verification of them is replaced by this read)
    final = read_avg(rr, cc, final_reads)
    confirmed = np.isfinite(at_accept)
    final[confirmed] = at_accept[confirmed]
    sim_t = (clock() - t0) if clock is not None else float("nan")
    report = ProgramReport(tgt, final.reshape(shape), status.reshape(shape), float(tolerance),
                           pulses.reshape(shape), rounds, float(sim_t), time.perf_counter() - t_wall,
                           g_range or (float(np.median(lo)), float(np.median(hi))), stop)
    report.extra["s_up_median"] = float(np.median(s[0]))
    report.extra["s_down_median"] = float(np.median(s[1]))
    report.extra["verify_reads"] = int(verify_reads)
    report.extra["verify_delay_s"] = float(verify_delay)
    report.extra["reported_at_acceptance"] = int(confirmed.sum())
    return report
