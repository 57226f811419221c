"""IR-drop network of a crossbar solved iteratively, line by line.

The nodal system of a crossbar with resistive lines (``CrossbarModel``'s network: drive
lines fed at their first node, sense lines held at their last node by a TIA, one cell
between each drive node and sense node) is symmetric positive definite with a block
structure: every drive line alone is a tridiagonal system, and so is every sense line.
:class:`LineNetwork` solves it by conjugate gradients preconditioned with symmetric block
Gauss-Seidel over the two layers (all drive lines, then all sense lines, then all drive
lines again: three tridiagonal LDLᵀ solves, factorised once per conductance state with
LAPACK ``dpttrf``). Memory and time are O(rows·cols) per iteration; the exact sparse LU
in ``CrossbarModel`` needs O((rows·cols)^1.5) memory and is kept as the reference.

The unknowns are the node voltages' deviations from ideal wires, so the small IR drops keep
full precision; CG stops at a residual of ``rtol`` (default 1e-10) of the ideal-wire cell
currents, which leaves line currents within ~1e-9 of full scale of the exact solve (float32
replies resolve 6e-8). Non-ohmic cells, I = G·f(V), are solved as in the exact path: the
non-ohmic excess G·(f(V) − V) is moved to the right-hand side and the linear system is solved
again, warm started from the previous iterate, until the solution moves by less than 1e-12 of
the largest drive voltage. Units: S, V, A, Ω.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.linalg import lapack


def _line_degree(nodes: int, gw: float) -> np.ndarray:
    """Wire conductance (S) at each node of a line fed at node 0: the feed and the segments."""
    deg = np.full(nodes, 2.0 * gw)
    deg[-1] = gw  # one segment (or, on a one-node line, the feed alone)
    return deg


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """Σ a·b without BLAS: its threads cost more to wake than this sum takes on a loaded machine."""
    return float(np.einsum("ij,ij->", a, b))


def _dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Σ a·b over the nodes, one sum per right-hand side (a, b: (k, n, m))."""
    return np.einsum("kij,kij->k", a, b)


