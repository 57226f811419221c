"""Network layers on a crossbar and their pulsed update rules.

All layers keep W on a block of the array in the differential layout (two columns per
output, W ∝ G⁺ − G⁻, :mod:`xbarlab.experiments.analog`) and update it push-pull: a step up
SETs G⁺ and RESETs G⁻, a step down the reverse, so one coincidence (or one pulse pair) moves
W by dw_min = (Δg_up + Δg_down)/unit. Push-pull cancels the devices' up/down imbalance at the
weight level (a step up and a step down each use one SET and one RESET); what is left of the
asymmetry is a decay of W towards zero from the soft bounds. With ``single_device`` only G⁺ is
pulsed and G⁻ stays a fixed reference (one device per weight, as in Gokmen & Vlasov 2016 and
Gokmen & Haensch 2020): the full device asymmetry then reaches the weight, dw_min = Δg_mean/unit.

* :class:`StochasticPulseLayer` — stochastic outer-product update (Gokmen & Vlasov, "Acceleration
  of deep neural network training with resistive cross-point devices", Front. Neurosci. 2016):
  each row fires a random −1/0/+1 train with probability ∝ |x_i|, each column ∝ |δ_j|, over
  ``bl`` slots; coincidences update all cells in parallel, E[ΔW] = −lr·δ·xᵀ.
* :class:`MixedPrecisionLayer` — digital accumulation (Nandakumar et al., "Mixed-precision deep
  learning based on computational memory", Front. Neurosci. 2020): χ += −lr·δ·xᵀ in float; where
  |χ| ≥ dw_min the cell gets ⌊|χ|/dw_min⌋ pulse pairs and χ keeps the remainder.
* :class:`TikiTakaLayer` — two arrays A and C (Gokmen & Haensch, "Algorithm for training neural
  networks on resistive device arrays", Front. Neurosci. 2020): W = γ·A + C; gradients go to A by
  stochastic pulses; every ``transfer_every`` samples one row of A is read with a forward MVM
  (one-hot input) and added to C by an outer-product update. A starts at its devices' symmetry
  point (zero-shifting), so device asymmetry acts as a decay of A rather than a bias of W.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.experiments.analog import ArrayMatrix, InputEncoding, Region, WeightMapping
from xbarlab.instruments.interfaces import BatchedPulses, CrossbarArray, Pulse

RULES: tuple[str, ...] = ("sgd", "mixed_precision", "tiki_taka")


@dataclass(frozen=True)
class PulseSpec:
    """Update pulses: +amplitude potentiates (SET), −amplitude depresses (RESET).

    One magnitude for both polarities, because a coincidence (outer-product) update applies
    ±amplitude by the sign of row·column.
    """

    amplitude: float = 1.0  # V (> 0)
    width: float = 100e-9  # s

    def __post_init__(self) -> None:
        if not (self.amplitude > 0 and self.width > 0):
            raise ConfigError(f"update pulses need amplitude > 0 V and width > 0 s, got {self.amplitude}, {self.width}")


@dataclass(frozen=True)
class DeviceStep:
    """Mean conductance change per pulse (S), measured on the array."""

    up: float  # S per SET pulse (> 0 for a working device)
    down: float  # S per RESET pulse, as a positive number

    @property
    def mean(self) -> float:
        return 0.5 * (self.up + self.down)

    @property
    def asymmetry(self) -> float:
        """(up − down)/(up + down): 0 for a symmetric device."""
        total = self.up + self.down
        return (self.up - self.down) / total if total > 0 else 0.0


class ArrayBlock:
    """W on one region: products through :class:`ArrayMatrix`, pulses in array coordinates."""

    def __init__(
        self,
        board: CrossbarArray,
        region: Region,
        mapping: WeightMapping,
        n_out: int,
        n_in: int,
        pulses: PulseSpec,
        encoding: InputEncoding | None = None,
        *,
        single_device: bool = False,
    ) -> None:
        if mapping.layout != "differential":
            raise ConfigError("on-array training uses the differential layout (two columns per output)")
        self.single_device = bool(single_device)  # pulse only G⁺; G⁻ is a fixed reference
        self.board = board
        self.mapping = mapping
        self.pulses = pulses
        self.matrix = ArrayMatrix(board, region, mapping, n_out, n_in, encoding=encoding)
        self.n_out, self.n_in = n_out, n_in
        self.rows = self.matrix.rows
        self.plus = self.matrix.cols[0::2]
        self.minus = self.matrix.cols[1::2]
        self.active = self.matrix.active

    def outer(self, row_trains: np.ndarray, out_trains: np.ndarray) -> int:
        """Coincidence update: rows (n_in × slots) and outputs (n_out × slots), −1/0/+1.

        A coincidence with product +1 moves W up (SET on G⁺, RESET on G⁻; G⁺ only with
        ``single_device``). One board command: G⁺ columns driven with the output train, G⁻
        columns with its negative.
        """
        slots = row_trains.shape[1]
        rt = np.zeros((self.active[0], slots), dtype=np.int8)
        ct = np.zeros((self.active[1], slots), dtype=np.int8)
        rt[self.rows] = row_trains
        ct[self.plus] = out_trains
        if not self.single_device:
            ct[self.minus] = -out_trains
        coincidences = int((np.abs(row_trains).astype(np.int64) @ np.abs(out_trains).T).sum())
        if coincidences == 0:
            return 0
        self.board.outer_product_update(rt, ct, self.pulses.amplitude, self.pulses.width)
        return coincidences if self.single_device else 2 * coincidences

    def step_cells(self, ii: np.ndarray, jj: np.ndarray, counts: np.ndarray) -> int:
        """Signed pulse-pair counts on weights (out jj, in ii): +n → n × (SET G⁺, RESET G⁻); G⁺ only if single.

        One PULSE_BATCH, pulses in weight order: each weight's |n| pulses (alternating G⁺, G⁻) in a row.
        """
        sp = self.pulses
        counts = np.asarray(counts, dtype=np.int64)
        reps = np.abs(counts)
        if not reps.sum():
            return 0
        rows = np.repeat(self.rows[np.asarray(ii)], reps).astype(np.int64)
        plus = np.repeat(self.plus[np.asarray(jj)], reps).astype(np.int64)
        a_p = np.repeat(np.where(counts > 0, sp.amplitude, -sp.amplitude), reps)
        if self.single_device:
            r, c, a = rows, plus, a_p
        else:  # each pulse on G⁺ followed by its opposite on G⁻
            minus = np.repeat(self.minus[np.asarray(jj)], reps).astype(np.int64)
            r = np.repeat(rows, 2)
            c = np.stack([plus, minus], axis=1).ravel()
            a = np.stack([a_p, -a_p], axis=1).ravel()
        if isinstance(self.board, BatchedPulses):
            self.board.pulse_arrays(r, c, a, sp.width)
            return int(r.size)
        self.board.pulse_batch([Pulse(int(x), int(y), float(z), sp.width) for x, y, z in zip(r, c, a, strict=True)])
        return int(r.size)


def _stochastic_trains(
    rng: np.random.Generator, x: np.ndarray, d: np.ndarray, lr: float, dw_min: float, bl: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row trains from x, output trains from −d, for E[ΔW] = −lr·d·xᵀ (Gokmen & Vlasov 2016).

    Probabilities p_x = c_x·|x|, p_d = c_d·|d| with c_x·c_d·bl·dw_min = lr, balanced so both
    peak values are equal ("update management"), and clipped at 1 (large updates saturate).
    """
    xmax, dmax = float(np.max(np.abs(x))), float(np.max(np.abs(d)))
    if xmax == 0 or dmax == 0:
        return np.zeros((len(x), bl), dtype=np.int8), np.zeros((len(d), bl), dtype=np.int8)
    gain = lr / (bl * dw_min)  # c_x·c_d
    ratio = np.sqrt(dmax / xmax)
    c_x, c_d = np.sqrt(gain) * ratio, np.sqrt(gain) / ratio
    px = np.minimum(c_x * np.abs(x), 1.0)
    pd = np.minimum(c_d * np.abs(d), 1.0)
    rt = (rng.random((len(x), bl)) < px[:, None]) * np.sign(x)[:, None]
    ct = (rng.random((len(d), bl)) < pd[:, None]) * -np.sign(d)[:, None]
    return rt.astype(np.int8), ct.astype(np.int8)


