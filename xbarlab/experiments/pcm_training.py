"""Training on PCM without RESET-based weight updates.

A PCM RESET is an abrupt melt-quench to the lowest conductance, not a step, so push-pull updates
(SET one device, RESET its partner) cannot train a PCM array. Two schemes that can:

* ``update = "set_only"`` with the ``mixed_precision`` rule — Nandakumar et al., "Mixed-precision
  deep learning based on computational memory", Front. Neurosci. 14, 406 (2020): the digital
  accumulator χ sends SET pulses only, to G⁺ for a step up and to G⁻ for a step down; every
  ``refresh_every`` samples, pairs with a device above ``refresh_level`` of the window are
  RESET and their difference re-programmed by write-verify (:class:`SetOnlyLayer`).
* rule ``pcm_3t1c`` — Ambrogio et al., "Equivalent-accuracy accelerated neural-network training
  using analogue memory", Nature 558, 60 (2018): W = F·(G⁺ − G⁻) + (g⁺ − g⁻) with a PCM pair for
  the most significant part and a 3T1C capacitor pair (board protocol §9) for the least. Updates
  go to the capacitor g⁺ as charge steps (g⁻ is the pair's reference); every
  ``transfer_every`` samples the capacitor content is read and moved into the PCM pair — by SET
  pulses on the device of its sign (stochastically rounded count, the default) or by the
  calibration layer's write-verify with the rest written back as charge steps — the capacitors
  are reset and the sign convention of g is inverted (polarity inversion: W = F·(G⁺ − G⁻) ±
  (g⁺ − g⁻)), so each capacitor's fixed charge/discharge mismatch pushes W one way in one
  interval and the other way in the next (:class:`PcmCapLayer`).

In weight units (one :class:`~xbarlab.experiments.analog.WeightMapping` ``unit`` per weight for
G⁺ − G⁻), the capacitor part is (g⁺ − g⁻)/(F·unit): its matrix on the board uses a mapping whose
unit is F·unit, so the forward product is the PCM MVM plus the capacitor MVM (CAP_MVM_*).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.calibration.pipeline import sim_clock
from xbarlab.calibration.writeverify import cell_reader
from xbarlab.errors import ConfigError
from xbarlab.experiments.analog import ArrayMatrix, InputEncoding, Region, WeightMapping
from xbarlab.experiments.networks import MLP, init_weights
from xbarlab.experiments.programming import characterized_model, program_weights, read_map, write_verify
from xbarlab.experiments.support import station_defaults, tia_range
from xbarlab.experiments.update_rules import ArrayBlock, MixedPrecisionLayer, PulseSpec, stochastic_round
from xbarlab.instruments.interfaces import Pulse

#: the rule of Ambrogio et al. 2018
PCM_RULE = "pcm_3t1c"
#: single-cell reads averaged when a transfer or refresh reads the PCM pairs it is about to move
READS = 4


def pcm_update_problems(rule: str, update: str, device: str | None, where: str) -> list[str]:
    """Problems of a training rule/update combination on a station of ``device`` technology."""
    problems = []
    if update == "set_only" and rule not in ("mixed_precision", "float"):
        problems.append(f"{where}.update = 'set_only' works with rule 'mixed_precision' (Nandakumar 2020), "
                        f"not {rule!r}")
    if device == "pcm" and rule in ("sgd", "mixed_precision", "tiki_taka") and update != "set_only":
        problems.append(f"{where}: a PCM station refuses {update!r} updates with rule {rule!r}: they RESET "
                        "devices, and a PCM RESET is an abrupt melt-quench, not a step. Use rule "
                        "'mixed_precision' with update = 'set_only' (SET-only + refresh, Nandakumar 2020) or "
                        f"rule '{PCM_RULE}' (PCM + 3T1C, Ambrogio 2018)")
    return problems


def characterisation_refusal(message: str, rule: str) -> str:
    """One line for a device characterisation that stopped before a PCM training run could start.

    The training rules here never RESET by small steps (updates are SET pulses or charge steps; a
    refresh is a full RESET followed by SET pulses), so RESET kinetics the characterisation could
    not fit are not what training needs; the write-verify behind the initial weights and the
    transfers still needs the characterisation to finish, hence a refusal saying what to try.
    """
    if "graded RESET" not in message:
        return message
    return (f"train (rule {rule!r}): the write-verify's device characterisation stopped on this PCM array "
            f"({message.removeprefix('characterisation: ')}); PCM training uses only SET pulses and full RESETs, "
            "but its write-verify needs the characterisation to finish: place the network on other cells "
            "(row0, col0), or look at this array's RESET response with a 'pulse_response' step first")


class CapacitorView:
    """The board's 3T1C capacitor array seen as a crossbar for :class:`ArrayMatrix` (CAP_MVM_* commands)."""

    def __init__(self, board: Any) -> None:
        self.board = board
        self.name = f"{getattr(board, 'name', 'board')}.cap"

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.board.shape)

    @property
    def limits(self) -> Any:
        return getattr(self.board, "limits", None)

    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        return self.board.cap_mvm_forward(row_voltages)

    def mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        return self.board.cap_mvm_transpose(col_voltages)

    def configure(self, read_voltage: float, tia_range: float) -> None:
        self.board.configure(read_voltage, tia_range)