class LineNetwork:
    """The linear part of one conductance state's nodal system, factorised line by line.

    ``g`` is (drive lines × sense lines) in S; every wire segment is ``wire_resistance`` Ω.
    Unknowns are the drive-node voltages u and sense-node voltages w, both (n, m).
    """

    def __init__(self, g: np.ndarray, wire_resistance: float) -> None:
        if wire_resistance <= 0:
            raise ValueError(f"wire_resistance must be > 0 Ω for a line network, got {wire_resistance}")
        self.g = np.array(g, dtype=float)  # a private copy: the state this network belongs to
        n, m = self.g.shape
        self.n, self.m = n, m
        self.gw = gw = 1.0 / float(wire_resistance)
        # drive line i: driver (gw) into node 0 and segments (gw) between neighbours; the last node has one
        self.diag_u = _line_degree(m, gw)[None, :] + self.g  # (n, m)
        # sense line j: TIA (gw) into node n-1 and segments between neighbours; node 0 has one segment
        self.diag_w = _line_degree(n, gw)[::-1, None] + self.g  # (n, m)
        self._lu_u = self._factor(self.diag_u.ravel(), m)  # row-major: lines are rows
        self._lu_w = self._factor(np.ascontiguousarray(self.diag_w.T).ravel(), n)  # column-major
        self.iterations = 0  # CG iterations of the last solve (diagnostics)

    def _factor(self, diag: np.ndarray, line: int) -> tuple[np.ndarray, np.ndarray]:
        if diag.size == 1:  # one node: nothing to factorise (LAPACK wants at least one off-diagonal)
            return diag.copy(), np.zeros(0)
        off = np.full(diag.size - 1, -self.gw)
        off[line - 1:: line] = 0.0  # no coupling across the end of a line
        d, e, info = lapack.dpttrf(diag, off)
        if info != 0:
            raise np.linalg.LinAlgError(f"line network: tridiagonal factorisation failed (info {info})")
        return d, e

    # -- building blocks ----------------------------------------------------------------------------
    @staticmethod
    def _tri_solve(lu: tuple[np.ndarray, np.ndarray], r: np.ndarray) -> np.ndarray:
        """Solve the factorised lines for r: (N,) or (N, k) in Fortran order (k right-hand sides)."""
        d, e = lu
        if d.size == 1:
            return r / d[0]
        x, _ = lapack.dpttrs(d, e, r)
        return x

    def _solve_u(self, r: np.ndarray) -> np.ndarray:
        """Drive lines: r is (n, m) or (k, n, m) for k right-hand sides."""
        if r.ndim == 2:
            return self._tri_solve(self._lu_u, r.ravel()).reshape(r.shape)
        flat = np.ascontiguousarray(r).reshape(r.shape[0], -1).T  # (N, k), Fortran order: no copy in LAPACK
        return self._tri_solve(self._lu_u, flat).T.reshape(r.shape)

    def _solve_w(self, r: np.ndarray) -> np.ndarray:
        """Sense lines (column-major node order): r is (n, m) or (k, n, m)."""
        t = np.ascontiguousarray(r.swapaxes(-1, -2))
        if r.ndim == 2:
            return self._tri_solve(self._lu_w, t.ravel()).reshape(t.shape).T
        x = self._tri_solve(self._lu_w, t.reshape(r.shape[0], -1).T)
        return x.T.reshape(t.shape).swapaxes(-1, -2)

    def _apply(self, u: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A·[u; w] (A: S, u and w: V → A); u and w are (n, m) or (k, n, m)."""
        gw, g = self.gw, self.g
        au = self.diag_u * u
        au[..., :, :-1] -= gw * u[..., :, 1:]
        au[..., :, 1:] -= gw * u[..., :, :-1]
        au -= g * w
        aw = self.diag_w * w
        aw[..., :-1, :] -= gw * w[..., 1:, :]
        aw[..., 1:, :] -= gw * w[..., :-1, :]
        aw -= g * u
        return au, aw

    def _precondition(self, ru: np.ndarray, rw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Symmetric block Gauss-Seidel: drive lines, sense lines, drive lines."""
        zu = self._solve_u(ru)
        zw = self._solve_w(rw + self.g * zu)
        zu = self._solve_u(ru + self.g * zw)
        return zu, zw

    def _cg(self, bu: np.ndarray, bw: np.ndarray, u: np.ndarray, w: np.ndarray, atol: float,
            max_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
        """Preconditioned CG on A·[u; w] = [bu; bw] from (u, w), until the residual norm is ≤ ``atol`` (A)."""
        au, aw = self._apply(u, w)
        ru, rw = bu - au, bw - aw
        if np.sqrt(_dot(ru, ru) + _dot(rw, rw)) <= atol:
            return u, w, 0
        zu, zw = self._precondition(ru, rw)
        pu, pw = zu.copy(), zw.copy()
        rz = _dot(ru, zu) + _dot(rw, zw)
        for k in range(1, max_iter + 1):
            qu, qw = self._apply(pu, pw)
            alpha = rz / (_dot(pu, qu) + _dot(pw, qw))
            u = u + alpha * pu
            w = w + alpha * pw
            ru -= alpha * qu
            rw -= alpha * qw
            if np.sqrt(_dot(ru, ru) + _dot(rw, rw)) <= atol:
                return u, w, k
            zu, zw = self._precondition(ru, rw)
            rz_new = _dot(ru, zu) + _dot(rw, zw)
            beta = rz_new / rz
            rz = rz_new
            pu = zu + beta * pu
            pw = zw + beta * pw
        raise np.linalg.LinAlgError(f"line network: CG did not converge in {max_iter} iterations")

    # -- solve ----------------------------------------------------------------------------------------
    def solve(self, vr: np.ndarray, vc: np.ndarray, f: Callable[[np.ndarray], np.ndarray] | None = None,
              rtol: float = 1e-10, max_iter: int = 500) -> np.ndarray:
        """Sense-line currents (A) into the TIAs, drive lines at ``vr`` (V), sense lines held at ``vc`` (V).

        ``f`` is the cell I–V shape (I = G·f(V)); None: ohmic cells. The unknowns are the node
        voltages' deviations from ideal wires (drive nodes at their line's voltage, sense nodes at
        their TIA's), so the small IR drops carry full precision; ``rtol`` is the residual
        relative to the ideal-wire cell currents.
        """
        vr = np.asarray(vr, dtype=float)
        vc = np.asarray(vc, dtype=float)
        dv0 = vr[:, None] - vc[None, :]  # ideal cell voltages
        cell = self.g * dv0  # with ideal wires every wire term vanishes: the residual is the cell currents
        atol = rtol * np.sqrt(2.0 * _dot(cell, cell))
        if atol == 0.0:
            return np.zeros(self.m)
        du = np.zeros_like(cell)
        dw = np.zeros_like(cell)
        total = 0
        extra = np.zeros_like(cell)
        for _ in range(30):  # non-ohmic cells: the excess G·(f(V) − V) on the right-hand side
            du_new, dw_new, k = self._cg(-cell - extra, cell + extra, du, dw, atol, max_iter)
            total += k
            moved = max(float(np.max(np.abs(du_new - du))), float(np.max(np.abs(dw_new - dw))))
            du, dw = du_new, dw_new
            if f is None or (total > k and moved <= 1e-12 * float(np.max(np.abs(dv0)))):
                break
            dv = dv0 + du - dw
            extra = self.g * (f(dv) - dv)
        self.iterations = total
        return self.gw * dw[-1, :]

    def transfer_columns(self, lines: np.ndarray, rtol: float = 1e-12, max_iter: int = 500) -> np.ndarray:
        """Sense-line currents (A) per volt on each drive line in ``lines`` (others and sense lines at 0 V).

        Ohmic cells: columns of the network's transfer matrix, (sense lines × len(lines)). One
        preconditioned CG per column, run side by side (a leading batch axis).
        """
        lines = np.asarray(lines, dtype=np.intp)
        k = lines.size
        if k == 0:
            return np.zeros((self.m, 0))
        cell = np.zeros((k, self.n, self.m))
        cell[np.arange(k), lines, :] = self.g[lines, :]  # 1 V on line lines[c], ideal wires: the cells' currents
        atol = rtol * np.sqrt(2.0 * _dots(cell, cell))
        du, dw = np.zeros_like(cell), np.zeros_like(cell)
        ru, rw = -cell, cell.copy()  # residual of the ideal-wire start
        zu, zw = self._precondition(ru, rw)
        pu, pw = zu.copy(), zw.copy()
        rz = _dots(ru, zu) + _dots(rw, zw)
        for it in range(1, max_iter + 1):
            qu, qw = self._apply(pu, pw)
            alpha = (rz / (_dots(pu, qu) + _dots(pw, qw)))[:, None, None]
            du += alpha * pu
            dw += alpha * pw
            ru -= alpha * qu
            rw -= alpha * qw
            if np.all(np.sqrt(_dots(ru, ru) + _dots(rw, rw)) <= atol):
                self.iterations = it
                return self.gw * dw[:, -1, :].T
            zu, zw = self._precondition(ru, rw)
            rz_new = _dots(ru, zu) + _dots(rw, zw)
            beta = (rz_new / rz)[:, None, None]
            rz = rz_new
            pu = zu + beta * pu
            pw = zw + beta * pw
        raise np.linalg.LinAlgError(f"line network: CG did not converge in {max_iter} iterations")
