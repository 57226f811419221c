"""Weight mapping: real matrices → differential conductance pairs on (tiles of) an array.

W (n_out × n_in, y = W·x) sits with its inputs on rows and each output on a column pair
(G⁺ at column 2j, G⁻ at 2j+1), W ∝ G⁺ − G⁻. :class:`PairMapping` scales W so that
``w_max`` uses the whole usable range [g_lo, g_hi] (S) measured by the range map, clips
larger weights, and places each weight one-sided (the device of the other sign at g_lo,
least current and IR drop). :func:`compensate_stuck` re-targets the partner of a stuck
device so the pair keeps its difference; :func:`plan_tiles` splits a matrix larger than
the array into tiles (input blocks summed digitally, output blocks concatenated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from xbarlab.errors import ConfigError


@dataclass(frozen=True)
class PairMapping:
    """Signed weights ↔ differential conductances (S) over the usable range [g_lo, g_hi].

    One-sided by default (the device of the other sign at g_lo: least current); ``centered``
    puts both devices around mid-range (G± = g_mid ± w·unit/2), the same weight range with a
    pair current that does not depend on w (row load constant while weights change).
    """

    g_lo: float
    g_hi: float
    w_max: float = 1.0
    centered: bool = False  # both devices around mid-range: constant pair current (row load) for any w

    def __post_init__(self) -> None:
        if not (0 <= self.g_lo < self.g_hi and np.isfinite(self.g_hi)):
            raise ConfigError(f"usable range must satisfy 0 <= g_lo < g_hi, got [{self.g_lo}, {self.g_hi}] S")
        if not self.w_max > 0:
            raise ConfigError(f"w_max must be > 0, got {self.w_max}")

    @classmethod
    def for_matrix(cls, weights: np.ndarray, g_lo: float, g_hi: float, headroom: float = 1.0) -> PairMapping:
        """Scale so that the largest |w| (× ``headroom``) uses the full range."""
        peak = float(np.max(np.abs(weights))) if np.size(weights) else 0.0
        return cls(g_lo, g_hi, max(peak * headroom, 1e-300))

    @property
    def unit(self) -> float:
        """Conductance difference per unit weight (S)."""
        return (self.g_hi - self.g_lo) / self.w_max

    def to_conductance(self, weights: np.ndarray) -> np.ndarray:
        """Targets (n_in × 2·n_out, S) for W (n_out × n_in); |w| is clipped at w_max."""
        w = np.clip(np.asarray(weights, dtype=float), -self.w_max, self.w_max).T
        g = np.empty((w.shape[0], 2 * w.shape[1]))
        if self.centered:
            mid = 0.5 * (self.g_lo + self.g_hi)
            g[:, 0::2] = mid + 0.5 * w * self.unit
            g[:, 1::2] = mid - 0.5 * w * self.unit
            return g
        g[:, 0::2] = self.g_lo + np.maximum(w, 0.0) * self.unit
        g[:, 1::2] = self.g_lo + np.maximum(-w, 0.0) * self.unit
        return g

    def to_weights(self, conductances: np.ndarray) -> np.ndarray:
        """W (n_out × n_in) that conductances (n_in × 2·n_out, S) represent."""
        g = np.asarray(conductances, dtype=float)
        return ((g[:, 0::2] - g[:, 1::2]) / self.unit).T

    def clipped(self, weights: np.ndarray) -> int:
        """How many weights exceed w_max (they are clipped)."""
        return int(np.count_nonzero(np.abs(np.asarray(weights)) > self.w_max))


def compensate_stuck(
    targets: np.ndarray, stuck: np.ndarray, stuck_g: np.ndarray, g_lo: float, g_hi: float
) -> tuple[np.ndarray, np.ndarray]:
    """Re-target the partner of each stuck device so the pair keeps G⁺ − G⁻ (S).

    ``targets`` (n_in × 2·n_out, S), ``stuck`` (bool, same shape), ``stuck_g`` the stuck
    devices' read conductances (S). The partner's new target is clipped to [g_lo, g_hi];
    returns (new targets, bool mask of pairs that could not be fully compensated: both
    devices stuck, or the needed partner value outside the range).
    """
    t = np.asarray(targets, dtype=float).copy()
    s = np.asarray(stuck, dtype=bool)
    if t.shape != s.shape or t.shape[1] % 2:
        raise ConfigError("compensate_stuck: targets and stuck must have the same shape with an even column count")
    gs = np.asarray(stuck_g, dtype=float)
    delta = t[:, 0::2] - t[:, 1::2]
    sp, sm = s[:, 0::2], s[:, 1::2]
    want_m = gs[:, 0::2] - delta  # G⁺ stuck: G⁻ = g⁺_stuck − Δ
    want_p = gs[:, 1::2] + delta  # G⁻ stuck: G⁺ = g⁻_stuck + Δ
    new_m = np.where(sp & ~sm, np.clip(want_m, g_lo, g_hi), t[:, 1::2])
    new_p = np.where(sm & ~sp, np.clip(want_p, g_lo, g_hi), t[:, 0::2])
    t[:, 1::2], t[:, 0::2] = new_m, new_p
    t[s] = gs[s]  # the stuck devices stay what they are
    short = (sp & sm) | (sp & ~sm & (np.abs(new_m - want_m) > 0)) | (sm & ~sp & (np.abs(new_p - want_p) > 0))
    return t, short


@dataclass(frozen=True)
class Tile:
    """One tile: W[out0:out0+n_out, in0:in0+n_in] on array rows row0.. and columns col0.. (pairs)."""

    out0: int
    n_out: int
    in0: int
    n_in: int
    row0: int
    col0: int


def plan_tiles(n_out: int, n_in: int, rows: int, cols: int, arrays: int = 1) -> list[list[Tile]]:
    """Tiles of a W (n_out × n_in) for arrays of rows × cols (two columns per output).

    Returns one list of tiles per array load: tiles are packed into an array side by side
    (disjoint column blocks, each up to ``rows`` inputs); when more tiles are needed than
    ``arrays`` arrays hold at once, later loads reprogram the arrays (time multiplexing).
    y = Σ over input tiles (digitally) of each output tile's partial product.
    """
    if min(n_out, n_in, rows, cols) < 1 or cols < 2:
        raise ConfigError("plan_tiles: sizes must be >= 1 and the array needs at least 2 columns")
    per_cols = cols // 2
    tiles = [(o, min(per_cols, n_out - o), i, min(rows, n_in - i))
             for i in range(0, n_in, rows) for o in range(0, n_out, per_cols)]
    loads: list[list[Tile]] = []
    current: list[Tile] = []
    col = 0
    array = 0
    for o, no, i, ni in tiles:
        if col + 2 * no > cols:
            array += 1
            col = 0
            if array >= arrays:
                loads.append(current)
                current, array = [], 0
        current.append(Tile(o, no, i, ni, 0, array * cols + col))
        col += 2 * no
    if current:
        loads.append(current)
    return loads


def tiled_matvec(loads: list[list[Tile]], x: np.ndarray, n_out: int,
                 run_tile: Callable[[Tile, np.ndarray], np.ndarray],
                 load: Callable[[list[Tile]], None] | None = None) -> np.ndarray:
    """y = W·x for a W split by :func:`plan_tiles`: ``load(tiles)`` programs one array load,
    ``run_tile(tile, x[in0:in0+n_in])`` returns that tile's partial product (n_out values);
    partial products of input tiles are summed digitally."""
    x = np.asarray(x, dtype=float)
    y = np.zeros(n_out)
    for tiles in loads:
        if load is not None:
            load(tiles)
        for t in tiles:
            y[t.out0:t.out0 + t.n_out] += run_tile(t, x[t.in0:t.in0 + t.n_in])
    return y
