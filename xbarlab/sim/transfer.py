"""Transfer operator of a linear network, learned from the solves an array already does.

With its sense lines held at 0 V, the ohmic part of a crossbar's wire network maps drive-line
voltages to sense-line currents linearly: I = K·V with K (sense × drive, S) fixed per conductance
state. :class:`LearnedTransfer` keeps an orthonormal basis Q of the drive vectors solved so far at
this state and the currents K·Q they gave. A new drive vector V is split into its part in span(Q),
whose currents are K·Q·(Qᵀ·V) with no solve, and the rest R, which is solved once (the caller's
linear solver) and added to the basis. After as many independent drives as there are drive lines
the basis is complete and K = (K·Q)·Qᵀ is kept: every further MVM at this state is one product.
Repeated inputs never solve again; a remainder confined to a few drive lines (at most ``UNIT_BATCH``) is
learned as those lines' unit drives in one batched solve, so every later input on them is a product too.

Accuracy: a remainder below ``span_tol`` of |V| (relative, default 1e-12) is treated as in the
span; the solver's own tolerance sets the rest. Units: V, A, S.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: a remainder on at most this many drive lines is learned as those lines' unit drives, in one batched solve
UNIT_BATCH = 8


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

    def _project(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(Qᵀ·v, v − Q·Qᵀ·v), orthogonalised twice (classical Gram-Schmidt needs the second pass)."""
        q = self._q
        c = q.T @ v
        r = v - q @ c
        c2 = q.T @ r
        r -= q @ c2
        c += c2
        return c, r

    def _add(self, r: np.ndarray, k_r: np.ndarray, size: float) -> None:
        """Take the new direction ``r`` (norm ``size``) with its currents K·r."""
        self._q = np.column_stack((self._q, r / size))
        self._kq = np.column_stack((self._kq, k_r / size))
        if self._q.shape[1] == self.n:  # complete: K itself
            self.matrix = self._kq @ self._q.T

    def apply(self, v: np.ndarray, solve: Callable[[np.ndarray], np.ndarray],
              solve_lines: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """K·v (A) for drive voltages ``v`` (V). Outside the known span: when the remainder lies on at most
        ``UNIT_BATCH`` drive lines, ``solve_lines(lines)`` gives K's columns of those lines in one batch (every
        later input on them needs no solve); otherwise ``solve(r)`` gives K·r for the remainder alone."""
        self.served += 1
        if self.matrix is not None:
            return self.matrix @ v
        c, r = self._project(v)
        size = float(np.linalg.norm(r))
        scale = self.span_tol * float(np.linalg.norm(v))
        if size <= scale or self._q.shape[1] >= self.n:
            return self._kq @ c
        lines = np.flatnonzero(np.abs(r) > scale)
        if solve_lines is not None and lines.size <= UNIT_BATCH:
            self.learn_lines(lines, solve_lines)
            c, _ = self._project(v)
            return self.matrix @ v if self.matrix is not None else self._kq @ c
        kq = self._kq
        k_r = np.asarray(solve(r), dtype=float)
        self.solves += 1
        self._add(r, k_r, size)
        return kq @ c + k_r

    def learn_lines(self, lines: np.ndarray, solve_lines: Callable[[np.ndarray], np.ndarray]) -> None:
        """Make the unit drives of ``lines`` known: ``solve_lines`` gives K's columns of those not yet in the span."""
        if self.matrix is not None:
            return
        lines = np.asarray(lines, dtype=np.intp)
        outside = lines[1.0 - np.einsum("ij,ij->i", self._q[lines], self._q[lines]) > self.span_tol]
        if outside.size == 0:
            return
        columns = np.asarray(solve_lines(outside), dtype=float)
        self.solves += int(outside.size)
        for j, line in enumerate(outside.tolist()):
            e = np.zeros(self.n)
            e[line] = 1.0
            c, r = self._project(e)
            size = float(np.linalg.norm(r))
            if size > self.span_tol and self.matrix is None:
                self._add(r, columns[:, j] - self._kq @ c, size)  # K·r = K·e − (K·Q)·(Qᵀ·e)

    def columns(self, lines: np.ndarray, solve_lines: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        """K's columns (m × len(lines), A/V) of the drive ``lines``, solving those not yet known."""
        lines = np.asarray(lines, dtype=np.intp)
        self.learn_lines(lines, solve_lines)
        if self.matrix is not None:
            return self.matrix[:, lines]
        return self._kq @ self._q[lines].T

    def complete(self, matrix: np.ndarray) -> None:
        """Take K (m × n, A/V) solved in full by the caller."""
        self.matrix = np.asarray(matrix, dtype=float)