@dataclass
class CapStep:
    """Measured conductance change per charge step of the 3T1C cells (S) and their reachable range (S)."""

    up: float  # S per charge step (pull-up)
    down: float  # S per discharge step, as a positive number
    reset: float = float("nan")  # S, median conductance at the reset level
    top: float = float("nan")  # S, median conductance after charging to the rail
    bottom: float = float("nan")  # S, median conductance after discharging to the rail

    @property
    def mean(self) -> float:
        return 0.5 * (self.up + self.down)


def measure_cap_step(board: Any, rows: np.ndarray, cols: np.ndarray, steps: int = 10,
                     rail_steps: int | None = None) -> CapStep:
    """Δg per charge and per discharge step (S), on capacitor cells rows[k], cols[k] from their reset level,
    and the range the cells reach (S).

    Resets the cells, applies ``steps`` charge steps, reads, ``2·steps`` discharge steps, reads; then
    ``rail_steps`` (default: the board's largest record) charge steps from the reset level, reads,
    twice that many discharge steps, reads; and resets.
    """
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    board.cap_reset(rows, cols)
    g0 = board.cap_read_cells(rows, cols)
    board.cap_update(rows, cols, np.full(rows.size, steps))
    g1 = board.cap_read_cells(rows, cols)
    board.cap_update(rows, cols, np.full(rows.size, -2 * steps))
    g2 = board.cap_read_cells(rows, cols)
    up, down = (g1 - g0) / steps, (g1 - g2) / (2 * steps)
    moving = (up > 0) & (down > 0)
    if not moving.any():
        board.cap_reset(rows, cols)
        raise ConfigError(f"no 3T1C cell responded to {steps} charge steps: check the capacitor array")
    rail = int(rail_steps or board.cap_info().max_steps)
    board.cap_reset(rows, cols)
    board.cap_update(rows, cols, np.full(rows.size, rail))
    top = board.cap_read_cells(rows, cols)
    for _ in range(2):  # down to the other rail: twice the steps, in records the board accepts
        board.cap_update(rows, cols, np.full(rows.size, -rail))
    bottom = board.cap_read_cells(rows, cols)
    board.cap_reset(rows, cols)
    return CapStep(float(np.mean(up[moving])), float(np.mean(down[moving])), float(np.median(g0[moving])),
                   float(np.median(top[moving])), float(np.median(bottom[moving])))


def measure_set_step(board: Any, rows: np.ndarray, cols: np.ndarray, pulse: PulseSpec, pulses: int = 5,
                     read_voltage: float = 0.2) -> float:
    """Mean conductance increase per SET pulse (S) on cells rows[k], cols[k] (no RESET: PCM-safe)."""
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    g0 = read_map(board, read_voltage)[rows, cols]
    batch = [Pulse(int(r), int(c), pulse.amplitude, pulse.width) for r, c in zip(rows, cols, strict=True)]
    board.pulse_batch(batch * pulses)
    g1 = read_map(board, read_voltage)[rows, cols]
    up = (g1 - g0) / pulses
    if not (up > 0).any():
        raise ConfigError(f"no cell responded to {pulses} SET pulses of {pulse.amplitude:g} V, {pulse.width:g} s")
    return float(np.mean(up[up > 0]))


