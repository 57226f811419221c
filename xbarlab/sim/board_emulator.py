"""Emulated crossbar test board: answers the board protocol (v1) from the array physics.

Every read goes through the periphery as on the real board: requested voltages pass the
input DAC (``Periphery.dac``), the array physics (``CrossbarModel``) gives the currents,
and the TIA/ADC model (``Periphery.adc``: per-line gain and offset errors, quantisation,
saturation) gives what the board reports. Clipped samples are flagged in the reply's
saturation mask. The simulated clock advances by the time the board would take: serial
transfer of both frames at the configured baud rate, firmware overhead, settling, ADC
conversions, pulse widths and inter-pulse gaps, switch-matrix settling.

The frame codec and payload layouts live in :mod:`xbarlab.protocol.board`; the protocol
is specified in ``docs/board-protocol.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from xbarlab.protocol import board as bp
from xbarlab.protocol import eqprop as eqp
from xbarlab.protocol.board import Err, FrameError, Op, PayloadError
from xbarlab.sim.cap_board import install
from xbarlab.sim.clock import SimClock
from xbarlab.sim.closed_loop import ClosedLoopCircuit, OpAmpSpec
from xbarlab.sim.emulator import StreamEmulator
from xbarlab.sim.eqprop_network import EqHardware, EquilibriumMode
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.terminals import SmuTerminal

DEFAULT_IDENTITY = "xbarlab,XB-1 crossbar test board (emulated),SN00001,fw 1.0"


@dataclass(frozen=True)
class BoardTiming:
    """How long the board takes (s). Defaults are those of a microcontroller/FPGA test board.

    ``baud_rate`` 921 600 is the serial rate of the ArC ONE board (REFERENCE.md, "Crossbar
    boards that exist"); 8N1 framing sends 10 bits per byte.
    """

    baud_rate: float = 921_600.0  # bit/s
    bits_per_byte: int = 10  # start + 8 data + stop
    command_overhead: float = 20e-6  # s, firmware parse and dispatch per frame
    settling_time: float = 5e-6  # s, DAC + TIA settling before each conversion group
    adc_conversion_time: float = 10e-6  # s per sample and converter
    adc_channels: int = 1  # converters running in parallel (1: one multiplexed ADC)
    pulse_gap: float = 1e-6  # s between consecutive pulses (driver switching)
    switch_time: float = 100e-6  # s, SMU routing switch matrix settling

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"board timing {f.name} must be a non-negative number, got {value!r}")
        if self.baud_rate <= 0 or self.bits_per_byte <= 0 or self.adc_channels < 1:
            raise ValueError("board timing: baud_rate, bits_per_byte and adc_channels must be positive")

    def transfer(self, nbytes: int) -> float:
        """Serial transfer time of ``nbytes`` bytes in s."""
        return nbytes * self.bits_per_byte / self.baud_rate

    def conversions(self, samples: int) -> float:
        """Settling plus ADC conversion time of ``samples`` samples in s."""
        return self.settling_time + math.ceil(samples / self.adc_channels) * self.adc_conversion_time


def _as(cls: type, value: Any, what: str) -> Any:
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, dict):
        try:
            return cls(**value)
        except TypeError as exc:
            known = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"board {what}: {exc}; expected some of {known}") from None
    raise TypeError(f"board {what} must be a {cls.__name__} or a dict, got {type(value).__name__}")


def _nth(what: str, i: int, values: np.ndarray) -> str:
    """``what`` with the offending index when the request holds several items."""
    return f"{what} {i}" if len(values) > 1 else what


class _Reject(PayloadError):
    """A request refused with an error reply; nothing was applied."""


#: opcodes that drive the array lines: refused before CONFIGURE and while an SMU port is routed
_ARRAY_OPS = frozenset(
    {Op.READ_CELL, Op.READ_ALL, Op.READ_CELLS, Op.MVM_FORWARD, Op.MVM_TRANSPOSE, Op.PULSE, Op.PULSE_BATCH,
     Op.OUTER_PRODUCT, Op.CLOSED_LOOP_SOLVE, Op.CLOSED_LOOP_EIGEN,
     Op.CAP_UPDATE, Op.CAP_READ_CELLS, Op.CAP_READ_ALL, Op.CAP_MVM_FORWARD, Op.CAP_MVM_TRANSPOSE, Op.CAP_RESET,
     Op.EQ_CONFIGURE, Op.EQ_SETTLE}
)
#: the largest element (NaN if any is NaN): ndarray.max without its Python wrapper
_amax = np.maximum.reduce
_amin = np.minimum.reduce
#: opcodes refused before CONFIGURE or while an SMU port is routed (CONFIGURE and ROUTE_SMU: one of the two)
_GATED_OPS = _ARRAY_OPS | {Op.CONFIGURE, Op.ROUTE_SMU}


class BoardEmulator(StreamEmulator):
    """The crossbar test board over simulated physics.

    ``model`` is a ``CrossbarModel`` and ``periphery`` a ``Periphery`` (docs/architecture.md).
    ``smu_terminals`` maps the board's SMU ports to the terminals of the SMUs cabled to them;
    ROUTE_SMU connects ``model.cell_load(row, col)`` to that terminal. ``limits`` and
    ``timing`` accept the dataclass or a dict of its fields (a TOML ``[sim.board]`` table).
    ``closed_loop`` configures the feedback mode (:class:`~xbarlab.sim.closed_loop.OpAmpSpec` or a
    dict of its fields, plus an optional ``seed`` for the per-channel offsets). ``eqprop`` configures the
    equilibrium-network mode's hardware (:class:`~xbarlab.sim.eqprop_network.EqHardware` or a dict). ``cap_array``: a
    :class:`~xbarlab.sim.cap_cell.CapacitorArray` beside the crossbar (3T1C opcodes 0x70–0x76).
    """

    def __init__(
        self,
        model: Any,
        periphery: Any,
        clock: SimClock,
        smu_terminals: dict[int, SmuTerminal] | None = None,
        *,
        identity: str = DEFAULT_IDENTITY,
        smu_ports: int = 4,
        limits: bp.HardwareLimits | dict[str, Any] | None = None,
        timing: BoardTiming | dict[str, Any] | None = None,
        temperature: float = 25.0,
        faults: FaultPlan | None = None,
        closed_loop: OpAmpSpec | dict[str, Any] | None = None,
        eqprop: EqHardware | dict[str, Any] | None = None,
        cap_array: Any = None,
    ) -> None:
        super().__init__(faults)
        self.model = model
        self.periphery = periphery
        self.clock = clock
        self.smu_terminals: dict[int, SmuTerminal] = dict(smu_terminals or {})
        if not 1 <= smu_ports <= 8:
            raise ValueError(f"smu_ports must be 1..8 (a bit each in GET_STATUS), got {smu_ports}")
        bad = sorted(p for p in self.smu_terminals if not 0 <= p < smu_ports)
        if bad:
            raise ValueError(f"SMU terminal(s) cabled to port(s) {bad}, but the board has ports 0..{smu_ports - 1}")
        self.limits: bp.HardwareLimits = _as(bp.HardwareLimits, limits, "limits")
        self.timing: BoardTiming = _as(BoardTiming, timing, "timing")
        self.temperature = float(temperature)
        self.rows = int(model.rows)
        self.cols = int(model.cols)
        if not (1 <= self.rows <= 0xFFFF and 1 <= self.cols <= 0xFFFF):
            raise ValueError(f"array of {self.rows}x{self.cols} cells cannot be addressed with u16 indices")
        self.identity = bp.BoardIdentity(
            identity=identity,
            protocol_version=bp.PROTOCOL_VERSION,
            rows=self.rows,
            cols=self.cols,
            array_kind=bp.ArrayKind.from_label(str(getattr(model, "kind", "1T1R"))),
            smu_ports=smu_ports,
            dac_bits=int(getattr(periphery, "dac_bits", 0) or 0),
            adc_bits=int(getattr(periphery, "adc_bits", 0) or 0),
            limits=self.limits,
        )
        # hardware limits as float32, the precision of the values on the wire
        lim = self.limits
        self._max_amp = np.float32(lim.max_pulse_amplitude)
        self._max_in = np.float32(lim.max_input_voltage)
        self._tia_min = np.float32(lim.min_tia_range)
        self._tia_max = np.float32(lim.max_tia_range)
        self._max_in_v = float(self._max_in)  # V, the input DAC range as the periphery takes it
        self._dac_in_range = getattr(periphery, "dac_in_range", None)
        self._handlers: dict[int, Callable[[bytes], tuple[bytes, int]]] = {
            Op.IDENTIFY: self._identify,
            Op.GET_STATUS: self._get_status,
            Op.CONFIGURE: self._configure,
            Op.ALL_OFF: self._all_off,
            Op.READ_CELL: self._read_cell,
            Op.READ_ALL: self._read_all,
            Op.READ_CELLS: self._read_cells,
            Op.MVM_FORWARD: self._mvm_forward,
            Op.MVM_TRANSPOSE: self._mvm_transpose,
            Op.PULSE: self._pulse,
            Op.PULSE_BATCH: self._pulse_batch,
            Op.OUTER_PRODUCT: self._outer_product,
            Op.ROUTE_SMU: self._route_smu,
            Op.UNROUTE_SMU: self._unroute_smu,
            Op.CLOSED_LOOP_SOLVE: self._closed_loop_solve,
            Op.CLOSED_LOOP_EIGEN: self._closed_loop_eigen,
            Op.CLOSED_LOOP_INFO: self._closed_loop_info,
            Op.EQ_INFO: self._eq_info,
            Op.EQ_CONFIGURE: self._eq_configure,
            Op.EQ_SETTLE: self._eq_settle,
        }
        cl = dict(closed_loop) if isinstance(closed_loop, dict) else closed_loop
        cl_seed = int(cl.pop("seed", 0)) if isinstance(cl, dict) else 0
        self.closed_loop = ClosedLoopCircuit(model, _as(OpAmpSpec, cl, "closed_loop"), seed=cl_seed, clock=clock)
        self.eqprop = EquilibriumMode(model, _as(EqHardware, eqprop, "eqprop"), self._max_in_v)
        self.cap = None  # the 3T1C capacitor array's commands (sim/cap_board.py), when the board has one
        if cap_array is not None:
            self.cap = install(self, cap_array)
        self.boot_count = 0
        self.error_count = 0
        self.link_errors = 0
        self.frames = 0
        self._hunting = False
        self.power_on_reset()

    # -- state ---------------------------------------------------------------------------------
    def power_on_reset(self) -> None:
        """Power-on state: lines grounded, SMU ports unrouted, configuration lost (CONFIGURE needed)."""
        self._disconnect_all()
        self.configured = False
        if hasattr(self, "eqprop"):
            self.eqprop.config = None  # the equilibrium network is forgotten with the configuration
        self.config = bp.Configuration(self.rows, self.cols, 0.0, float(self.limits.max_tia_range))
        self.error_count = 0
        self.link_errors = 0
        self.frames = 0
        self._hunting = False
        self.boot_count += 1

    def _disconnect_all(self) -> None:
        for terminal in self.smu_terminals.values():
            terminal.disconnect()
        self.routes: dict[int, tuple[int, int]] = {}

    def inject_dead_cell(self, row: int, col: int, mode: str = "off") -> None:
        """Fault injection: cell (row, col) dies stuck ``"off"`` or stuck ``"on"`` (``model.kill_cell``)."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise ValueError(f"cell ({row}, {col}) is outside the {self.rows}x{self.cols} array")
        self.model.kill_cell(row, col, mode=mode)

    def status(self) -> bp.BoardStatus:
        """What GET_STATUS reports."""
        cfg = self.config
        return bp.BoardStatus(
            board_time=self.clock.now,
            temperature=self.temperature,
            error_count=self.error_count,
            link_errors=self.link_errors,
            frames=self.frames,
            boot_count=self.boot_count,
            configured=self.configured,
            routed_ports=sum(1 << p for p in self.routes),
            active_rows=cfg.active_rows,
            active_cols=cfg.active_cols,
            read_voltage=cfg.read_voltage,
            tia_range=cfg.tia_range,
        )

    # -- framing ---------------------------------------------------------------------------------
    def _process(self, inbuf: bytearray) -> list[bytes]:
        whole = bp.whole_frame(inbuf, self.limits.max_payload)
        if whole is not None:  # the usual case: exactly one good request in the buffer
            inbuf.clear()
            return [self._frame(*whole)]
        replies: list[bytes] = []
        for item in bp.split_frames(inbuf, self.limits.max_payload):
            if isinstance(item, FrameError):
                self.link_errors += 1
                if item.code == Err.BAD_HEADER:
                    # answer the first unreadable header only; stay quiet while hunting for sync
                    if self._hunting:
                        continue
                    self._hunting = True
                elif item.code == Err.FRAME_TOO_LARGE:
                    self._hunting = True  # its payload is skipped as noise, without further replies
                reply = self._error(item.opcode or 0, item.seq or 0, item.code, str(item))
                self.clock.advance(self.timing.transfer(bp.OVERHEAD + len(reply)) + self.timing.command_overhead)
                replies.append(reply)
                continue
            replies.append(self._frame(item.version, item.opcode, item.seq, item.payload))
        return replies

    def _frame(self, version: int, op: int, seq: int, payload: bytes) -> bytes:
        """Receive, execute and answer one intact request frame (clock: its transfer, the firmware, the reply)."""
        self._hunting = False
        timing = self.timing
        self.clock.advance(timing.transfer(bp.OVERHEAD + len(payload)) + timing.command_overhead)
        if self.faults.take_reset():
            self.power_on_reset()
        self.frames += 1
        reply = self._execute(version, op, seq, payload)
        self.clock.advance(timing.transfer(len(reply)))
        return reply

    def _error(self, opcode: int, seq: int, code: int, message: str) -> bytes:
        self.error_count += 1
        return bp.encode_error_reply(opcode, seq, code, message)

    def _execute(self, version: int, op: int, seq: int, payload: bytes) -> bytes:
        if version != bp.PROTOCOL_VERSION:
            return self._error(op, seq, Err.BAD_VERSION,
                               f"protocol version {version} not supported; this board speaks 1")
        handler = self._handlers.get(op)
        if handler is None:
            return self._error(op, seq, Err.UNKNOWN_OPCODE, f"unknown opcode 0x{op:02x}")
        if op in _GATED_OPS:
            if op != Op.CONFIGURE and not self.configured:
                return self._error(op, seq, Err.NOT_CONFIGURED,
                                   "board not configured since power-on; send CONFIGURE first")
            if self.routes and op != Op.ROUTE_SMU:
                ports = ", ".join(str(p) for p in sorted(self.routes))
                return self._error(op, seq, Err.SMU_ROUTED,
                                   f"SMU port(s) {ports} routed to the array; unroute them first")
        try:
            reply, flags = handler(payload)
        except PayloadError as exc:
            return self._error(op, seq, exc.code, str(exc))
        except (ValueError, ArithmeticError, np.linalg.LinAlgError) as exc:
            return self._error(op, seq, Err.INTERNAL, f"{type(exc).__name__}: {exc}")
        return bp.encode_reply(op, seq, reply, flags)

    # -- checks ---------------------------------------------------------------------------------
    @staticmethod
    def _empty(payload: bytes, what: str) -> None:
        if payload:
            raise _Reject(Err.BAD_LENGTH, f"{what} takes no payload, got {len(payload)} bytes")

    def _check_cells(self, rows: np.ndarray, cols: np.ndarray, what: str) -> None:
        ar, ac = self.config.active_rows, self.config.active_cols
        bad = (rows >= ar) | (cols >= ac)
        if bad.any():
            i = int(np.argmax(bad))
            cell = f"({int(rows[i])}, {int(cols[i])})"
            raise _Reject(Err.INDEX_RANGE, f"{_nth(what, i, rows)}: cell {cell} outside the active {ar}x{ac} region")

    def _check_amplitudes(self, amplitudes: np.ndarray, what: str) -> None:
        bad = ~np.isfinite(amplitudes)
        if bad.any():
            i = int(np.argmax(bad))
            raise _Reject(Err.BAD_VALUE, f"{_nth(what, i, amplitudes)}: amplitude {float(amplitudes[i])} is not finite")
        over = np.abs(amplitudes) > self._max_amp
        if over.any():
            i = int(np.argmax(over))
            raise _Reject(Err.VOLTAGE_LIMIT, f"{_nth(what, i, amplitudes)}: amplitude {float(amplitudes[i]):g} V "
                          f"exceeds +-{float(self._max_amp):g} V")

    def _check_widths(self, widths_ns: np.ndarray, what: str) -> None:
        lim = self.limits
        bad = (widths_ns < lim.min_pulse_width_ns) | (widths_ns > lim.max_pulse_width_ns)
        if bad.any():
            i = int(np.argmax(bad))
            raise _Reject(Err.WIDTH_LIMIT, f"{_nth(what, i, widths_ns)}: width {int(widths_ns[i])} ns outside "
                          f"[{lim.min_pulse_width_ns}, {lim.max_pulse_width_ns}] ns")

    def _check_inputs(self, v: np.ndarray, what: str) -> None:
        peak = np.abs(v).max() if v.size else 0.0
        if not peak <= self._max_in:  # one reduction: NaN fails this comparison too
            if not np.isfinite(v).all():
                raise _Reject(Err.BAD_VALUE, f"{what}: non-finite voltage")
            raise _Reject(Err.VOLTAGE_LIMIT, f"{what}: |V| = {float(peak):g} V exceeds +-{float(self._max_in):g} V")

    def _check_reply_size(self, samples: int, what: str) -> None:
        if bp.measurement_size(samples) > self.limits.max_payload:
            raise _Reject(Err.FRAME_TOO_LARGE, f"{what}: a reply of {samples} samples exceeds "
                          f"{self.limits.max_payload} bytes; read fewer at a time")

    # -- periphery ---------------------------------------------------------------------------------
    def _dac(self, volts: np.ndarray) -> np.ndarray:
        return np.asarray(self.periphery.dac(np.asarray(volts, dtype=float), self._max_in_v), dtype=float)

    def _adc(self, currents: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
        """(reported currents A, saturated mask) of a full line vector (length cols or rows)."""
        fs = self.config.tia_range
        reported = np.asarray(self.periphery.adc(currents, fs, side=side), dtype=float)
        return reported, self._saturated(reported, currents, fs)

    def _saturated(self, reported: np.ndarray, currents: np.ndarray, fs: float) -> np.ndarray:
        """Clipped samples: reported within 1.5 LSB of full scale ``fs`` (A), or a true current beyond it."""
        bits = self.identity.adc_bits
        threshold = fs - 1.5 * (2.0 * fs / (1 << bits) if bits else 0.0)
        if np.abs(reported).max() < threshold and np.abs(currents).max() < fs:
            return np.zeros(reported.shape, dtype=bool)  # nothing clipped (the usual case): two reductions
        return (np.abs(reported) >= threshold) | (np.abs(currents) >= fs)

    def _read_voltage_applied(self) -> float:
        """The configured read voltage (V) as the input DAC applies it."""
        return float(self._dac(np.array([self.config.read_voltage]))[0])

    def _convert_cells(self, cols: np.ndarray, currents: Any) -> tuple[np.ndarray, np.ndarray]:
        """(reported currents A, saturated mask) of single-cell reads, each converted on its own column's ADC
        (the other columns idle); the clock advances by one conversion per cell."""
        out = np.empty(len(cols))
        sat = np.empty(len(cols), dtype=bool)
        line = np.zeros(self.cols)
        for i, (c, current) in enumerate(zip(np.asarray(cols).tolist(), list(currents), strict=True)):
            line[c] = current
            reported, saturated = self._adc(line, "col")
            out[i], sat[i] = reported[c], saturated[c]
            line[c] = 0.0
        self.clock.advance(len(cols) * self.timing.conversions(1))
        return out, sat

    def _check_row_block(self, first: int, count: int, what: str) -> tuple[int, int]:
        """(active rows, active cols) after checking that rows first .. first + count − 1 are active and their
        reading fits one reply."""
        ar, ac = self.config.active_rows, self.config.active_cols
        if count < 1 or first + count > ar:
            raise _Reject(Err.INDEX_RANGE, f"{what} rows {first}..{first + count - 1} outside the active "
                          f"rows 0..{ar - 1}")
        self._check_reply_size(count * ac, what)
        return ar, ac

    def _rows_one_at_a_time(self, column_currents: Callable[[np.ndarray], Any], first: int, count: int,
                            v: float) -> np.ndarray:
        """Column currents (A, count × cols) with row first + i driven at ``v`` (V), the others grounded."""
        drive = np.zeros(self.rows)
        currents = np.empty((count, self.cols))
        for i, r in enumerate(range(first, first + count)):
            drive[r] = v
            currents[i] = column_currents(drive)
            drive[r] = 0.0
        return currents

    def _convert_rows(self, currents: np.ndarray, ac: int) -> tuple[np.ndarray, np.ndarray]:
        """(reported currents A, saturated mask), flattened, of the first ``ac`` columns of each row of
        ``currents`` (count × cols); the clock advances by one conversion of ``ac`` samples per row."""
        count = len(currents)
        values = np.empty((count, ac))
        sat = np.empty((count, ac), dtype=bool)
        for i in range(count):
            reported, saturated = self._adc(np.asarray(currents[i], dtype=float), "col")
            values[i], sat[i] = reported[:ac], saturated[:ac]
        self.clock.advance(count * self.timing.conversions(ac))
        return values.ravel(), sat.ravel()

    def _read_cells_physics(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read cells one at a time at the read voltage (selected row driven, others grounded)."""
        v = self._read_voltage_applied()
        batched = getattr(self.model, "cell_currents", None)
        if batched is not None:  # the cells' physics at once (same draws), the ADC conversion per read
            currents = batched(rows, cols, v).tolist()
        else:
            currents = [self.model.cell_current(r, c, v) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)]
        return self._convert_cells(cols, currents)

    # -- commands ---------------------------------------------------------------------------------
    def _identify(self, payload: bytes) -> tuple[bytes, int]:
        self._empty(payload, "IDENTIFY")
        return self.identity.pack(), 0

    def _get_status(self, payload: bytes) -> tuple[bytes, int]:
        self._empty(payload, "GET_STATUS")
        return self.status().pack(), 0

    def _configure(self, payload: bytes) -> tuple[bytes, int]:
        cfg = bp.Configuration.unpack(payload)
        if not (1 <= cfg.active_rows <= self.rows and 1 <= cfg.active_cols <= self.cols):
            raise _Reject(Err.BAD_REGION, f"active region {cfg.active_rows}x{cfg.active_cols} must be within "
                          f"1x1 .. {self.rows}x{self.cols}")
        rv, tia = np.float32(cfg.read_voltage), np.float32(cfg.tia_range)
        if not (np.isfinite(rv) and np.isfinite(tia)):
            raise _Reject(Err.BAD_VALUE, "read voltage and TIA range must be finite")
        if rv == 0 or abs(rv) > self._max_in:
            raise _Reject(Err.VOLTAGE_LIMIT, f"read voltage {float(rv):g} V must be non-zero and within "
                          f"+-{float(self._max_in):g} V")
        if not self._tia_min <= tia <= self._tia_max:
            raise _Reject(Err.TIA_RANGE, f"TIA range {float(tia):g} A outside [{float(self._tia_min):g}, "
                          f"{float(self._tia_max):g}] A")
        self.config = cfg
        self.configured = True
        self.eqprop.config = None  # a new active region: the equilibrium network must be laid out again
        self.clock.advance(self.timing.settling_time)
        return cfg.pack(), 0

    def _all_off(self, payload: bytes) -> tuple[bytes, int]:
        self._empty(payload, "ALL_OFF")
        if self.routes:
            self.clock.advance(self.timing.switch_time)
        self._disconnect_all()
        return b"", 0

    def _measurement(self, values: np.ndarray, saturated: np.ndarray) -> tuple[bytes, int]:
        return bp.pack_measurement(values, saturated), bp.FLAG_SATURATED if np.count_nonzero(saturated) else 0

    def _read_cell(self, payload: bytes) -> tuple[bytes, int]:
        row, col = bp.unpack_cell(payload)
        rows, cols = np.array([row]), np.array([col])
        self._check_cells(rows, cols, "READ_CELL")
        return self._measurement(*self._read_cells_physics(rows, cols))

    def _read_cells(self, payload: bytes) -> tuple[bytes, int]:
        rec = bp.unpack_cells(payload)
        rows, cols = rec["row"].astype(np.intp), rec["col"].astype(np.intp)
        self._check_cells(rows, cols, "READ_CELLS cell")
        self._check_reply_size(len(rows), "READ_CELLS")
        return self._measurement(*self._read_cells_physics(rows, cols))

    def _read_all(self, payload: bytes) -> tuple[bytes, int]:
        first, count = bp.unpack_read_all(payload)
        _, ac = self._check_row_block(first, count, "READ_ALL")
        v = self._read_voltage_applied()
        by_row = getattr(self.model, "row_read_currents", None)  # row by row: one row driven, columns read
        if by_row is not None:
            currents = by_row(np.arange(first, first + count), v)
        else:  # a model without the batched read
            currents = self._rows_one_at_a_time(self.model.column_currents, first, count, v)
        return self._measurement(*self._convert_rows(currents, ac))

    def _mvm(self, payload: bytes, transpose: bool) -> tuple[bytes, int]:
        cfg = self.config
        if transpose:
            n_in, n_out, n_lines, what = cfg.active_cols, cfg.active_rows, self.cols, "MVM_TRANSPOSE column voltages"
        else:
            n_in, n_out, n_lines, what = cfg.active_rows, cfg.active_cols, self.rows, "MVM_FORWARD row voltages"
        v = bp.unpack_vector(payload, n_in, what)
        if not _amax(np.abs(v)) <= self._max_in:  # one reduction: NaN fails this comparison too
            self._check_inputs(v, what)  # raises with the reason
        # within the input range: the DAC's clip is a no-op (periphery doubles may lack the shortcut)
        applied = self._dac_in_range(v, self._max_in_v) if self._dac_in_range else self._dac(v)
        if n_in == n_lines:  # the whole array is active: the DAC output is the drive vector
            drive = np.asarray(applied, dtype=float)
        else:
            drive = np.zeros(n_lines)
            drive[:n_in] = applied
        currents = self.model.row_currents(drive) if transpose else self.model.column_currents(drive)
        reported, saturated = self._adc(np.asarray(currents, dtype=float), "row" if transpose else "col")
        self.clock.advance(self.timing.conversions(n_out))
        return self._measurement(reported[:n_out], saturated[:n_out])

    def _mvm_forward(self, payload: bytes) -> tuple[bytes, int]:
        return self._mvm(payload, transpose=False)

    def _mvm_transpose(self, payload: bytes) -> tuple[bytes, int]:
        return self._mvm(payload, transpose=True)

    def _apply(self, rows: np.ndarray, cols: np.ndarray, amplitudes: np.ndarray, widths_ns: np.ndarray) -> None:
        widths = widths_ns.astype(float) * 1e-9
        self.model.apply_pulses(rows.astype(np.intp), cols.astype(np.intp), amplitudes.astype(float), widths)
        self.clock.advance(float(widths.sum()) + len(widths) * self.timing.pulse_gap)

    def _check_pulse(self, amplitude: float, width_ns: int, what: str) -> None:
        """:meth:`_check_amplitudes` and :meth:`_check_widths` of one pulse (a float32 amplitude from the wire)."""
        lim = self.limits
        if not (abs(amplitude) <= self._max_amp and lim.min_pulse_width_ns <= width_ns <= lim.max_pulse_width_ns):
            self._check_amplitudes(np.array([amplitude], dtype=np.float32), what)  # raise with the reason
            self._check_widths(np.array([width_ns]), what)

    def _pulse(self, payload: bytes) -> tuple[bytes, int]:
        row, col, amplitude, width_ns = bp.unpack_pulse(payload)
        rows, cols = np.array([row]), np.array([col])
        self._check_cells(rows, cols, "PULSE")
        self._check_pulse(amplitude, width_ns, "PULSE")
        self._apply(rows, cols, np.array([amplitude], dtype=np.float32), np.array([width_ns]))
        return b"", 0

    def _pulse_batch(self, payload: bytes) -> tuple[bytes, int]:
        rec, readback = bp.unpack_pulse_batch(payload)
        rows, cols, amps, widths = rec["row"], rec["col"], rec["amplitude"], rec["width_ns"]
        what = "PULSE_BATCH pulse"  # every pulse is checked before the first one is applied
        self._check_cells(rows, cols, what)
        self._check_amplitudes(amps, what)
        self._check_widths(widths, what)
        self._apply(rows, cols, amps, widths)
        if not readback:
            return b"", 0
        return self._measurement(*self._read_cells_physics(rows.astype(np.intp), cols.astype(np.intp)))

    def _outer_product(self, payload: bytes) -> tuple[bytes, int]:
        ar, ac = self.config.active_rows, self.config.active_cols
        amplitude, width_ns, row_trains, col_trains = bp.unpack_outer_product(payload, ar, ac)
        slots = row_trains.shape[1]
        if slots < 1:
            raise _Reject(Err.BAD_VALUE, "OUTER_PRODUCT needs at least one slot")
        # min and max, not |x|: the int8 value -128 is its own absolute value
        if (_amax(row_trains, axis=None) > 1 or _amin(row_trains, axis=None) < -1
                or _amax(col_trains, axis=None) > 1 or _amin(col_trains, axis=None) < -1):
            raise _Reject(Err.BAD_VALUE, "OUTER_PRODUCT trains must hold only -1, 0, +1")
        self._check_pulse(amplitude, width_ns, "OUTER_PRODUCT")
        full_rows, full_cols = row_trains, col_trains
        if ar != self.rows:
            full_rows = np.zeros((self.rows, slots), dtype=np.int8)
            full_rows[:ar] = row_trains
        if ac != self.cols:
            full_cols = np.zeros((self.cols, slots), dtype=np.int8)
            full_cols[:ac] = col_trains
        width = width_ns * 1e-9
        self.model.outer_product_update(full_rows, full_cols, float(amplitude), width)
        self.clock.advance(slots * (width + self.timing.pulse_gap))
        return b"", 0

    def _closed_loop_block(self, block: bp.ClosedLoopBlock, what: str) -> None:
        ar, ac = self.config.active_rows, self.config.active_cols
        if block.row0 + block.n > ar or block.col0 + block.width > ac:
            raise _Reject(Err.INDEX_RANGE, f"{what}: {block.n}x{block.n} {block.layout} block at row {block.row0}, "
                          f"column {block.col0} exceeds the active {ar}x{ac} region")

    def _closed_loop_reply(self, reading: Any, n: int) -> tuple[bytes, int]:
        self.clock.advance(self.timing.conversions(n))
        reply = bp.ClosedLoopReply(np.asarray(reading.voltages), np.asarray(reading.saturated, dtype=bool),
                                   float(reading.settle_time), float(reading.input_conductance), float(reading.rail),
                                   bool(reading.stable))
        return reply.pack(), bp.FLAG_SATURATED if reply.saturated.any() else 0

    def _closed_loop_solve(self, payload: bytes) -> tuple[bytes, int]:
        block, u = bp.unpack_closed_loop_solve(payload)
        self._closed_loop_block(block, "CLOSED_LOOP_SOLVE")
        self._check_inputs(u, "CLOSED_LOOP_SOLVE input voltages")
        reading = self.closed_loop.solve(self._dac(u), row0=block.row0, col0=block.col0, layout=block.layout)
        return self._closed_loop_reply(reading, block.n)

    def _closed_loop_eigen(self, payload: bytes) -> tuple[bytes, int]:
        block, g_lambda = bp.unpack_closed_loop_eigen(payload)
        self._closed_loop_block(block, "CLOSED_LOOP_EIGEN")
        if not (math.isfinite(g_lambda) and g_lambda > 0):
            raise _Reject(Err.BAD_VALUE, f"CLOSED_LOOP_EIGEN: feedback conductance {g_lambda} S must be finite and > 0")
        reading = self.closed_loop.eigenvector(float(g_lambda), block.n, row0=block.row0, col0=block.col0,
                                               layout=block.layout)
        return self._closed_loop_reply(reading, block.n)

    def _closed_loop_info(self, payload: bytes) -> tuple[bytes, int]:
        if payload:
            raise _Reject(Err.BAD_LENGTH, f"CLOSED_LOOP_INFO takes no payload, got {len(payload)} bytes")
        return self.closed_loop.closed_loop_info().pack(), 0

    # -- equilibrium-network mode (§5.11) ---------------------------------------------------------------
    def _eq_info(self, payload: bytes) -> tuple[bytes, int]:
        self._empty(payload, "EQ_INFO")
        return self.eqprop.hardware.info().pack(), 0

    def _eq_configure(self, payload: bytes) -> tuple[bytes, int]:
        cfg = eqp.EqConfig.unpack(payload)
        problems = self.eqprop.problems(cfg, (self.config.active_rows, self.config.active_cols))
        if problems:
            kind, message = problems[0]
            code = {"limit": Err.VOLTAGE_LIMIT, "range": Err.INDEX_RANGE}.get(kind, Err.BAD_VALUE)
            raise _Reject(code, f"EQ_CONFIGURE: {message}")
        self.eqprop.configure(cfg)
        self.clock.advance(self.timing.switch_time)  # line switches set up the tiles
        return cfg.pack(), 0

    def _eq_settle(self, payload: bytes) -> tuple[bytes, int]:
        mode = self.eqprop
        cfg = mode.config
        if cfg is None:
            raise _Reject(Err.NOT_CONFIGURED, "EQ_SETTLE before EQ_CONFIGURE (since power-on or CONFIGURE)")
        x, inject = eqp.unpack_settle(payload, cfg.sizes[0], cfg.sizes[-1])
        self._check_inputs(x.ravel(), "EQ_SETTLE input voltages")
        peak = np.abs(inject).max()
        if not peak <= np.float32(mode.hardware.max_injection):
            if not np.isfinite(inject).all():
                raise _Reject(Err.BAD_VALUE, "EQ_SETTLE: non-finite injection current")
            raise _Reject(Err.VOLTAGE_LIMIT, f"EQ_SETTLE: injection {float(peak):g} A exceeds "
                          f"+-{mode.hardware.max_injection:g} A")
        samples = x.shape[0]
        if eqp.settle_reply_size(samples, mode.lines) > self.limits.max_payload:
            raise _Reject(Err.FRAME_TOO_LARGE, f"EQ_SETTLE: the reply for {samples} samples of {mode.lines} lines "
                          f"exceeds {self.limits.max_payload} bytes; send fewer samples")
        applied = self._dac(x.ravel().astype(float)).reshape(x.shape)
        reading = mode.settle(applied, inject.astype(float))
        self.clock.advance(float(reading.settle_time.sum()) + samples * self.timing.conversions(mode.lines))
        reply = eqp.EqSettleReply(reading.settle_time, reading.voltages, reading.saturated)
        return reply.pack(), bp.FLAG_SATURATED if reading.saturated.any() else 0

    def _check_port(self, port: int) -> None:
        if port >= self.identity.smu_ports:
            raise _Reject(Err.BAD_PORT, f"SMU port {port} does not exist (ports 0..{self.identity.smu_ports - 1})")

    def _route_smu(self, payload: bytes) -> tuple[bytes, int]:
        port, row, col = bp.unpack_route(payload)
        self._check_port(port)
        self._check_cells(np.array([row]), np.array([col]), "ROUTE_SMU")
        for other, (r, c) in self.routes.items():
            if other != port and (r == row or c == col):
                raise _Reject(Err.ROUTE_CONFLICT, f"SMU port {other} is routed to cell ({r}, {c}), which shares "
                              f"a line with ({row}, {col})")
        terminal = self.smu_terminals.get(port)
        if terminal is not None:
            terminal.disconnect()
            terminal.connect(self.model.cell_load(row, col))
        self.routes[port] = (row, col)
        self.clock.advance(self.timing.switch_time)
        return b"", 0

    def _unroute_smu(self, payload: bytes) -> tuple[bytes, int]:
        port = bp.unpack_port(payload)
        self._check_port(port)
        if self.routes.pop(port, None) is not None:
            terminal = self.smu_terminals.get(port)
            if terminal is not None:
                terminal.disconnect()
            self.clock.advance(self.timing.switch_time)
        return b"", 0
