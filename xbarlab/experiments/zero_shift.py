"""Zero shifting: find each device's symmetry point on the bench by alternating pulses and reads.

Under soft bounds a device's SET step shrinks and its RESET step grows as its conductance rises;
where the two are equal (the symmetry point) a SET/RESET pair leaves it where it was, and any
alternating pulse train drives it there. Plain analog SGD on an asymmetric device therefore pulls
every weight towards the device's symmetry point; zero shifting (Kim et al., "Zero-shifting
technique for deep neural network training on resistive cross-point arrays", arXiv:1907.10228,
2019/2020) places the weight's zero there by programming the reference device to the measured
symmetry point, so the asymmetry acts as a decay towards W = 0 instead of a bias.

The symmetry point is **measured** here, from the host's side: rounds of alternating pulse pairs
on all cells at once (one outer-product command per round), a read after each round, stopping when
the conductances no longer approach a fixed value (the median change between rounds is at the
read-noise level, or has stopped shrinking); the estimate is the mean of a few further rounds' reads.
Nothing about the device model is assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.experiments.programming import read_map
from xbarlab.instruments.interfaces import CrossbarArray


@dataclass
class SymmetryPoints:
    """Measured symmetry-point conductances (S), one per cell (rows[k], cols[k])."""

    rows: np.ndarray
    cols: np.ndarray
    g_sym: np.ndarray  # S, mean over the averaging rounds
    spread: np.ndarray  # S, standard deviation of the reads over the averaging rounds
    rounds: int  # rounds of alternating pairs until settled (without the averaging rounds)
    pairs: int  # pulse pairs applied in total
    settled: bool  # the stopping rule was met before max_rounds
    history: list[float] = field(default_factory=list)  # S, median |change| per round


def alternating_trains(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
                       pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column pulse trains of one outer-product command that gives every cell of ``rows`` × ``cols``
    ``pairs`` alternating SET/RESET pairs (the other lines idle), for a board of ``shape`` (rows, cols)."""
    rt = np.zeros((shape[0], 2 * pairs), dtype=np.int8)
    ct = np.zeros((shape[1], 2 * pairs), dtype=np.int8)
    rt[rows] = 1
    ct[cols] = np.tile(np.array([1, -1], dtype=np.int8), pairs)
    return rt, ct


def measure_symmetry_points(
    board: CrossbarArray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    amplitude: float,
    width: float,
    read_voltage: float,
    pairs_per_round: int = 200,
    max_rounds: int = 60,
    average_rounds: int = 4,
    checkpoint: Any = None,
) -> SymmetryPoints:
    """Drive every cell of the ``rows`` × ``cols`` block to its symmetry point and measure it (S).

    ``amplitude`` (V, > 0) and ``width`` (s) are the update pulses whose symmetry point is wanted
    (SET +amplitude, RESET −amplitude). Each round applies ``pairs_per_round`` SET/RESET pairs to
    the block (one outer-product command), then reads the array. The read noise is estimated from
    two reads before any pulse; the cells count as settled when the median |change| between two
    rounds is below 3x the median |difference| of those two reads, or has stopped shrinking for three
    rounds (cycle-to-cycle jitter around the fixed point) — then ``average_rounds`` more rounds are
    read and averaged.
    """
    rows, cols = np.asarray(rows, dtype=int), np.asarray(cols, dtype=int)
    if rows.size == 0 or cols.size == 0:
        raise ConfigError("symmetry-point measurement needs at least one row and one column")
    if not (amplitude > 0 and width > 0 and pairs_per_round >= 1 and max_rounds >= 1 and average_rounds >= 1):
        raise ConfigError("symmetry-point measurement: amplitude and width must be > 0, and the round counts >= 1")
    rt, ct = alternating_trains(board.shape, rows, cols, pairs_per_round)

    def block() -> np.ndarray:
        return read_map(board, read_voltage)[np.ix_(rows, cols)]

    g_prev = block()
    noise = float(np.median(np.abs(block() - g_prev)))  # S, median |difference| of two reads: read noise alone
    history: list[float] = []
    settled = False
    rounds = 0
    for rounds in range(1, max_rounds + 1):  # noqa: B007 - rounds is reported
        if checkpoint is not None:
            checkpoint()
        board.outer_product_update(rt, ct, amplitude, width)
        g = block()
        history.append(float(np.median(np.abs(g - g_prev))))
        g_prev = g
        plateau = rounds >= 4 and min(history[-3:]) >= 0.9 * min(history[:-3])  # jitter around the fixed point
        if rounds >= 2 and (history[-1] <= 3 * noise or plateau):
            settled = True
            break
    reads = []
    for _ in range(average_rounds):
        if checkpoint is not None:
            checkpoint()
        board.outer_product_update(rt, ct, amplitude, width)
        reads.append(block())
    stack = np.stack(reads)
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    return SymmetryPoints(rr.ravel(), cc.ravel(), stack.mean(axis=0).ravel(), stack.std(axis=0).ravel(), rounds,
                          (rounds + average_rounds) * pairs_per_round, settled, history)
