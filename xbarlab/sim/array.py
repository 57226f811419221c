"""Crossbar array physics: cells on a resistive wire network.

Rows are driven from their left end, columns are sensed (held at their line voltage by
a TIA) at their bottom end; every wire segment has ``wire_resistance`` Ω. Each cell sits
between its row node and its column node (1T1R: in series with the access transistor's
on-resistance). With ``wire_resistance > 0`` line currents come from a nodal analysis of
the whole network; with 0 the network reduces to I = Gᵀ·f(V). ``ir_solver`` picks the method:
``"transfer"`` serves MVMs from a transfer matrix per conductance state, learned from the
solves the MVMs need (:mod:`xbarlab.sim.transfer`; after as many independent inputs as drive
lines, or for repeated inputs, an MVM is one matrix product), with the cells' non-ohmic excess
added at the ideal cell voltages (a reduced model: its error against the exact solve grows with
the IR drop, ~1e-3 of full scale on 64×64, ~1e-2 on 256×256 at ±0.2 V); ``"auto"`` (default) is
``"transfer"`` on arrays with at most 128 drive lines and solves every other network in full,
iteratively line by line (:mod:`xbarlab.sim.ir_drop`: preconditioned CG, O(rows·cols) memory,
agrees with the exact solve to ~1e-9 of full scale); ``"exact"`` solves every network in full by
sparse LU, factorised once per conductance state (the reference); ``"iterative"`` uses the line
solver everywhere. Cells are mildly non-linear, I = G·V0·sinh(V/V0) with
V0 = 1 V (< 0.7 % above ohmic at 0.2 V, 17 % at 1 V), solved by fixed-point iteration on
the linear factorisation. Read noise is added to each line current as the sum of the
independent cell noises. Physics never advances the clock.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from xbarlab.sim.clock import SimClock
from xbarlab.sim.devices import DeviceModel
from xbarlab.sim.ir_drop import LineNetwork
from xbarlab.sim.transfer import LearnedTransfer

STUCK_OK, STUCK_OFF, STUCK_ON = 0, 1, 2
IR_SOLVERS = ("auto", "exact", "iterative", "transfer")
#: CG tolerance of the solves that teach a transfer matrix (relative to the ideal-wire cell currents)
_TRANSFER_RTOL = 1e-12
#: up to this many drive lines, a state that keeps being read gets its whole transfer matrix in one
#: batched solve (64 lines: ~60 ms); bigger arrays keep learning
_COMPLETE_LINES = 128


class CellLoad:
    """One cell as seen by an SMU routed to it through the board."""

    def __init__(self, model: CrossbarModel, row: int, col: int) -> None:
        self.model, self.row, self.col = model, row, col

    def current(self, voltage: float) -> float:
        return self.model.cell_current(self.row, self.col, voltage, noise=False)

    def stress(self, voltage: float, duration: float, current_limit: float) -> None:
        self.model.stress_cell(self.row, self.col, voltage, duration, current_limit)

    def describe(self) -> str:
        return f"cell ({self.row}, {self.col})"


class CrossbarModel:
    """A rows × cols crossbar of ``device`` cells (S, V, A, Ω, s)."""

    def __init__(
        self,
        rows: int,
        cols: int,
        device: DeviceModel,
        seed: int = 0,
        clock: SimClock | None = None,
        kind: str = "1T1R",
        wire_resistance: float = 0.35,
        stuck_fraction: float = 0.01,
        access_resistance: float = 0.0,
        v0: float = 1.0,
        ir_solver: str = "auto",
    ) -> None:
        if rows < 1 or cols < 1:
            raise ValueError(f"array size must be positive, got {rows}×{cols}")
        if kind not in ("1T1R", "passive"):
            raise ValueError(f"array kind must be '1T1R' or 'passive', got {kind!r}")
        if ir_solver not in IR_SOLVERS:
            raise ValueError(f"ir_solver must be one of {', '.join(IR_SOLVERS)}, got {ir_solver!r}")
        if wire_resistance < 0 or access_resistance < 0:
            raise ValueError("wire_resistance and access_resistance must be ≥ 0 Ω")
        if not 0 <= stuck_fraction < 1:
            raise ValueError(f"stuck_fraction must be in [0, 1), got {stuck_fraction}")
        self.rows, self.cols = int(rows), int(cols)
        self.kind = kind
        self.wire_resistance = float(wire_resistance)
        self.access_resistance = float(access_resistance)
        self.v0 = float(v0)
        self.ir_solver = ir_solver
        self.clock = clock or SimClock()
        self.rng = np.random.default_rng(seed)
        self.device = device.bind(self.rows * self.cols, self.rng)
        draw = self.rng.random(self.rows * self.cols)
        mask = np.zeros(self.rows * self.cols, dtype=np.int8)
        mask[draw < stuck_fraction / 2] = STUCK_OFF
        mask[(draw >= stuck_fraction / 2) & (draw < stuck_fraction)] = STUCK_ON
        self._stuck = mask
        self._cache: dict[str, Any] = {}
        self._version = 0
        self._state_cache: tuple[Any, Any] | None = None

    # -- state ---------------------------------------------------------------------------------
    @property
    def stuck_mask(self) -> np.ndarray:
        """(rows, cols) int8: 0 ok, 1 stuck off, 2 stuck on."""
        return self._stuck.reshape(self.rows, self.cols).copy()

    def _g_flat(self) -> np.ndarray:
        g = self.device.conductance(self.clock.now)
        g = np.where(self._stuck == STUCK_OFF, 0.1 * self.device.g_min, g)
        return np.where(self._stuck == STUCK_ON, self.device.g_max, g)

    def conductance_map(self) -> np.ndarray:
        """True conductance (S) of every cell at the current simulated time, no read noise."""
        return self._state()[0].copy()

    def _state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(G, G_eff, read σ) of the current state; recomputed after writes, or as time passes (drift)."""
        return self._state_full()[:3]

    def _state_full(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(G, G_eff, read σ, σ²): read-only arrays, the same objects while the state is unchanged."""
        key = (self._version, self.clock.now if self.device.time_dependent else None)
        cached = self._state_cache
        if cached is None or cached[0] != key:
            g_flat = self._g_flat()
            g = g_flat.reshape(self.rows, self.cols)
            g_eff = g
            offset = self.device.read_offset(g_flat, self.clock.now, self.rng)  # slow (1/f) read noise
            if offset is not None:
                g_eff = g + np.where(self._stuck == STUCK_OK, offset, 0.0).reshape(self.rows, self.cols)
            if self.kind == "1T1R" and self.access_resistance > 0:
                g_eff = 1.0 / (1.0 / g_eff + self.access_resistance)
            sigma = self.device.read_sigma(g_flat, self.clock.now).reshape(self.rows, self.cols)
            sigma2 = sigma**2
            for a in (g, g_eff, sigma, sigma2):
                a.flags.writeable = False
            cached = self._state_cache = (key, (g, g_eff, sigma, sigma2))
        return cached[1]

    def _g_eff(self) -> np.ndarray:
        return self._state()[1]

    def _sigma_map(self) -> np.ndarray:
        return self._state()[2]

    def invalidate(self) -> None:
        """Forget cached state; call after changing the device state directly (tests, fault injection)."""
        self._version += 1
        self._cache.clear()

    def kill_cell(self, row: int, col: int, mode: str = "off") -> None:
        """Fault injection: the cell becomes stuck off or stuck on."""
        if mode not in ("off", "on"):
            raise ValueError(f"mode must be 'off' or 'on', got {mode!r}")
        self._stuck[row * self.cols + col] = STUCK_OFF if mode == "off" else STUCK_ON
        self.invalidate()

    # -- reads ---------------------------------------------------------------------------------
    def _f(self, v: np.ndarray) -> np.ndarray:
        """Cell I–V shape: I = G·f(V), f(V) = V0·sinh(V/V0)."""
        if self.v0 == 1.0:  # x/1 and 1·x are exact: the same numbers with two array passes fewer
            return np.sinh(v)
        return self.v0 * np.sinh(v / self.v0)

    def _line_noise(self, sigma: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Noise of each sense-line current: independent cell noises summed (sigma: drive × sense)."""
        return self._noise_from_sigma2((sigma**2).T, v)

    def _noise_from_sigma2(self, sigma2_t: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Line noise from σ² already arranged sense × drive."""
        std = np.sqrt(sigma2_t @ (v**2))
        noise = self.rng.standard_normal(std.size)
        noise *= std  # z·σ: the same products as σ·z
        return noise

    def column_currents(self, row_voltages: np.ndarray) -> np.ndarray:
        """Forward MVM: rows driven at ``row_voltages`` (V), columns at 0 V; column currents (A)."""
        v = np.asarray(row_voltages, dtype=float)
        if v.shape != (self.rows,):
            raise ValueError(f"expected {self.rows} row voltages, got shape {v.shape}")
        _, g_eff, _, sigma2 = self._state_full()
        i = self._network_grounded(g_eff, v, "fwd")
        i += self._noise_from_sigma2(sigma2.T, v)
        return i

    def row_read_currents(self, rows: np.ndarray, voltage: float) -> np.ndarray:
        """Column currents (A, len(rows) × cols) with one row at a time driven at ``voltage`` V (the other rows
        and the columns at 0 V), read noise included: row k is :meth:`column_currents` of that drive, with the
        same random draws in the same order, computed for all rows at once where the network allows."""
        rows = np.asarray(rows, dtype=np.intp)
        _, g_eff, _, sigma2 = self._state_full()
        k = self._transfer_columns(g_eff, rows) if self.wire_resistance > 0 else None
        if self.wire_resistance > 0 and k is None:  # a network solved per drive: one row at a time
            out = np.empty((rows.size, self.cols))
            drive = np.zeros(self.rows)
            for n, r in enumerate(rows.tolist()):
                drive[r] = voltage
                out[n] = self.column_currents(drive)
                drive[r] = 0.0
            return out
        fv = float(self._f(np.array([float(voltage)]))[0])
        if k is None:  # ideal wires: Gᵀ·f(V) of a drive with a single non-zero line
            i = g_eff[rows] * fv
        else:  # K·V + Gᵀ·(f(V) − V)
            i = k.T * voltage
            i += g_eff[rows] * (fv - voltage)
        std = np.sqrt(sigma2[rows] * (voltage * voltage))
        noise = self.rng.standard_normal(i.shape)
        noise *= std
        i += noise
        return i

    def _uses_transfer(self, drive_lines: int) -> bool:
        """Whether MVMs with wires take a learned transfer matrix (``transfer``; ``auto`` up to 128 drive lines)."""
        return self.ir_solver == "transfer" or (self.ir_solver == "auto" and drive_lines <= _COMPLETE_LINES)

    def _transfer_columns(self, g: np.ndarray, rows: np.ndarray) -> np.ndarray | None:
        """The forward transfer matrix's columns of drive ``rows`` (solved now where missing), or None where
        MVMs do not use one (``exact``/``iterative`` solvers, ``auto`` above 128 drive lines)."""
        if not self._uses_transfer(g.shape[0]):
            return None
        learned: LearnedTransfer = self._learned(g, "fwd")[2]
        return learned.columns(rows, self._line_network(g, "fwd").transfer_columns)

    def row_currents(self, col_voltages: np.ndarray) -> np.ndarray:
        """Transpose MVM: columns driven at ``col_voltages`` (V), rows at 0 V; row currents (A)."""
        v = np.asarray(col_voltages, dtype=float)
        if v.shape != (self.cols,):
            raise ValueError(f"expected {self.cols} column voltages, got shape {v.shape}")
        _, g_eff, _, sigma2 = self._state_full()
        i = self._network_grounded(g_eff.T, v, "tr")
        i += self._noise_from_sigma2(sigma2, v)  # (σ.T)².T has σ²'s values and layout
        return i

    def cell_current(self, row: int, col: int, voltage: float, noise: bool = True) -> float:
        """Current (A) of one selected cell at ``voltage`` V.

        1T1R: only the selected transistor conducts; the cell sees the wire resistance of
        its row and column path. Passive: V/2 scheme (unselected lines at V/2), so the
        sensed column also collects the sneak currents of the half-selected cells.
        """
        g = self._g_eff()
        if self.kind == "1T1R":
            r_series = self.wire_resistance * ((col + 1) + (self.rows - row))
            gc = g[row, col]
            i = gc * float(self._f(np.array([voltage]))[0])
            for _ in range(20):  # I = G·f(V − I·R): fixed point, converges for G·R ≪ 1
                i_new = gc * float(self._f(np.array([voltage - i * r_series]))[0])
                if abs(i_new - i) <= 1e-12 * abs(i_new) + 1e-18:
                    i = i_new
                    break
                i = i_new
            if noise:
                i += float(self._sigma_map()[row, col]) * voltage * self.rng.standard_normal()
            return i
        vr = np.full(self.rows, voltage / 2)
        vr[row] = voltage
        vc = np.full(self.cols, voltage / 2)
        vc[col] = 0.0
        currents = self._network(g, vr, vc, None)
        i = float(currents[col])
        if noise:
            sig = self._sigma_map()[:, col] * np.abs(vr - vc[col])
            i += float(np.sqrt((sig**2).sum()) * self.rng.standard_normal())
        return i

    def cell_currents(self, rows: np.ndarray, cols: np.ndarray, voltage: float) -> np.ndarray:
        """:meth:`cell_current` (with read noise) of each cell (rows[k], cols[k]) at ``voltage`` V, in order:
        1T1R arrays all at once with the same arithmetic and random draws, passive arrays one by one."""
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        if self.kind != "1T1R":
            return np.array([self.cell_current(r, c, voltage) for r, c in zip(rows.tolist(), cols.tolist(),
                                                                                  strict=True)], dtype=float)
        voltage = float(voltage)
        gc = self._g_eff()[rows, cols]
        r_series = self.wire_resistance * ((cols + 1) + (self.rows - rows))
        i = gc * self._f(np.full(rows.size, voltage))
        active = np.arange(rows.size)
        for _ in range(20):  # each cell's fixed point I = G·f(V − I·R), stopped where it converges
            if active.size == 0:
                break
            i_new = gc[active] * self._f(voltage - i[active] * r_series[active])
            done = np.abs(i_new - i[active]) <= 1e-12 * np.abs(i_new) + 1e-18
            i[active] = i_new
            active = active[~done]
        i += self._sigma_map()[rows, cols] * voltage * self.rng.standard_normal(rows.size)
        return i

    # -- network solve -------------------------------------------------------------------------
    def _network(self, g: np.ndarray, vr: np.ndarray, vc: np.ndarray, cache_key: str | None) -> np.ndarray:
        """Sense-line currents (A) into the TIAs holding the sense lines at ``vc``.

        ``g`` is (drive lines × sense lines); drive line i is driven at ``vr[i]`` from its
        first node, sense line j is held at ``vc[j]`` from its last node.
        """
        if cache_key is not None and not np.any(vc):
            return self._network_grounded(g, vr, cache_key)
        if self.wire_resistance == 0:
            if not np.any(vc):
                return g.T @ self._f(vr)
            return (g * self._f(vr[:, None] - vc[None, :])).sum(axis=0)
        return self._solve_network(g, vr, vc, cache_key)

    def _network_grounded(self, g: np.ndarray, vr: np.ndarray, cache_key: str) -> np.ndarray:
        """:meth:`_network` with every sense line held at 0 V (MVMs); returns a fresh array."""
        if self.wire_resistance == 0:
            return g.T @ self._f(vr)
        if not self._uses_transfer(g.shape[0]):
            return self._solve_network(g, vr, np.zeros(g.shape[1]), cache_key)
        # Sense lines at 0 V: the linear network is a fixed transfer matrix K per conductance state,
        # learned from the solves the MVMs need (:mod:`xbarlab.sim.transfer`, exact to ~1e-12), and the
        # cells' small non-ohmic excess, G·(f(V) − V), is added at the ideal cell voltages: a reduced
        # model, < 1e-3 of full scale from the exact solve on 64×64 at ±0.2 V, but ~1e-2 on 256×256
        # (larger IR drops), so "auto" uses it up to 128 drive lines only (``benchmarks/ir_drop.py``).
        entry = self._learned(g, cache_key)
        op = entry[3]
        if op is None:
            learned: LearnedTransfer = entry[2]
            zeros = np.zeros(g.shape[1])
            net = self._line_network(g, cache_key)
            i = learned.apply(vr, lambda r: net.solve(r, zeros, None, rtol=_TRANSFER_RTOL), net.transfer_columns)
            n = g.shape[0]
            if learned.matrix is None and n <= _COMPLETE_LINES and (learned.served >= n or learned.solves >= n // 4):
                # a state read many times (as many MVMs as drive lines, or solves for a quarter of them):
                # solve every line at once (cheap up to 128 lines) so the following MVMs are one product;
                # the solves spent before are at most a quarter of that cost (rent or buy)
                learned.complete(net.transfer_columns(np.arange(n)))
            if learned.matrix is None:
                excess = self._f(vr)
                excess -= vr
                i += excess @ g
                return i
            op = np.hstack((learned.matrix - g.T, g.T))
            self._cache["T" + cache_key] = (entry[0], entry[1], learned, op)
        # K complete: one product [K − Gᵀ | Gᵀ]·[V; f(V)], i.e. K·V + Gᵀ·(f(V) − V)
        n = vr.size
        x = np.empty(2 * n)  # fresh arrays: threads may share the model
        x[:n] = vr
        x[n:] = self._f(vr)
        return op @ x

    def _learned(self, g: np.ndarray, key: str) -> tuple[np.ndarray, Any, LearnedTransfer, np.ndarray | None]:
        """(G copy, state token, learned transfer, [K − Gᵀ | Gᵀ] or None) of this conductance state and orientation."""
        slot = "T" + key
        hit = self._cache.get(slot)
        token = self._state_cache
        if hit is not None and hit[1] is token and token is not None:
            return hit  # the usual case: the same state
        if hit is not None and hit[0].shape == g.shape and np.array_equal(hit[0], g):
            hit = (hit[0], token, hit[2], hit[3])  # recomputed but unchanged (e.g. time passed)
        else:
            hit = (g.copy(), token, LearnedTransfer(*g.shape), None)
        self._cache[slot] = hit
        return hit

    def _line_network(self, g: np.ndarray, key: str | None) -> LineNetwork:
        """The line-by-line iterative solver of this conductance state (one per orientation)."""
        slot = "L" + (key or "")
        hit = self._cache.get(slot)
        token = self._state_cache
        if hit is not None:
            if hit[1] is token and token is not None:
                return hit[0]
            if hit[0].g.shape == g.shape and np.array_equal(hit[0].g, g):
                self._cache[slot] = (hit[0], token)
                return hit[0]
        net = LineNetwork(g, self.wire_resistance)
        self._cache[slot] = (net, token)
        return net

    def _solve_network(self, g: np.ndarray, vr: np.ndarray, vc: np.ndarray, cache_key: str | None) -> np.ndarray:
        """Full non-linear nodal solve (any line voltages)."""
        if self.ir_solver != "exact":
            return self._line_network(g, cache_key).solve(vr, vc, self._f)
        n, m = g.shape
        gw = 1.0 / self.wire_resistance
        solve = self._factor(g, cache_key).solve
        # unknowns: u (drive nodes, n*m) then w (sense nodes, n*m); node (i, j) -> i*m + j
        b = np.zeros(2 * n * m)
        b[np.arange(n) * m] += gw * vr  # driver into the first node of each drive line
        b[n * m + (n - 1) * m + np.arange(m)] += gw * vc  # TIA into the last node of each sense line
        x = solve(b)
        gflat = g.ravel()
        for _ in range(30):  # non-linear cells: move the non-ohmic part to the right-hand side
            dv = x[: n * m] - x[n * m:]
            extra = gflat * (self._f(dv) - dv)
            if np.max(np.abs(extra), initial=0.0) < 1e-15:
                break
            x_new = solve(b - np.concatenate([extra, -extra]))
            done = np.max(np.abs(x_new - x)) <= 1e-12 * max(np.max(np.abs(x_new)), 1e-12)
            x = x_new
            if done:
                break
        w_last = x[n * m + (n - 1) * m: n * m + n * m]
        return gw * (w_last - vc)

    def _factor(self, g: np.ndarray, key: str | None) -> Any:
        if key is not None:
            hit = self._cache.get(key)
            if hit is not None and hit[0].shape == g.shape and np.array_equal(hit[0], g):
                return hit[1]
        n, m = g.shape
        gw = 1.0 / self.wire_resistance
        N = n * m
        idx = np.arange(N).reshape(n, m)
        rows_i: list[np.ndarray] = []
        cols_i: list[np.ndarray] = []
        vals: list[np.ndarray] = []
        diag = np.zeros(2 * N)

        def couple(a: np.ndarray, b: np.ndarray, cond: np.ndarray | float) -> None:
            c = np.broadcast_to(cond, a.shape).ravel()
            a, b = a.ravel(), b.ravel()
            rows_i.extend([a, b])
            cols_i.extend([b, a])
            vals.extend([-c, -c])
            np.add.at(diag, a, c)
            np.add.at(diag, b, c)

        couple(idx[:, :-1], idx[:, 1:], gw)  # drive-line segments
        couple(N + idx[:-1, :], N + idx[1:, :], gw)  # sense-line segments
        couple(idx, N + idx, g)  # cells
        diag[idx[:, 0]] += gw  # drivers
        diag[N + idx[-1, :]] += gw  # TIAs
        rows_i.append(np.arange(2 * N))
        cols_i.append(np.arange(2 * N))
        vals.append(diag)
        ij = (np.concatenate(rows_i), np.concatenate(cols_i))
        A = sp.csc_matrix((np.concatenate(vals), ij), shape=(2 * N, 2 * N))
        lu = spla.splu(A)
        if key is not None:
            self._cache[key] = (g.copy(), lu)
        return lu

    # -- writes --------------------------------------------------------------------------------
    def _pulse_flat(self, flat: np.ndarray, amplitudes: np.ndarray, widths: np.ndarray) -> None:
        live = self._stuck[flat] == STUCK_OK
        flat, amplitudes, widths = flat[live], amplitudes[live], widths[live]
        if self.device.pulse_sequence(flat, amplitudes, widths, self.clock.now, self.rng):
            return  # vectorised over repeats, bit for bit the rounds below
        # cells may repeat: apply in rounds where each round holds each cell at most once, in order
        while flat.size:
            _, first = np.unique(flat, return_index=True)
            take = np.zeros(flat.size, dtype=bool)
            take[first] = True
            if take.all():
                self.device.pulse(flat, amplitudes, widths, self.clock.now, self.rng)
                return
            # a repeated cell: everything before its second occurrence is one round
            seen: set[int] = set()
            cut = flat.size
            for k, c in enumerate(flat.tolist()):
                if c in seen:
                    cut = k
                    break
                seen.add(c)
            self.device.pulse(flat[:cut], amplitudes[:cut], widths[:cut], self.clock.now, self.rng)
            flat, amplitudes, widths = flat[cut:], amplitudes[cut:], widths[cut:]

    def apply_pulses(self, rows: np.ndarray, cols: np.ndarray, amplitudes: np.ndarray, widths: np.ndarray) -> None:
        """Programming pulses (V, s), applied in order. Passive arrays half-select their lines."""
        rows = np.asarray(rows, dtype=np.intp)
        cols = np.asarray(cols, dtype=np.intp)
        amps = np.broadcast_to(np.asarray(amplitudes, dtype=float), rows.shape).copy()
        wids = np.broadcast_to(np.asarray(widths, dtype=float), rows.shape).copy()
        if self.kind == "1T1R":
            self._pulse_flat(rows * self.cols + cols, amps, wids)
        else:
            for r, c, a, w in zip(rows, cols, amps, wids, strict=True):
                self._pulse_flat(np.array([r * self.cols + c]), np.array([a]), np.array([w]))
                self._half_select(np.array([r]), np.array([c]), a / 2, w)
        self.invalidate()

    def _half_select(self, rows: np.ndarray, cols: np.ndarray, amplitude: float, width: float) -> None:
        """Disturb of half-selected cells on the given lines (passive arrays), excluding the selected ones."""
        sel = np.zeros((self.rows, self.cols), dtype=bool)
        sel[rows[:, None], cols[None, :]] = True
        half = np.zeros_like(sel)
        half[rows, :] = True
        half[:, cols] = True
        half &= ~sel
        flat = np.flatnonzero(half)
        if flat.size:
            self._pulse_flat(flat, np.full(flat.size, amplitude), np.full(flat.size, width))

    def outer_product_update(self, row_trains: np.ndarray, col_trains: np.ndarray, amplitude: float,
                             width: float) -> None:
        """Coincidence update: in each slot, cells whose row and column fire get ±amplitude (sign row·col)."""
        rt = np.asarray(row_trains, dtype=np.int8)
        ct = np.asarray(col_trains, dtype=np.int8)
        if rt.shape[0] != self.rows or ct.shape[0] != self.cols or rt.shape[1] != ct.shape[1]:
            raise ValueError(
                f"trains must be ({self.rows}, slots) and ({self.cols}, slots), got {rt.shape}, {ct.shape}"
            )
        if self.kind == "1T1R" and self._pulse_sequence(rt, ct, float(amplitude), float(width)):
            self.invalidate()
            return
        for k in range(rt.shape[1]):
            r_on = np.flatnonzero(rt[:, k])
            c_on = np.flatnonzero(ct[:, k])
            if r_on.size == 0 or c_on.size == 0:
                continue
            sign = np.outer(rt[r_on, k], ct[c_on, k]).ravel()
            flat = (r_on[:, None] * self.cols + c_on[None, :]).ravel()
            self._pulse_flat(flat, sign * float(amplitude), np.full(flat.size, float(width)))
            if self.kind == "passive":
                self._half_select(r_on, c_on, amplitude / 2, width)
        self.invalidate()

    def _pulse_sequence(self, rt: np.ndarray, ct: np.ndarray, amplitude: float, width: float) -> bool:
        """Every slot's coincidences as one vectorised pulse sequence (1T1R); False: the device needs the slot loop.

        The sequence is in the order the slot loop applies the pulses (slot by slot, row-major within
        a slot), so a device's ``pulse_sequence`` gives the loop's result bit for bit.
        """
        slots = rt.shape[1]
        k_r, r_on = np.nonzero(rt.T)  # firing rows, slot-major then by row
        k_c, c_on = np.nonzero(ct.T)  # firing columns, slot-major then by column
        n_c = np.bincount(k_c, minlength=slots)
        per_row = n_c[k_r]  # each firing row meets every firing column of its slot
        total = int(per_row.sum())
        if total == 0:
            return True
        ev_r = np.repeat(r_on, per_row)
        ev_k = np.repeat(k_r, per_row)
        within = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)
        ev_c = c_on[(np.cumsum(n_c) - n_c)[ev_k] + within]
        flat = ev_r * self.cols + ev_c
        sign = rt[ev_r, ev_k] * ct[ev_c, ev_k]
        sizes = np.cumsum(np.bincount(ev_k, minlength=slots))  # end of each slot's run (cells distinct)
        live = self._stuck[flat] == STUCK_OK
        if not live.all():
            flat, sign = flat[live], sign[live]
            sizes = np.concatenate(([0], np.cumsum(live)))[sizes]  # live pulses before the end of each run
        amps = sign * amplitude
        return self.device.pulse_sequence(flat, amps, np.full(flat.size, width), self.clock.now, self.rng,
                                          groups=sizes[:-1])

    def stress_cell(self, row: int, col: int, voltage: float, duration: float, current_limit: float) -> None:
        """DC bias of one cell by an SMU (V, s, A); stuck cells do not change."""
        flat = row * self.cols + col
        if self._stuck[flat] == STUCK_OK and duration > 0 and voltage != 0:
            self.device.stress(flat, voltage, duration, current_limit, self.clock.now, self.rng)
            self.invalidate()

    def cell_load(self, row: int, col: int) -> CellLoad:
        """The cell as a two-terminal load for SMU routing."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise ValueError(f"cell ({row}, {col}) is outside the {self.rows}×{self.cols} array")
        return CellLoad(self, row, col)
