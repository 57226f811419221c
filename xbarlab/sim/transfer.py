"""Transfer operator of a linear network, learned from the solves an array already does.

With its sense lines held at 0 V, the ohmic part of a crossbar's wire network maps drive-line
voltages to sense-line currents linearly: I = K·V with K (sense × drive, S) fixed per conductance
state. :class:`LearnedTransfer` keeps an orthonormal basis Q of the drive vectors solved so far at
this state and the currents K·Q they gave. A new drive vector V is split into its part in span(Q),
whose currents are K·Q·(Qᵀ·V) with no solve, and the rest R, which is solved once (the caller's
linear solver) and added to the basis. After as many independent drives as there are drive lines
the basis is complete and K = (K·Q)·Qᵀ is kept: every further MVM at this state is one product.
Repeated inputs, or inputs confined to a few lines, never solve again.

Accuracy: a remainder below ``span_tol`` of |V| (relative, default 1e-12) is treated as in the
span; the solver's own tolerance sets the rest. Units: V, A, S.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class LearnedTransfer:
    """K of one conductance state, learned column space by column space (``n`` drive lines, ``m`` sense lines)."""

    def __init__(self, n: int, m: int, span_tol: float = 1e-12) -> None:
        self.n, self.m = int(n), int(m)
        self.span_tol = float(span_tol)
        self._q = np.zeros((self.n, 0))  # orthonormal drive directions solved so far (n × k)
        self._kq = np.zeros((self.m, 0))  # K·Q (m × k), A/V
        self.matrix: np.ndarray | None = None  # K (m × n) once the basis is complete
        self.solves = 0  # network solves this state has needed
        self.served = 0  # products asked of it

    @property
    def rank(self) -> int:
        """Drive directions known (n: complete)."""
        return self.n if self.matrix is not None else self._q.shape[1]

    def apply(self, v: np.ndarray, solve: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """K·v (A) for drive voltages ``v`` (V); ``solve(r)`` returns K·r for a drive ``r`` outside the known span."""
        self.served += 1
        if self.matrix is not None:
            return self.matrix @ v
        q, kq = self._q, self._kq
        c = q.T @ v
        r = v - q @ c
        c2 = q.T @ r  # twice is enough (Gram-Schmidt re-orthogonalisation)
        r -= q @ c2
        c += c2
        size = float(np.linalg.norm(r))
        if size <= self.span_tol * float(np.linalg.norm(v)) or q.shape[1] >= self.n:
            return kq @ c
        k_r = np.asarray(solve(r), dtype=float)
        self.solves += 1
        self._q = np.column_stack((q, r / size))
        self._kq = np.column_stack((kq, k_r / size))
        if self._q.shape[1] == self.n:  # complete: K itself
            self.matrix = self._kq @ self._q.T
        return kq @ c + k_r

    def complete(self, matrix: np.ndarray) -> None:
        """Take K (m × n, A/V) solved in full by the caller."""
        self.matrix = np.asarray(matrix, dtype=float)
