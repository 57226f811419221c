"""Linear-system solvers with pluggable (possibly analog, inexact) matrix–vector products.

The inner solvers (:func:`cg`, :func:`gmres`) only touch the matrix through an
:class:`Operator` (``matvec``), so the products can run on a crossbar array. The outer
loop (:func:`iterative_refinement`) computes residuals in float64, so the final accuracy
is set by the digital arithmetic while almost all the work is done by the low-precision
inner solver: mixed-precision iterative refinement (Le Gallo et al., "Mixed-precision
in-memory computing", Nature Electronics 1, 246, 2018).

Convergence of the refinement needs the inner solve to reduce the residual by a factor
below one. With an array that stores A + E, the inner solution is (A + E)⁻¹r and the
residual shrinks by ≈ ‖E (A + E)⁻¹‖ per outer step, i.e. the analog matrix error has to be
below the smallest eigenvalue (relative error below 1/κ).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from xbarlab.errors import ConfigError


class Operator(Protocol):
    """A square or rectangular linear map y = A·x (and optionally x' = Aᵀ·y)."""

    @property
    def shape(self) -> tuple[int, int]: ...

    def matvec(self, x: np.ndarray) -> np.ndarray: ...


class DenseOperator:
    """A float64 numpy matrix as an :class:`Operator`; optional multiplicative/additive noise.

    ``rel_noise`` adds Gaussian noise of that standard deviation relative to ‖A·x‖∞ to each
    output (a stand-in for a noisy analog product in unit tests and studies).
    """

    def __init__(self, matrix: np.ndarray, *, rel_noise: float = 0.0, seed: int | None = 0) -> None:
        self.matrix = np.asarray(matrix, dtype=float)
        if self.matrix.ndim != 2:
            raise ConfigError(f"DenseOperator needs a 2-D matrix, got shape {self.matrix.shape}")
        self.rel_noise = float(rel_noise)
        self.rng = np.random.default_rng(seed)
        self.mvms = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[return-value]

    def matvec(self, x: np.ndarray) -> np.ndarray:
        self.mvms += 1
        y = self.matrix @ np.asarray(x, dtype=float)
        if self.rel_noise:
            y = y + self.rng.normal(0.0, self.rel_noise * float(np.max(np.abs(y)) or 1.0), size=y.shape)
        return y

    def rmatvec(self, y: np.ndarray) -> np.ndarray:
        self.mvms += 1
        return self.matrix.T @ np.asarray(y, dtype=float)


@dataclass(frozen=True)
class InnerResult:
    """What an inner solve returns."""

    x: np.ndarray
    iterations: int
    matvecs: int
    converged: bool
    #: the solver's own estimate of ‖b − A·x‖/‖b‖ (computed with the inexact operator)
    residual_estimate: float


def _check_system(op: Operator, b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=float)
    n, m = op.shape
    if n != m:
        raise ConfigError(f"the solver needs a square operator, got shape {op.shape}")
    if b.shape != (n,):
        raise ConfigError(f"right-hand side has shape {b.shape}, expected ({n},)")
    if not np.all(np.isfinite(b)):
        raise ConfigError("right-hand side contains non-finite values")
    return b


def cg(op: Operator, b: np.ndarray, *, tol: float = 1e-2, maxiter: int = 50) -> InnerResult:
    """Conjugate gradients for a symmetric positive-definite operator, starting from x = 0.

    Stops when the recursively updated residual drops below ``tol``·‖b‖ or after
    ``maxiter`` iterations. One operator product per iteration.
    """
    b = _check_system(op, b)
    bnorm = float(np.linalg.norm(b))
    x = np.zeros_like(b)
    if bnorm == 0.0:
        return InnerResult(x, 0, 0, True, 0.0)
    r = b.copy()
    p = r.copy()
    rr = float(r @ r)
    matvecs = 0
    for k in range(1, maxiter + 1):
        ap = np.asarray(op.matvec(p), dtype=float)
        matvecs += 1
        pap = float(p @ ap)
        if pap <= 0.0 or not np.isfinite(pap):  # the analog operator is not positive along p: stop
            return InnerResult(x, k - 1, matvecs, False, float(np.sqrt(rr)) / bnorm)
        alpha = rr / pap
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = float(r @ r)
        if np.sqrt(rr_new) <= tol * bnorm:
            return InnerResult(x, k, matvecs, True, float(np.sqrt(rr_new)) / bnorm)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return InnerResult(x, maxiter, matvecs, False, float(np.sqrt(rr)) / bnorm)


def gmres(op: Operator, b: np.ndarray, *, tol: float = 1e-2, maxiter: int = 50) -> InnerResult:
    """GMRES (no restart within ``maxiter``) from x = 0, modified Gram–Schmidt Arnoldi.

    Works for non-symmetric operators. One operator product per iteration.
    """
    b = _check_system(op, b)
    n = b.size
    bnorm = float(np.linalg.norm(b))
    if bnorm == 0.0:
        return InnerResult(np.zeros(n), 0, 0, True, 0.0)
    m = min(maxiter, n)
    v = np.zeros((m + 1, n))
    h = np.zeros((m + 1, m))
    v[0] = b / bnorm
    cs = np.zeros(m)
    sn = np.zeros(m)
    g = np.zeros(m + 1)
    g[0] = bnorm
    k_done = 0
    converged = False
    for k in range(m):
        w = np.asarray(op.matvec(v[k]), dtype=float)
        for i in range(k + 1):
            h[i, k] = float(w @ v[i])
            w = w - h[i, k] * v[i]
        h[k + 1, k] = float(np.linalg.norm(w))
        if h[k + 1, k] > 0:
            v[k + 1] = w / h[k + 1, k]
        for i in range(k):  # apply the previous Givens rotations to the new column
            t = cs[i] * h[i, k] + sn[i] * h[i + 1, k]
            h[i + 1, k] = -sn[i] * h[i, k] + cs[i] * h[i + 1, k]
            h[i, k] = t
        denom = float(np.hypot(h[k, k], h[k + 1, k]))
        cs[k], sn[k] = (h[k, k] / denom, h[k + 1, k] / denom) if denom > 0 else (1.0, 0.0)
        h[k, k] = cs[k] * h[k, k] + sn[k] * h[k + 1, k]
        h[k + 1, k] = 0.0
        g[k + 1] = -sn[k] * g[k]
        g[k] = cs[k] * g[k]
        k_done = k + 1
        if abs(g[k + 1]) <= tol * bnorm or h[k, k] == 0.0:
            converged = abs(g[k + 1]) <= tol * bnorm
            break
    if k_done == 0:
        return InnerResult(np.zeros(n), 0, 0, False, 1.0)
    from scipy.linalg import solve_triangular  # here: keeps `xbarlab --help` quick

    y = solve_triangular(h[:k_done, :k_done], g[:k_done], lower=False, check_finite=False)
    x = v[:k_done].T @ y
    return InnerResult(np.asarray(x), k_done, k_done, converged, abs(float(g[k_done])) / bnorm)


InnerSolver = Callable[[np.ndarray], InnerResult]


@dataclass(frozen=True)
class RefinementStep:
    """One outer iteration of mixed-precision refinement."""

    iteration: int  # 1, 2, ...
    residual_norm: float  # ‖b − A·x‖₂ in float64 after this step
    relative_residual: float  # residual_norm / ‖b‖₂
    inner_iterations: int
    inner_mvms: int  # operator products used by this step's inner solve
    correction_norm: float  # ‖z‖₂ of this step's correction


@dataclass
class RefinementResult:
    """Outcome of :func:`iterative_refinement`."""

    x: np.ndarray
    converged: bool
    history: list[RefinementStep] = field(default_factory=list)
    initial_residual: float = 0.0
    stop_reason: str = ""
    #: ‖b − A·x‖/‖b‖ of the returned x (the best iterate)
    relative_residual: float = 1.0

    @property
    def outer_iterations(self) -> int:
        return len(self.history)

    @property
    def inner_mvms(self) -> int:
        return sum(s.inner_mvms for s in self.history)

    @property
    def residuals(self) -> np.ndarray:
        return np.array([s.relative_residual for s in self.history])


def iterative_refinement(
    matrix: np.ndarray,
    b: np.ndarray,
    inner: InnerSolver,
    *,
    tol: float = 1e-10,
    max_outer: int = 60,
    patience: int = 3,
    on_step: Callable[[RefinementStep, np.ndarray], None] | None = None,
) -> RefinementResult:
    """Mixed-precision iterative refinement (Le Gallo et al., Nat. Electron. 2018).

    Outer loop in float64 on ``matrix``: r = b − A·x; z ≈ A⁻¹r from ``inner(r)`` (low
    precision, e.g. CG on the array); x ← x + z. Stops when ‖r‖/‖b‖ ≤ ``tol`` (converged), after
    ``max_outer`` iterations, or when the residual has not improved for ``patience`` steps
    in a row (stagnation or divergence: the inner solver is too imprecise for this matrix);
    the best iterate is returned. ``on_step(step, x)`` runs after every outer iteration (the
    experiment checkpoints and records there).
    """
    a = np.asarray(matrix, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or b.shape != (a.shape[0],):
        raise ConfigError(f"iterative_refinement: matrix {a.shape} and right-hand side {b.shape} do not match")
    if tol <= 0 or max_outer < 1:
        raise ConfigError("iterative_refinement: tol must be > 0 and max_outer >= 1")
    bnorm = float(np.linalg.norm(b))
    x = np.zeros_like(b)
    result = RefinementResult(x=x, converged=bnorm == 0.0, initial_residual=1.0)
    if bnorm == 0.0:
        result.relative_residual = 0.0
        result.stop_reason = "zero right-hand side"
        return result
    r = b.copy()
    best_x, best_res, since_best = x.copy(), 1.0, 0
    for k in range(1, max_outer + 1):
        scale = float(np.max(np.abs(r)))
        res = inner(r / scale)  # the inner solver sees a unit-scale right-hand side
        z = scale * np.asarray(res.x, dtype=float)
        x = x + z
        r = b - a @ x
        rnorm = float(np.linalg.norm(r))
        step = RefinementStep(k, rnorm, rnorm / bnorm, res.iterations, res.matvecs, float(np.linalg.norm(z)))
        result.history.append(step)
        if on_step is not None:
            on_step(step, x)
        if step.relative_residual < best_res:
            best_x, best_res, since_best = x.copy(), step.relative_residual, 0
        else:
            since_best += 1
        if step.relative_residual <= tol:
            result.converged = True
            result.stop_reason = f"relative residual {step.relative_residual:.3g} <= tol {tol:g}"
            break
        if not np.isfinite(rnorm) or since_best >= patience:
            result.stop_reason = f"no improvement for {since_best} outer iterations (inner solve too imprecise)"
            break
    else:
        result.stop_reason = f"max_outer = {max_outer} reached"
    result.x = best_x
    result.relative_residual = best_res
    return result