def stochastic_round(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pulse counts for ``x`` (signed, in pulses) by stochastic rounding of |x|: E[result] = x; floats."""
    return np.sign(x) * np.floor(np.abs(x) + rng.random(np.shape(x)))


class StochasticPulseLayer:
    """Forward/backward MVMs on the array; stochastic outer-product pulse updates."""

    def __init__(self, block: ArrayBlock, dw_min: float, *, bl: int = 10, seed: int = 0) -> None:
        if dw_min <= 0:
            raise ConfigError(f"dw_min must be > 0 (weight change per pulse pair), got {dw_min}")
        self.block = block
        self.dw_min = float(dw_min)
        self.bl = int(bl)
        self.rng = np.random.default_rng(seed)
        self.n_out, self.n_in = block.n_out, block.n_in

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.block.matrix.matvec(x)

    def backward(self, d: np.ndarray) -> np.ndarray:
        return self.block.matrix.rmatvec(d)

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        rt, ct = _stochastic_trains(self.rng, x, d, lr, self.dw_min, self.bl)
        return self.block.outer(rt, ct)

    def weights(self) -> np.ndarray:
        g = self.block.board.read_all()
        return self.block.mapping.to_weights(g[self.block.rows][:, self.block.matrix.cols])


class MixedPrecisionLayer(StochasticPulseLayer):
    """Digital accumulator χ; pulse pairs when |χ| passes dw_min (Nandakumar et al. 2020)."""

    def __init__(self, block: ArrayBlock, dw_min: float, *, max_pulses: int = 4, seed: int = 0) -> None:
        super().__init__(block, dw_min, seed=seed)
        self.chi = np.zeros((block.n_out, block.n_in))
        self.max_pulses = int(max_pulses)

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        self.chi -= lr * np.outer(d, x)
        n = np.trunc(self.chi / self.dw_min)
        jj, ii = np.nonzero(n)
        if len(jj) == 0:
            return 0
        counts = np.clip(n[jj, ii], -self.max_pulses, self.max_pulses).astype(int)
        self.chi[jj, ii] -= counts * self.dw_min
        return self.block.step_cells(ii, jj, counts)


class TikiTakaLayer:
    """W = γ·A + C on two disjoint regions; updates to A, periodic row transfer A → C."""

    def __init__(
        self,
        a: ArrayBlock,
        c: ArrayBlock,
        dw_min_a: float,
        dw_min_c: float,
        *,
        gamma: float = 1.0,
        transfer_every: int = 2,
        transfer_lr: float = 0.1,
        bl: int = 10,
        seed: int = 0,
    ) -> None:
        if (a.n_out, a.n_in) != (c.n_out, c.n_in):
            raise ConfigError("Tiki-Taka: A and C must have the same shape")
        if a.matrix.region.overlaps(c.matrix.region):
            raise ConfigError("Tiki-Taka: A and C must sit on disjoint regions of the array")
        self.a, self.c = a, c
        self.dw_a, self.dw_c = float(dw_min_a), float(dw_min_c)
        self.gamma = float(gamma)
        self.transfer_every = int(transfer_every)
        self.transfer_lr = float(transfer_lr)
        self.bl = int(bl)
        self.rng = np.random.default_rng(seed)
        self.n_out, self.n_in = a.n_out, a.n_in
        self.samples = 0
        self.next_row = 0
        self.transfers = 0

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.gamma * self.a.matrix.matvec(x) + self.c.matrix.matvec(x)

    def backward(self, d: np.ndarray) -> np.ndarray:
        return self.gamma * self.a.matrix.rmatvec(d) + self.c.matrix.rmatvec(d)

    def update(self, x: np.ndarray, d: np.ndarray, lr: float) -> int:
        rt, ct = _stochastic_trains(self.rng, x, d, lr, self.dw_a, self.bl)
        pulses = self.a.outer(rt, ct)
        self.samples += 1
        if self.samples % self.transfer_every == 0:
            pulses += self._transfer()
        return pulses

    def _transfer(self) -> int:
        """Read row i of A (weights from input i) with a one-hot forward MVM; add it to C."""
        i = self.next_row
        self.next_row = (self.next_row + 1) % self.n_in
        onehot = np.zeros(self.n_in)
        onehot[i] = 1.0
        a_col = self.a.matrix.matvec(onehot)  # A[:, i]
        self.transfers += 1
        # C[:, i] += transfer_lr·A[:, i]  ≡  update with x = e_i, d = −A[:, i]
        rt, ct = _stochastic_trains(self.rng, onehot, -a_col, self.transfer_lr, self.dw_c, self.bl)
        return self.c.outer(rt, ct)

    def weights(self) -> np.ndarray:
        g = self.a.board.read_all()
        wa = self.a.mapping.to_weights(g[self.a.rows][:, self.a.matrix.cols])
        wc = self.c.mapping.to_weights(g[self.c.rows][:, self.c.matrix.cols])
        return self.gamma * wa + wc