def set_pulses(block: ArrayBlock, ii: np.ndarray, jj: np.ndarray, counts: np.ndarray) -> int:
    """``counts[k]`` SET pulses on pair (input ii[k], output jj[k]): on G⁺ for a positive count, G⁻ for a negative
    one (no RESET). Returns the pulses sent."""
    reps = np.abs(counts)
    rows = np.repeat(block.rows[ii], reps)
    cols = np.repeat(np.where(counts > 0, block.plus[jj], block.minus[jj]), reps)
    if rows.size:
        block.board.pulse_arrays(rows, cols, np.full(rows.size, block.pulses.amplitude), block.pulses.width)
    return int(rows.size)


@dataclass
class PairProgrammer:
    """Moves the difference of PCM pairs by write-verify (calibration layer), SET-only where it can.

    ``program(targets, active)`` runs the write-verify on the block (targets n_in × 2·n_out, S)
    and returns its :class:`~xbarlab.experiments.programming.ProgrammingOutcome`; ``read(mask)``
    returns the conductances (S) of the block's cells where ``mask`` (n_in × 2·n_out) is True, in
    row-major order. ``mapping`` gives the window [g_min, g_max].
    """

    block: ArrayBlock
    mapping: WeightMapping
    program: Callable[[np.ndarray, np.ndarray], Any]
    read: Callable[[np.ndarray], np.ndarray]
    tolerance: float  # S
    pulses: int = 0
    refreshes: int = 0
    last_achieved: np.ndarray | None = None  # S, n_in × 2·n_out: the last move's devices (NaN: not moved)

    def move(self, delta: np.ndarray, *, refresh: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Add ``delta`` (n_in × n_out, S) to G⁺ − G⁻ of the pairs where |delta| ≥ tolerance or ``refresh``.

        A positive delta SETs G⁺, a negative one G⁻; a pair whose device would leave the window
        (and every pair in ``refresh``) is refreshed: both devices RESET by the write-verify and
        the new difference programmed on one of them from the bottom of the window. Only the
        pairs that move are read. Returns (the difference not realised, S; mask of the pairs programmed).
        """
        refresh = np.zeros(delta.shape, dtype=bool) if refresh is None else refresh
        active = (np.abs(delta) >= self.tolerance) | refresh
        if not active.any():
            return delta.copy(), active
        both = np.repeat(active, 2, axis=1)  # n_in × 2·n_out: the devices of the moving pairs
        g = np.zeros(both.shape)
        g[both] = self.read(both)
        gp, gm = g[:, 0::2], g[:, 1::2]
        lo, hi = self.mapping.g_min, self.mapping.g_max
        tp = gp + np.maximum(delta, 0.0)
        tm = gm + np.maximum(-delta, 0.0)
        full = active & ((tp > hi) | (tm > hi) | refresh)
        d_new = gp - gm + delta
        tp = np.where(full, lo + np.clip(d_new, 0.0, hi - lo), tp)
        tm = np.where(full, lo + np.clip(-d_new, 0.0, hi - lo), tm)
        targets = g.copy()
        targets[:, 0::2] = np.where(active, tp, gp)
        targets[:, 1::2] = np.where(active, tm, gm)
        mask = np.zeros(g.shape, dtype=bool)  # only the device that moves (both for a refresh)
        mask[:, 0::2] = active & ((tp != gp) | full)
        mask[:, 1::2] = active & ((tm != gm) | full)
        outcome = self.program(targets, mask)
        self.pulses += int(outcome.pulses)
        self.refreshes += int(full.sum())
        achieved = np.where(mask, outcome.achieved, g)
        self.last_achieved = np.where(both, achieved, np.nan)  # S, the moving pairs' devices as verified
        d_done = achieved[:, 0::2] - achieved[:, 1::2]
        left = np.where(active, d_new - d_done, delta)
        return left, active

    def refresh_high(self, level: float) -> int:
        """Read every pair; RESET and re-program those with a device above ``level`` of the window.

        Returns the programming pulses spent."""
        n_in, n_cols = self.block.n_in, 2 * self.block.n_out
        g = self.read(np.ones((n_in, n_cols), dtype=bool)).reshape(n_in, n_cols)
        m = self.mapping
        top = m.g_min + level * (m.g_max - m.g_min)
        high = (g[:, 0::2] > top) | (g[:, 1::2] > top)
        if not high.any():
            return 0
        before = self.pulses
        self.move(np.zeros(high.shape), refresh=high)
        return self.pulses - before


class SetOnlyLayer(MixedPrecisionLayer):
    """Mixed precision with SET pulses only (G⁺ up for +, G⁻ up for −) and periodic refresh (Nandakumar 2020)."""

    def __init__(self, block: ArrayBlock, dw_min: float, programmer: PairProgrammer, *, max_pulses: int = 4,
                 refresh_every: int = 100, refresh_level: float = 0.9, seed: int = 0) -> None:
        super().__init__(block, dw_min, max_pulses=max_pulses, seed=seed)
        self.programmer = programmer
        self.refresh_every = int(refresh_every)
        self.refresh_level = float(refresh_level)
        self.samples = 0
        self.refresh_pulses = 0

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        self.chi -= lr * np.outer(d, x)
        n = np.trunc(self.chi / self.dw_min)
        jj, ii = np.nonzero(n)
        pulses = 0
        if len(jj):
            counts = np.clip(n[jj, ii], -self.max_pulses, self.max_pulses).astype(int)
            self.chi[jj, ii] -= counts * self.dw_min
            pulses = self._set_pulses(ii, jj, counts)
        self.samples += 1
        if self.samples % self.refresh_every == 0:
            pulses += self.refresh()
        return pulses

    def _set_pulses(self, ii: np.ndarray, jj: np.ndarray, counts: np.ndarray) -> int:
        return set_pulses(self.block, ii, jj, counts)

    def refresh(self) -> int:
        """RESET and re-program pairs with a device above ``refresh_level`` of the window."""
        spent = self.programmer.refresh_high(self.refresh_level)
        self.refresh_pulses += spent
        return spent


@dataclass
class TransferRecord:
    """What one capacitor → PCM transfer of a layer did, with the diagnostics of the scheme (S, fractions)."""

    sample: int
    pairs: int  # pairs whose PCM devices were programmed
    refreshed: int  # of which refreshed (RESET + re-programmed)
    pcm_pulses: int
    carried_rms: float  # S, rms of the difference written back to the capacitors
    polarity: int  # sign convention of g after this transfer
    lsp_rms: float = 0.0  # S, rms of polarity·(g⁺ − g⁻) read at the transfer
    cap_railed: float = 0.0  # fraction of g⁺ cells within 5 % of their measured range from a rail
    write_error_rms: float = 0.0  # S, rms over the programmed pairs of what the write-verify did not realise
    pcm_high: float = 0.0  # fraction of the programmed pairs with a device above 0.9 of the window afterwards
    ref_mean: float = 0.0  # S, mean g⁻ (the reference) at the transfer: its fall is the capacitors' leakage
    set_pulses: int = 0  # SET pulses of the transfer (``transfer_pulses``)

    #: columns of the ``transfers`` stream (polarity last) and their units
    COLUMNS = ("layer", "sample", "pairs", "refreshed", "pcm_pulses", "carried_rms", "lsp_rms", "cap_railed",
               "write_error_rms", "pcm_high", "ref_mean", "set_pulses", "polarity")
    UNITS = ("1", "1", "1", "1", "1", "S", "S", "1", "S", "1", "S", "1", "1")

    def row(self, layer: int) -> np.ndarray:
        return np.array([[layer, self.sample, self.pairs, self.refreshed, self.pcm_pulses, self.carried_rms,
                          self.lsp_rms, self.cap_railed, self.write_error_rms, self.pcm_high, self.ref_mean,
                          self.set_pulses, self.polarity]])


@dataclass
class PcmCapLayer:
    """W = F·(G⁺ − G⁻) ± (g⁺ − g⁻): PCM pair (most significant) and 3T1C pair (least), Ambrogio 2018."""

    pcm: ArrayBlock
    cap: ArrayMatrix  # the capacitor pair on the same rows/columns, mapping unit F·(PCM unit)
    programmer: PairProgrammer
    g_step: float  # S per charge step (measured)
    significance: float  # F
    transfer_every: int
    invert: bool = True
    max_steps: int = 255
    seed: int = 0
    polarity: int = 1
    samples: int = 0
    cap_steps: int = 0
    transfers: list[TransferRecord] = field(default_factory=list)
    on_transfer: Callable[[TransferRecord], None] | None = None
    cap_range: CapStep | None = None  # the capacitor cells' measured range (for the rail diagnostics)
    set_step: float = 0.0  # S per SET pulse (measured); > 0: transfers by SET pulses, else by write-verify
    refresh_every: int = 0  # samples between checks for pairs to refresh (0: only when a transfer overflows)
    refresh_level: float = 0.9  # refresh a pair with a device above this fraction of the window
    set_pulses: int = 0
    refresh_pulses: int = 0

    def __post_init__(self) -> None:
        if self.g_step <= 0 or self.significance <= 0 or self.transfer_every < 1:
            raise ConfigError("pcm_3t1c needs a positive charge step, F > 0 and transfer_every >= 1")
        self.rng = np.random.default_rng(self.seed)
        self.n_out, self.n_in = self.pcm.n_out, self.pcm.n_in
        self.board = self.pcm.board
        self.dw_step = self.g_step / (self.significance * self.pcm.mapping.unit)  # weight per charge step
        self._cells = (np.repeat(self.pcm.rows, 2 * self.n_out), np.tile(self.pcm.matrix.cols, self.n_in))
        self.board.cap_reset(*self._cells)

    def matrices(self) -> list[ArrayMatrix]:
        return [self.pcm.matrix, self.cap]

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.pcm.matrix.matvec(x) + self.polarity * self.cap.matvec(x)

    def backward(self, d: np.ndarray) -> np.ndarray:
        return self.pcm.matrix.rmatvec(d) + self.polarity * self.cap.rmatvec(d)

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        """ΔW = −lr·d·xᵀ as charge steps on g⁺ (stochastic rounding); a transfer every ``transfer_every`` samples."""
        steps = self.polarity * (-lr * np.outer(d, x)) / self.dw_step
        n = np.floor(steps + self.rng.random(steps.shape)).astype(np.int64)
        applied = self._charge(np.clip(n, -self.max_steps, self.max_steps))
        self.samples += 1
        if self.samples % self.transfer_every == 0:
            applied += self.transfer()
        if self.refresh_every and self.samples % self.refresh_every == 0:
            spent = self.programmer.refresh_high(self.refresh_level)
            self.refresh_pulses += spent
            applied += spent
        return applied

    def _charge(self, n: np.ndarray) -> int:
        """Charge steps n (n_out × n_in) on the g⁺ cells."""
        jj, ii = np.nonzero(n)
        if len(jj) == 0:
            return 0
        done = int(self.board.cap_update(self.pcm.rows[ii], self.pcm.plus[jj], n[jj, ii]))
        self.cap_steps += done
        return done

    def lsp(self) -> np.ndarray:
        """The least significant part in conductance: polarity·(g⁺ − g⁻) (n_in × n_out, S), read cell by cell."""
        g = self.board.cap_read_cells(*self._cells).reshape(self.n_in, 2 * self.n_out)
        return self.polarity * (g[:, 0::2] - g[:, 1::2])

    def transfer(self) -> int:
        """Move g into the PCM pair (F·ΔG = g), reset the capacitors, invert the polarity, write back the rest.

        With ``set_step`` > 0 (``transfer_pulses``, the default) every pair is moved by SET pulses on the
        device of the right sign, their number F⁻¹·|g| / set_step rounded stochastically (unbiased, no
        RESET, nothing written back); a pair whose device would leave the window is refreshed by the
        periodic check (``refresh_every``). Otherwise a pair whose share F⁻¹·g is at least the write-verify
        tolerance is moved by the calibration layer's write-verify and what it did not realise is written
        back onto the capacitor, as are the smaller shares. Why pulses are the default (a write-verify that
        overshoots on a PCM device can only come back by a RESET and a climb, which may fall short by more
        than the capacitor holds): docs/experiments.md.
        """
        g = self.board.cap_read_cells(*self._cells).reshape(self.n_in, 2 * self.n_out)
        lsp = self.polarity * (g[:, 0::2] - g[:, 1::2])
        delta = lsp / self.significance  # S to add to G⁺ − G⁻ (n_in × n_out)
        by_pulses = self.set_step > 0
        before = self.programmer.pulses
        refreshed = self.programmer.refreshes
        left, moved = self.programmer.move(np.zeros_like(delta) if by_pulses else delta)
        pulses = self.programmer.pulses - before
        pulsed = 0
        if by_pulses:
            counts = stochastic_round(delta / self.set_step, self.rng).astype(np.int64)
            ii, jj = np.nonzero(counts)
            pulsed = set_pulses(self.pcm, ii, jj, counts[ii, jj])
            self.set_pulses += pulsed
        self.board.cap_reset(*self._cells)
        if self.invert:
            self.polarity = -self.polarity
        carry = left * self.significance  # S of g still to hold (n_in × n_out)
        n = np.rint(self.polarity * carry / self.g_step).astype(np.int64)
        self._charge(np.clip(n, -self.max_steps, self.max_steps).T)
        record = TransferRecord(self.samples, int(moved.sum()), self.programmer.refreshes - refreshed, pulses,
                                float(np.sqrt(np.mean(carry**2))), self.polarity, **self._diagnostics(g, left, moved),
                                set_pulses=pulsed)
        self.transfers.append(record)
        if self.on_transfer is not None:
            self.on_transfer(record)
        return pulses + pulsed

    def _diagnostics(self, g: np.ndarray, left: np.ndarray, moved: np.ndarray) -> dict[str, float]:
        """Capacitor content and rails, write-verify error and PCM saturation of one transfer (S, fractions)."""
        plus, ref = g[:, 0::2], g[:, 1::2]
        out = {"lsp_rms": float(np.sqrt(np.mean((plus - ref) ** 2))), "ref_mean": float(np.mean(ref))}
        r = self.cap_range
        if r is not None and np.isfinite(r.top) and np.isfinite(r.bottom) and r.top > r.bottom:
            margin = 0.05 * (r.top - r.bottom)
            out["cap_railed"] = float(np.mean((plus > r.top - margin) | (plus < r.bottom + margin)))
        if moved.any():
            out["write_error_rms"] = float(np.sqrt(np.mean(left[moved] ** 2)))
            done = self.programmer.last_achieved
            if done is not None:
                m = self.pcm.mapping
                level = m.g_min + 0.9 * (m.g_max - m.g_min)
                high = (done[:, 0::2] > level) | (done[:, 1::2] > level)
                out["pcm_high"] = float(np.mean(high[moved]))
        return out

    def weights(self) -> np.ndarray:
        g = self.board.read_all()
        w_pcm = self.pcm.mapping.to_weights(g[self.pcm.rows][:, self.pcm.matrix.cols])
        return w_pcm + self.lsp().T / self.cap.mapping.unit  # lsp() carries the polarity already


def cap_matrix(board: Any, region: Region, pcm_mapping: WeightMapping, significance: float, n_out: int, n_in: int,
               encoding: InputEncoding) -> ArrayMatrix:
    """The capacitor pair of a layer as a matrix: (g⁺ − g⁻)/(F·unit) in weight units."""
    span = pcm_mapping.g_max - pcm_mapping.g_min
    mapping = WeightMapping(0.0, span, span / (significance * pcm_mapping.unit), "differential")
    return ArrayMatrix(CapacitorView(board), region, mapping, n_out, n_in, encoding=encoding)


# -- building the network on a PCM station ------------------------------------------------------------
def build_pcm_net(exp: Any, sizes: list[int], result: Any, regions: list[list[Region]]) -> MLP:
    """The MLP of a :class:`~xbarlab.experiments.training.TrainExperiment` with rule ``pcm_3t1c`` or
    update ``set_only``: initial weights by write-verify (both devices of a pair centred in the window),
    the SET step (and for pcm_3t1c the capacitor charge step) measured and logged as calibrations.
    ``regions``: per layer, the array block(s) the training layout planned (the first is used)."""
    p = exp.params
    station = exp.station
    board = station.require_board()
    three_t1c = p["rule"] == PCM_RULE
    if three_t1c:
        info = board.cap_info()  # ConfigError on a board without the capacitor array
        exp.recorder.add_calibration("train-cap-info", "cap_info", {"max_steps": np.array(info.max_steps)},
                                     {"rows": info.rows, "cols": info.cols, "step_time_s": info.step_time})
    pulses = PulseSpec(p["pulse_amplitude"], p["pulse_width"])
    enc = InputEncoding("amplitude", p["v_in"])
    w_maxes = [p["w_max_hidden"]] * (len(sizes) - 2) + [p["w_max_out"]]
    weights = init_weights(sizes, seed=p["seed"])
    rng = np.random.default_rng(p["seed"] + 11)
    read_v = station_defaults(station)[0]
    tolerance = p["tolerance"] * (p["g_max"] - p["g_min"])

    blocks: list[tuple[ArrayBlock, Region, WeightMapping]] = []
    prog: dict[str, Any] = {}
    for k, (w, regs, w_max) in enumerate(zip(weights, regions, w_maxes, strict=True)):
        exp.checkpoint()
        exp.report(0, 3, f"programming layer {k + 1} ({w.shape[0]}x{w.shape[1]})")
        mapping = WeightMapping(p["g_min"], p["g_max"], w_max, "differential")
        block = ArrayBlock(board, regs[0], mapping, w.shape[0], w.shape[1], pulses, enc)
        try:
            outcome = program_weights(station, board, block.rows, block.matrix.cols, mapping, w, centered=True,
                                      pulse=pulses, tolerance=tolerance, checkpoint=exp.checkpoint)
        except ConfigError as exc:
            raise ConfigError(characterisation_refusal(str(exc), p["rule"])) from None
        prog[f"layer{k}"] = outcome.summary()
        blocks.append((block, regs[0], mapping))
    result.programming = prog
    model = characterized_model(board, blocks[0][0].rows, blocks[0][0].matrix.cols, read_voltage=read_v,
                                width=pulses.width, clock=sim_clock(station), checkpoint=exp.checkpoint)

    exp.checkpoint()
    exp.report(1, 3, "measuring the SET step")
    cells = np.array([(int(r), int(c)) for b, _, _ in blocks for r in b.rows for c in b.matrix.cols])
    pick = cells[rng.choice(len(cells), size=min(64, len(cells)), replace=False)]
    set_step = measure_set_step(board, pick[:, 0], pick[:, 1], pulses, read_voltage=read_v)
    result.device_step = {"up_S": set_step, "down_S": float("nan"), "asymmetry": float("nan")}
    exp.recorder.add_calibration("train-set-step", "device_step", {"up": np.array(set_step)},
                                 {"cells": int(len(pick)), "pulse_amplitude": pulses.amplitude,
                                  "pulse_width": pulses.width, "reset_pulses": 0})
    cap_step = None
    if three_t1c:
        cap_step = measure_cap_step(board, pick[:, 0], pick[:, 1])
        result.device_step.update(cap_up_S=cap_step.up, cap_down_S=cap_step.down, cap_top_S=cap_step.top,
                                  cap_bottom_S=cap_step.bottom, cap_reset_S=cap_step.reset)
        exp.recorder.add_calibration("train-cap-step", "cap_step",
                                     {"up": np.array(cap_step.up), "down": np.array(cap_step.down),
                                      "reset": np.array(cap_step.reset), "top": np.array(cap_step.top),
                                      "bottom": np.array(cap_step.bottom)},
                                     {"cells": int(len(pick)), "steps": 10})

    def programmer(block: ArrayBlock, mapping: WeightMapping) -> PairProgrammer:
        rows, cols = block.rows, block.matrix.cols
        single = 1.5 * mapping.g_max * abs(read_v)  # A, TIA range of single-cell reads of the window
        reader = cell_reader(board, read_v)

        def keep_range(fn: Callable[[], Any]) -> Any:
            cfg = board.configuration  # the MVM range set by autorange, restored afterwards
            try:
                with tia_range(station, board, single):
                    return fn()
            finally:
                if cfg is not None:
                    board.configure(cfg.read_voltage, cfg.tia_range)

        def read(mask: np.ndarray) -> np.ndarray:
            # averaged: a PCM read carries 1/f noise of a few % of g (the write-verify's verify reads average too)
            ii, kk = np.nonzero(mask)
            rr, cc = np.tile(rows[ii], READS), np.tile(cols[kk], READS)
            return keep_range(lambda: reader(rr, cc)).reshape(READS, -1).mean(axis=0)

        def write(targets: np.ndarray, mask: np.ndarray) -> Any:
            # the calibration layer's write-verify, verifying the moving cells by single-cell reads
            return keep_range(lambda: write_verify(
                board, rows, cols, targets, pulse=pulses, tolerance=tolerance, read_voltage=read_v,
                g_lo=mapping.g_min, g_hi=mapping.g_max, model=model, active=mask, reader=reader,
                clock=sim_clock(station), checkpoint=exp.checkpoint))

        return PairProgrammer(block, mapping, program=write, read=read, tolerance=tolerance)

    transfers = exp.recorder.stream("transfers", columns=list(TransferRecord.COLUMNS),
                                    units=list(TransferRecord.UNITS)) if three_t1c else None
    layers: list[Any] = []
    for k, (block, region, mapping) in enumerate(blocks):
        pp = programmer(block, mapping)
        if three_t1c:
            assert cap_step is not None

            def log(rec: TransferRecord, k: int = k) -> None:
                transfers.append(rec.row(k))

            cap = cap_matrix(board, region, mapping, p["significance"], block.n_out, block.n_in, enc)
            layers.append(PcmCapLayer(block, cap, pp, cap_step.mean, p["significance"], p["cap_transfer_every"],
                                      invert=p["polarity_inversion"], seed=p["seed"] + k, on_transfer=log,
                                      cap_range=cap_step, set_step=set_step if p["transfer_pulses"] else 0.0,
                                      refresh_every=p["refresh_every"] if p["transfer_pulses"] else 0,
                                      refresh_level=p["refresh_level"]))
        else:
            layers.append(SetOnlyLayer(block, set_step / mapping.unit, pp, max_pulses=p["max_pulses"],
                                       refresh_every=p["refresh_every"], refresh_level=p["refresh_level"],
                                       seed=p["seed"] + k))
    exp.commit("initialised", **{f"{k}_yield": v["yield"] for k, v in prog.items()}, dw_up=set_step,
               **({"cap_step": cap_step.mean} if cap_step else {}))
    return MLP(layers)


def pcm_counters(net: Any) -> dict[str, Any]:
    """Totals of a trained PCM network: transfers, refreshes, PCM programming pulses and charge steps; for
    PCM + 3T1C also the transfers' diagnostics averaged over the run (S, fractions)."""
    out: dict[str, Any] = {"transfers": 0, "refreshes": 0, "pcm_program_pulses": 0, "cap_steps": 0}
    records: list[TransferRecord] = []
    for layer in net.layers:
        programmer = getattr(layer, "programmer", None)
        if programmer is None:
            continue
        out["refreshes"] += programmer.refreshes
        out["pcm_program_pulses"] += programmer.pulses
        if isinstance(layer, PcmCapLayer):
            out["transfer_set_pulses"] = out.get("transfer_set_pulses", 0) + layer.set_pulses
            out["transfers"] += len(layer.transfers)
            out["cap_steps"] += layer.cap_steps
            records += layer.transfers
    if records:
        for key in ("lsp_rms", "cap_railed", "write_error_rms", "pcm_high", "carried_rms", "ref_mean"):
            out[f"{key}_mean"] = float(np.mean([getattr(r, key) for r in records]))
    return out
