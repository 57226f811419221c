"""Driver of the xbarlab crossbar test board (framed binary serial protocol v1).

One request frame and one reply frame per operation; vectors travel as float32 buffers.
The protocol is specified in ``docs/board-protocol.md``; the codec is shared with the
emulator (:mod:`xbarlab.protocol.board`).

Errors:

* an error reply from the board → :class:`~xbarlab.errors.InstrumentError` (``code`` is an
  :class:`~xbarlab.protocol.board.Err` value, nothing was applied);
* a corrupted, truncated or mismatched reply (bad sync, header check, CRC-32, wrong sequence
  number or opcode), or the board reporting that *our* frame arrived corrupted →
  :class:`~xbarlab.errors.ProtocolError`; no reply at all →
  :class:`~xbarlab.errors.TransportTimeout`. In both cases the input is reset before the
  exception propagates (and again before the next command, to drop a late reply), so the
  next command works. The driver never retries: the caller decides.
* a clipped ADC sample → :class:`AdcSaturationError` from every method returning
  measurements (``read_cell``, ``read_all``, ``mvm_*``, ``*_currents``); the ``*_reading``
  methods return the values with the saturation mask instead and never raise for it.
* bad arguments (shapes, indices, non-finite numbers, values outside the board's hardware
  limits as reported by IDENTIFY) → ValueError before anything is sent.
"""

from __future__ import annotations

import math
import operator
import threading

import numpy as np

from xbarlab.drivers.cap_array import CapArrayMethods
from xbarlab.drivers.transport import ByteTransport
from xbarlab.errors import ConfigError, InstrumentError, ProtocolError, TransportTimeout
from xbarlab.protocol import board as bp
from xbarlab.protocol import eqprop as eqp
from xbarlab.protocol.board import Err, Op
from xbarlab.readings import AdcSaturationError, BoardInfo, BoardReading, Pulse

_LINK_ERRORS = (Err.BAD_CRC, Err.BAD_HEADER)
_PULSE_BATCH_HEADER = 4


def _ternary(trains: np.ndarray) -> bool:
    """Every entry is -1, 0 or +1 (two reductions for integer trains, the usual case)."""
    if trains.size == 0:
        return True
    if np.issubdtype(trains.dtype, np.integer):
        return bool(trains.min() >= -1 and trains.max() <= 1)
    return bool(np.isin(trains, (-1, 0, 1)).all())


class CrossbarBoard(CapArrayMethods):
    """The crossbar test board over a :class:`ByteTransport` (serial port or emulator).

    ``max_payload`` (bytes) caps the frames the driver sends; bigger batches, reads and
    outer-product updates are split over several frames (the board's own limit from
    IDENTIFY also applies). Nothing is sent on construction. The 3T1C capacitor-array commands
    (``cap_*``, protocol §9) come from :class:`~xbarlab.drivers.cap_array.CapArrayMethods`.
    """

    def __init__(self, transport: ByteTransport, name: str = "board", max_payload: int = bp.MAX_PAYLOAD) -> None:
        max_payload = operator.index(max_payload)
        if max_payload < 256:
            raise ConfigError(f"{name}: max_payload must be at least 256 bytes, got {max_payload}")
        self.transport = transport
        self.name = name
        self.max_payload = max_payload
        self.hardware: bp.BoardIdentity | None = None
        self.configuration: bp.Configuration | None = None
        self.eq_config: eqp.EqConfig | None = None  # the equilibrium network the board echoed
        self.eq_hardware: eqp.EqInfo | None = None
        self._seq = 0
        self._stale = False
        self._lock = threading.Lock()  # one exchange at a time (GUI threads may poll status)

    # -- link ----------------------------------------------------------------------------------
    @property
    def _reply_limit(self) -> int:
        return self.hardware.limits.max_payload if self.hardware else bp.MAX_PAYLOAD

    @property
    def _request_limit(self) -> int:
        return min(self.max_payload, self._reply_limit)

    def _resync(self) -> None:
        self.transport.reset_input()
        self._stale = False

    def _fail(self, message: str) -> ProtocolError:
        self._resync()
        return ProtocolError(f"{self.name}: {message}")

    def _exchange(self, op: Op, payload: bytes = b"", expect: int | None = None) -> tuple[bytes, int]:
        """Send one request, return (reply payload, reply flags). One round trip."""
        with self._lock:
            return self._exchange_locked(op, payload, expect)

    def _exchange_locked(self, op: Op, payload: bytes, expect: int | None) -> tuple[bytes, int]:
        if self._stale:
            self._resync()
        self._seq = seq = (self._seq + 1) & 0xFFFF
        t = self.transport
        reply_limit = self.hardware.limits.max_payload if self.hardware else bp.MAX_PAYLOAD
        t.write(bp.encode_request(op, seq, payload, min(self.max_payload, reply_limit)))
        try:
            head = t.read(bp.HEADER_SIZE)
        except TransportTimeout as exc:
            self._stale = True
            t.reset_input()
            raise TransportTimeout(f"{self.name}: no reply to {op.name} (seq {seq}): {exc}") from exc
        try:
            if len(head) < bp.HEADER_SIZE:
                bp.decode_header(head, reply_limit)  # raises: truncated
            version, r_opcode, r_seq, status, flags, length = bp.parse_header(head, reply_limit)
        except bp.FrameError as exc:
            raise self._fail(f"bad reply to {op.name}: {exc}") from None
        try:
            body = t.read(length + bp.TRAILER_SIZE)
        except TransportTimeout:
            self._stale = True
            raise self._fail(f"truncated reply to {op.name}: header announced {length} payload bytes") from None
        try:
            reply = bp.frame_payload(head, body, length, r_seq, r_opcode)
        except bp.FrameError as exc:
            raise self._fail(f"bad reply to {op.name}: {exc}") from None
        if version != bp.PROTOCOL_VERSION:
            raise self._fail(f"reply speaks protocol version {version}, this driver speaks 1")
        if status == bp.Status.OK and r_seq == seq and r_opcode == op | bp.REPLY_BIT:
            if expect is not None and len(reply) != expect:
                raise self._fail(f"reply to {op.name} has {len(reply)} payload bytes, expected {expect}")
            return reply, flags
        error = None
        if status == bp.Status.ERROR:
            try:
                error = bp.unpack_error(reply)
            except bp.PayloadError as exc:
                raise self._fail(f"malformed error reply to {op.name}: {exc}") from None
        if r_seq != seq or r_opcode != op | bp.REPLY_BIT:
            what = f" (board error {error[0]}: {error[1]})" if error else ""
            raise self._fail(
                f"reply to {op.name} seq {seq} has opcode 0x{r_opcode:02x} seq {r_seq}; rejected{what}"
            )
        if error is not None:
            code, message = error
            try:
                label = Err(code).name
            except ValueError:
                label = "UNKNOWN"
            if code in _LINK_ERRORS:
                raise self._fail(f"the board received a corrupted {op.name} frame ({label}: {message}); "
                                 "nothing was executed")
            raise InstrumentError(self.name, code, f"{label}: {message}")
        raise self._fail(f"reply to {op.name} has unknown status {status}")

    # -- argument checks ---------------------------------------------------------------------------
    def _limits(self) -> bp.HardwareLimits:
        if self.hardware is None:
            self.identify()
        assert self.hardware is not None
        return self.hardware.limits

    def _index(self, value: int, bound: int, what: str) -> int:
        if isinstance(value, bool):
            raise ValueError(f"{self.name}: {what} must be an integer, got {value!r}")
        try:
            i = operator.index(value)
        except TypeError:
            raise ValueError(f"{self.name}: {what} must be an integer, got {value!r}") from None
        if not 0 <= i < bound:
            raise ValueError(f"{self.name}: {what} {i} outside 0..{bound - 1}")
        return i

    def _indices(self, values: object, bound: int, what: str) -> np.ndarray:
        arr = np.asarray(values)
        if arr.ndim != 1:
            raise ValueError(f"{self.name}: {what} must be a 1-D sequence, got shape {arr.shape}")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{self.name}: {what} must be integers, got dtype {arr.dtype}")
        if arr.size and (arr.min() < 0 or arr.max() >= bound):
            bad = int(arr[(arr < 0) | (arr >= bound)][0])
            raise ValueError(f"{self.name}: {what} {bad} outside 0..{bound - 1} (active region)")
        return arr

    def _cell_pairs(self, rows: object, cols: object) -> tuple[np.ndarray, np.ndarray]:
        """Row and column indices of a list of cells in the active region, as many of each."""
        ar, ac = self.shape
        r = self._indices(rows, ar, "row")
        c = self._indices(cols, ac, "column")
        if r.shape != c.shape:
            raise ValueError(f"{self.name}: {len(r)} rows but {len(c)} columns")
        return r, c

    def _cells_per_frame(self) -> int:
        """The most cells of a cell-list read whose request and reply both fit the frame limits."""
        reply_limit = self._reply_limit
        # 4 + 1/8 bytes per sample in the reply, so start just above 8L/33
        n = min(self._request_limit // bp.CELL_RECORD.itemsize, 8 * reply_limit // 33 + 8)
        while bp.measurement_size(n) > reply_limit:
            n -= 1
        return n

    def _rows_per_frame(self) -> int:
        """The most whole rows of a block read whose reply fits the frame limit."""
        ar, ac = self.shape
        if bp.measurement_size(ac) > self._reply_limit:
            raise ValueError(f"{self.name}: one row of {ac} samples exceeds the {self._reply_limit}-byte frame limit")
        n = max(1, min(ar, (self._reply_limit * 8) // (33 * ac)))
        while n > 1 and bp.measurement_size(n * ac) > self._reply_limit:
            n -= 1
        return n

    def _finite(self, value: float, what: str) -> float:
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: {what} must be a number, got {value!r}") from None
        if not math.isfinite(v):
            raise ValueError(f"{self.name}: {what} must be finite, got {v}")
        return v

    def _vector(self, values: object, n: int, what: str) -> np.ndarray:
        v = np.asarray(values, dtype=float)
        if v.shape != (n,):
            raise ValueError(f"{self.name}: {what} must have shape ({n},), got {v.shape}")
        limit = self._limits().max_input_voltage
        peak = np.maximum.reduce(np.abs(v)) if n else 0.0
        if not peak <= limit:  # one reduction: NaN fails this comparison too
            if not np.isfinite(v).all():
                raise ValueError(f"{self.name}: {what} must be finite")
            raise ValueError(f"{self.name}: {what}: |V| = {peak:g} V exceeds the board's input range +-{limit:g} V")
        return v

    def _amplitudes(self, amplitudes: np.ndarray, what: str) -> np.ndarray:
        if not np.isfinite(amplitudes).all():
            raise ValueError(f"{self.name}: {what} amplitudes must be finite")
        limit = self._limits().max_pulse_amplitude
        if amplitudes.size and np.abs(amplitudes).max() > limit:
            raise ValueError(f"{self.name}: {what}: amplitude {np.abs(amplitudes).max():g} V exceeds the board's "
                             f"hardware limit +-{limit:g} V")
        return amplitudes

    def _widths_ns(self, widths: np.ndarray, what: str) -> np.ndarray:
        if not np.isfinite(widths).all():
            raise ValueError(f"{self.name}: {what} widths must be finite")
        ns = np.rint(widths * 1e9)
        lim = self._limits()
        if ns.size and (ns.min() < lim.min_pulse_width_ns or ns.max() > lim.max_pulse_width_ns):
            bad = float(widths[(ns < lim.min_pulse_width_ns) | (ns > lim.max_pulse_width_ns)][0])
            raise ValueError(f"{self.name}: {what}: width {bad:g} s outside the board's hardware limits "
                             f"[{lim.min_pulse_width_ns * 1e-9:g}, {lim.max_pulse_width_ns * 1e-9:g}] s")
        return ns.astype(np.uint32)

    def _configured(self) -> bp.Configuration:
        if self.configuration is None:
            raise ConfigError(f"{self.name}: call configure(read_voltage, tia_range) before reading the array")
        return self.configuration

    def _checked(self, reading: BoardReading, what: str) -> np.ndarray:
        if reading.any_saturated:
            tia = self.configuration.tia_range if self.configuration else float("nan")
            raise AdcSaturationError(self.name, what, reading.currents, reading.saturated, tia)
        return reading.currents

    @staticmethod
    def _reading(payload: bytes, n: int, shape: tuple[int, ...] | None = None) -> BoardReading:
        values, mask = bp.unpack_measurement(payload, n)
        currents = values.astype(float)
        if shape is not None:
            return BoardReading(currents.reshape(shape), mask.reshape(shape))
        return BoardReading(currents, mask)

    # -- identity and set-up --------------------------------------------------------------------
    def identify(self) -> BoardInfo:
        """IDENTIFY: identity, protocol version, array size and kind, SMU ports (also sets ``hardware``)."""
        payload, _ = self._exchange(Op.IDENTIFY)
        try:
            ident = bp.BoardIdentity.unpack(payload)
        except bp.PayloadError as exc:
            raise self._fail(f"malformed IDENTIFY reply: {exc}") from None
        if ident.protocol_version != bp.PROTOCOL_VERSION:
            raise ProtocolError(f"{self.name}: board speaks protocol version {ident.protocol_version}, "
                                f"this driver speaks {bp.PROTOCOL_VERSION}")
        self.hardware = ident
        return BoardInfo(
            identity=ident.identity,
            protocol_version=ident.protocol_version,
            rows=ident.rows,
            cols=ident.cols,
            array_kind=ident.array_kind.label,
            smu_ports=ident.smu_ports,
        )

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the active region (the physical array before ``configure``; may IDENTIFY)."""
        if self.configuration is not None:
            return self.configuration.active_rows, self.configuration.active_cols
        if self.hardware is None:
            self.identify()
        assert self.hardware is not None
        return self.hardware.rows, self.hardware.cols

    def configure(
        self,
        read_voltage: float,
        tia_range: float,
        *,
        active_rows: int | None = None,
        active_cols: int | None = None,
    ) -> None:
        """Read voltage (V, non-zero), TIA full scale (A) and the active region (default: whole array).

        Must be sent after power-on and again after any board reset; array commands are refused
        (``NOT_CONFIGURED``) until then.
        """
        rv = self._finite(read_voltage, "read voltage (V)")
        tia = self._finite(tia_range, "TIA range (A)")
        if rv == 0:
            raise ValueError(f"{self.name}: read voltage must be non-zero (conductance = current / voltage)")
        if tia <= 0:
            raise ValueError(f"{self.name}: TIA range must be positive, got {tia} A")
        self._limits()
        assert self.hardware is not None
        ar = self.hardware.rows if active_rows is None else operator.index(active_rows)
        ac = self.hardware.cols if active_cols is None else operator.index(active_cols)
        if not (1 <= ar <= self.hardware.rows and 1 <= ac <= self.hardware.cols):
            raise ValueError(f"{self.name}: active region {ar}x{ac} must be within 1x1 .. "
                             f"{self.hardware.rows}x{self.hardware.cols}")
        request = bp.Configuration(ar, ac, rv, tia).pack()
        reply, _ = self._exchange(Op.CONFIGURE, request, len(request))
        if reply != request:
            raise self._fail("CONFIGURE reply does not echo the requested configuration")
        self.configuration = bp.Configuration.unpack(reply)  # float32-rounded values the board uses
        self.eq_config = None  # the board forgets its equilibrium network at CONFIGURE

    def status(self) -> bp.BoardStatus:
        """GET_STATUS: board time (s), temperature (°C), error counters, boot count, routing."""
        payload, _ = self._exchange(Op.GET_STATUS)
        try:
            return bp.BoardStatus.unpack(payload)
        except bp.PayloadError as exc:
            raise self._fail(f"malformed GET_STATUS reply: {exc}") from None

    def all_off(self) -> None:
        """ALL_OFF: ground every line and unroute every SMU port (safe state)."""
        self._exchange(Op.ALL_OFF, expect=0)

    # -- reads ----------------------------------------------------------------------------------
    def read_cell_current(self, row: int, col: int) -> float:
        """Current of one cell at the read voltage (A)."""
        ar, ac = self.shape
        payload = bp.pack_cell(self._index(row, ar, "row"), self._index(col, ac, "column"))
        reply, _ = self._exchange(Op.READ_CELL, payload, bp.measurement_size(1))
        return float(self._checked(self._reading(reply, 1), f"READ_CELL ({row}, {col})")[0])

    def read_cell(self, row: int, col: int) -> float:
        """Conductance of one cell (S) = current at the read voltage / read voltage."""
        cfg = self._configured()
        return self.read_cell_current(row, col) / cfg.read_voltage

    def read_cells_reading(self, rows: object, cols: object) -> BoardReading:
        """READ_CELLS: currents (A) of a list of cells at the read voltage, with the saturation mask."""
        r, c = self._cell_pairs(rows, cols)
        per_frame = self._cells_per_frame()
        currents, masks = [], []
        for start in range(0, len(r), per_frame):
            rr, cc = r[start : start + per_frame], c[start : start + per_frame]
            reply, _ = self._exchange(Op.READ_CELLS, bp.pack_cells(rr, cc), bp.measurement_size(len(rr)))
            reading = self._reading(reply, len(rr))
            currents.append(reading.currents)
            masks.append(reading.saturated)
        if not currents:
            return BoardReading(np.zeros(0), np.zeros(0, dtype=bool))
        return BoardReading(np.concatenate(currents), np.concatenate(masks))

    def read_cells(self, rows: object, cols: object) -> np.ndarray:
        """Conductances (S) of a list of cells; raises AdcSaturationError for a clipped sample."""
        cfg = self._configured()
        return self._checked(self.read_cells_reading(rows, cols), "READ_CELLS") / cfg.read_voltage

    def read_all_reading(self) -> BoardReading:
        """READ_ALL: currents (A, rows × cols) at the read voltage, row by row, with the saturation mask.

        One frame when the reply fits the payload limit, otherwise blocks of rows.
        """
        return self.read_rows_reading(0, self.shape[0])

    def read_rows_reading(self, first: int, count: int) -> BoardReading:
        """READ_ALL of the rows first .. first + count − 1 only: currents (A, count × cols), one row
        driven at a time with every column read, and the saturation mask."""
        ar, ac = self.shape
        first = self._index(first, ar, "row")
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or not 1 <= count <= ar - first:
            raise ValueError(f"{self.name}: row count {count!r} outside 1..{ar - first} (first row {first})")
        end = first + int(count)
        per_frame = self._rows_per_frame()
        blocks, masks = [], []
        for start in range(first, end, per_frame):
            count = min(per_frame, end - start)
            reply, _ = self._exchange(Op.READ_ALL, bp.pack_read_all(start, count), bp.measurement_size(count * ac))
            reading = self._reading(reply, count * ac, (count, ac))
            blocks.append(reading.currents)
            masks.append(reading.saturated)
        if len(blocks) == 1:
            return BoardReading(blocks[0], masks[0])
        return BoardReading(np.concatenate(blocks), np.concatenate(masks))

    def read_all_currents(self) -> np.ndarray:
        """Currents (A, rows × cols) at the read voltage; raises AdcSaturationError for clipped samples."""
        return self._checked(self.read_all_reading(), "READ_ALL")

    def read_all(self) -> np.ndarray:
        """Conductance map (S, rows × cols) = currents at the read voltage / read voltage."""
        cfg = self._configured()
        return self.read_all_currents() / cfg.read_voltage

    def read_rows(self, first: int, count: int) -> np.ndarray:
        """Conductances (S, count × cols) of rows first .. first + count − 1, read as READ_ALL reads
        them; raises AdcSaturationError for a clipped sample."""
        cfg = self._configured()
        return self._checked(self.read_rows_reading(first, count), f"READ_ALL rows {first}+{count}") / cfg.read_voltage

    # -- MVM ----------------------------------------------------------------------------------------
    def mvm_forward_reading(self, row_voltages: np.ndarray) -> BoardReading:
        """MVM_FORWARD: row voltages (V) in, column currents (A) out, with the saturation mask."""
        ar, ac = self.shape
        v = self._vector(row_voltages, ar, "row voltages")
        reply, _ = self._exchange(Op.MVM_FORWARD, bp.pack_vector(v), bp.measurement_size(ac))
        return self._reading(reply, ac)

    def mvm_transpose_reading(self, col_voltages: np.ndarray) -> BoardReading:
        """MVM_TRANSPOSE: column voltages (V) in, row currents (A) out, with the saturation mask."""
        ar, ac = self.shape
        v = self._vector(col_voltages, ac, "column voltages")
        reply, _ = self._exchange(Op.MVM_TRANSPOSE, bp.pack_vector(v), bp.measurement_size(ar))
        return self._reading(reply, ar)

    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        """Column currents (A) for row voltages (V): I = Gᵀ·V. Raises AdcSaturationError when clipped."""
        return self._checked(self.mvm_forward_reading(row_voltages), "MVM_FORWARD")

    def mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        """Row currents (A) for column voltages (V): I = G·V. Raises AdcSaturationError when clipped."""
        return self._checked(self.mvm_transpose_reading(col_voltages), "MVM_TRANSPOSE")

    # -- programming -----------------------------------------------------------------------------
    def pulse_cell(self, row: int, col: int, amplitude: float, width: float) -> None:
        """PULSE: one pulse of ``amplitude`` V (sign = polarity) and ``width`` s on one cell."""
        ar, ac = self.shape
        r, c = self._index(row, ar, "row"), self._index(col, ac, "column")
        amp = self._amplitudes(np.array([self._finite(amplitude, "amplitude (V)")]), "PULSE")
        ns = self._widths_ns(np.array([self._finite(width, "width (s)")]), "PULSE")
        self._exchange(Op.PULSE, bp.pack_pulse(r, c, float(amp[0]), int(ns[0])), 0)

    def pulse_batch(self, pulses: list[Pulse]) -> None:
        """PULSE_BATCH: pulses applied in order by the board, in as few frames as the limit allows."""
        if not pulses:
            return
        rows = np.fromiter((p.row for p in pulses), dtype=np.int64, count=len(pulses))
        cols = np.fromiter((p.col for p in pulses), dtype=np.int64, count=len(pulses))
        amps = np.fromiter((p.amplitude for p in pulses), dtype=float, count=len(pulses))
        widths = np.fromiter((p.width for p in pulses), dtype=float, count=len(pulses))
        self.pulse_arrays(rows, cols, amps, widths)

    def pulse_arrays(
        self,
        rows: object,
        cols: object,
        amplitudes: object,
        widths: object,
        *,
        readback: bool = False,
    ) -> BoardReading | None:
        """Vectorised PULSE_BATCH: pulse i is (rows[i], cols[i], amplitudes[i] V, widths[i] s).

        ``amplitudes`` and ``widths`` may be scalars. Every pulse is checked before the first
        frame is sent. With ``readback`` the pulsed cells' currents (A, one per pulse, in
        order) are read after the whole batch and returned with the saturation mask (in the
        same frame when the batch fits one frame, else by READ_CELLS after the last one).
        """
        ar, ac = self.shape
        r = self._indices(rows, ar, "row")
        c = self._indices(cols, ac, "column")
        n = len(r)
        if c.shape != (n,):
            raise ValueError(f"{self.name}: {n} rows but {len(c)} columns")
        try:
            a = np.broadcast_to(np.asarray(amplitudes, dtype=float), (n,))
            w = np.broadcast_to(np.asarray(widths, dtype=float), (n,))
        except ValueError:
            raise ValueError(f"{self.name}: amplitudes and widths must be scalars or have {n} entries") from None
        self._amplitudes(a, "PULSE_BATCH")
        ns = self._widths_ns(w, "PULSE_BATCH")
        if n == 0:
            return BoardReading(np.zeros(0), np.zeros(0, dtype=bool)) if readback else None
        records = np.empty(n, dtype=bp.PULSE_RECORD)
        records["row"], records["col"], records["amplitude"], records["width_ns"] = r, c, a, ns
        per_frame = (self._request_limit - _PULSE_BATCH_HEADER) // bp.PULSE_RECORD.itemsize
        single = n <= per_frame
        for start in range(0, n, per_frame):
            chunk = records[start : start + per_frame]
            with_readback = readback and single
            expect = bp.measurement_size(len(chunk)) if with_readback else 0
            reply, _ = self._exchange(Op.PULSE_BATCH, bp.pack_pulse_batch(chunk, with_readback), expect)
        if not readback:
            return None
        if single:
            return self._reading(reply, n)
        return self.read_cells_reading(r, c)

    def outer_product_update(
        self,
        row_trains: np.ndarray,
        col_trains: np.ndarray,
        amplitude: float,
        width: float,
    ) -> None:
        """OUTER_PRODUCT: coincidence update with -1/0/+1 trains (rows × slots, cols × slots).

        Slots are applied in order; more slots than fit one frame are sent in several frames.
        """
        ar, ac = self.shape
        rt, ct = np.asarray(row_trains), np.asarray(col_trains)
        if rt.ndim != 2 or ct.ndim != 2 or rt.shape[0] != ar or ct.shape[0] != ac or rt.shape[1] != ct.shape[1]:
            raise ValueError(f"{self.name}: trains must have shapes ({ar}, slots) and ({ac}, slots), got "
                             f"{rt.shape} and {ct.shape}")
        slots = rt.shape[1]
        if slots < 1:
            raise ValueError(f"{self.name}: outer-product trains need at least one slot")
        for what, t in (("row", rt), ("column", ct)):
            if not _ternary(t):
                raise ValueError(f"{self.name}: {what} trains must hold only -1, 0, +1")
        amp = float(self._amplitudes(np.array([self._finite(amplitude, "amplitude (V)")]), "OUTER_PRODUCT")[0])
        ns = int(self._widths_ns(np.array([self._finite(width, "width (s)")]), "OUTER_PRODUCT")[0])
        rt8, ct8 = rt.astype(np.int8), ct.astype(np.int8)
        per_frame = min(0xFFFF, (self._request_limit - bp.OUTER_PRODUCT_HEADER) // (ar + ac))
        if per_frame < 1:
            raise ValueError(f"{self.name}: one outer-product slot of {ar + ac} lines exceeds the frame limit")
        for start in range(0, slots, per_frame):
            stop = start + per_frame
            payload = bp.pack_outer_product(amp, ns, rt8[:, start:stop], ct8[:, start:stop])
            self._exchange(Op.OUTER_PRODUCT, payload, 0)

    # -- closed-loop (feedback) mode -------------------------------------------------------------------
    def _closed_loop_block(self, n: int, row0: int, col0: int, layout: str, what: str) -> bp.ClosedLoopBlock:
        if layout not in bp.CLOSED_LOOP_LAYOUTS:
            raise ValueError(f"{self.name}: {what} layout {layout!r}: expected one of {bp.CLOSED_LOOP_LAYOUTS}")
        block = bp.ClosedLoopBlock(operator.index(n), operator.index(row0), operator.index(col0), layout)
        ar, ac = self.shape
        if block.n < 1 or block.row0 < 0 or block.col0 < 0 or block.row0 + block.n > ar \
                or block.col0 + block.width > ac:
            raise ValueError(f"{self.name}: {what} block of {block.n}x{block.n} ({layout}) at row {row0}, column "
                             f"{col0} does not fit the active {ar}x{ac} region")
        return block

    def closed_loop_solve(
        self, inputs: np.ndarray, *, row0: int = 0, col0: int = 0, layout: str = "differential"
    ) -> bp.ClosedLoopReply:
        """CLOSED_LOOP_SOLVE: op-amps with the block in feedback settle to A_G·V = −g_in·U.

        ``inputs`` U in V (one per matrix row, within the input DAC range). Returns the output
        voltages with their rail mask, the settling time, g_in and the rail; saturation does not
        raise (the caller re-ranges). Sun et al., PNAS 116, 4123 (2019).
        """
        u = np.asarray(inputs, dtype=float)
        if u.ndim != 1:
            raise ValueError(f"{self.name}: closed-loop inputs must be a 1-D vector, got shape {u.shape}")
        block = self._closed_loop_block(u.size, row0, col0, layout, "CLOSED_LOOP_SOLVE")
        u = self._vector(u, block.n, "closed-loop input voltages")
        reply, _ = self._exchange(Op.CLOSED_LOOP_SOLVE, bp.pack_closed_loop_solve(block, u),
                                  bp.closed_loop_reply_size(block.n))
        return self._closed_loop_reply(reply, block.n)

    def closed_loop_eigen(
        self, g_lambda: float, n: int, *, row0: int = 0, col0: int = 0, layout: str = "differential"
    ) -> bp.ClosedLoopReply:
        """CLOSED_LOOP_EIGEN: free-running loop V' = A_G·V/g_λ; outputs ≈ the eigenvector with λ > g_λ (S)."""
        g = self._finite(g_lambda, "feedback conductance g_lambda (S)")
        if g <= 0:
            raise ValueError(f"{self.name}: feedback conductance g_lambda must be > 0 S, got {g}")
        block = self._closed_loop_block(n, row0, col0, layout, "CLOSED_LOOP_EIGEN")
        reply, _ = self._exchange(Op.CLOSED_LOOP_EIGEN, bp.pack_closed_loop_eigen(block, g),
                                  bp.closed_loop_reply_size(block.n))
        return self._closed_loop_reply(reply, block.n)

    def closed_loop_info(self) -> bp.ClosedLoopInfo:
        """CLOSED_LOOP_INFO: the feedback circuit's output rail (V; the outputs drive the array) and g_in (S)."""
        payload, _ = self._exchange(Op.CLOSED_LOOP_INFO, expect=8)
        try:
            return bp.ClosedLoopInfo.unpack(payload)
        except bp.PayloadError as exc:
            raise self._fail(f"malformed CLOSED_LOOP_INFO reply: {exc}") from None

    def _closed_loop_reply(self, payload: bytes, n: int) -> bp.ClosedLoopReply:
        try:
            return bp.ClosedLoopReply.unpack(payload, n)
        except bp.PayloadError as exc:
            raise self._fail(f"malformed closed-loop reply: {exc}") from None

    # -- equilibrium-network mode (§5.11) ------------------------------------------------------------------
    def eq_info(self) -> eqp.EqInfo:
        """EQ_INFO: the mode's hardware (max amplifier rail V, max injection A, node capacitance F, ADC bits).

        A board without the mode answers UNKNOWN_OPCODE: raised as a ConfigError saying so.
        """
        try:
            payload, _ = self._exchange(Op.EQ_INFO, expect=eqp.EQ_INFO_SIZE)
        except InstrumentError as exc:
            if exc.code == Err.UNKNOWN_OPCODE:
                raise ConfigError(f"{self.name}: this board has no equilibrium-network mode "
                                  "(EQ_INFO unknown)") from None
            raise
        try:
            info = eqp.EqInfo.unpack(payload)
        except bp.PayloadError as exc:
            raise self._fail(f"malformed EQ_INFO reply: {exc}") from None
        self.eq_hardware = info
        return info

    def eq_configure(self, config: eqp.EqConfig) -> eqp.EqConfig:
        """EQ_CONFIGURE: lay the layered network on its tiles; returns the configuration the board echoed."""
        problems = config.problems()
        if problems:
            raise ValueError(f"{self.name}: equilibrium network: {problems[0]}")
        ar, ac = self.shape
        rows, cols = config.lines()
        if rows.max() >= ar or cols.max() >= ac:
            raise ValueError(f"{self.name}: the network's tiles need rows up to {rows.max()} and columns up to "
                             f"{cols.max()}; the active region is {ar}x{ac}")
        payload = config.pack()
        reply, _ = self._exchange(Op.EQ_CONFIGURE, payload, len(payload))
        if reply != payload:
            raise self._fail("EQ_CONFIGURE echo differs from the request")
        self.eq_config = eqp.EqConfig.unpack(reply)
        return self.eq_config

    def eq_settle(self, inputs: np.ndarray, injections: np.ndarray | None = None) -> eqp.EqSettleReply:
        """EQ_SETTLE: settle the network for each sample (inputs V, output injections A; zero if None).

        Returns the settling time (s) of every sample and its line voltages (V): the rows in tile
        order (tile 0 first; per unit +V then −V, the bias pair last), then the nodes of layer 1, 2, ….
        Batches bigger than one frame are split. Saturation does not raise (the mask is returned).
        """
        cfg = getattr(self, "eq_config", None)
        if cfg is None:
            raise ConfigError(f"{self.name}: call eq_configure(...) before eq_settle")
        x = np.atleast_2d(np.asarray(inputs, dtype=float))
        n_in, n_out = cfg.sizes[0], cfg.sizes[-1]
        if x.ndim != 2 or x.shape[1] != n_in:
            raise ValueError(f"{self.name}: inputs must have shape (samples, {n_in}), got {x.shape}")
        inj = np.zeros((x.shape[0], n_out)) if injections is None else np.atleast_2d(np.asarray(injections, float))
        if inj.shape != (x.shape[0], n_out):
            raise ValueError(f"{self.name}: injections must have shape ({x.shape[0]}, {n_out}), got {inj.shape}")
        self._vector(x.ravel(), x.size, "equilibrium input voltages")
        if not np.isfinite(inj).all():
            raise ValueError(f"{self.name}: injection currents must be finite")
        lines = len(cfg.lines()[0]) + len(cfg.lines()[1])
        per_frame = 1
        while per_frame < 0xFFFF and eqp.settle_reply_size(per_frame + 1, lines) <= self._reply_limit \
                and eqp.settle_request_size(per_frame + 1, n_in, n_out) <= self._request_limit:
            per_frame += 1
        times, volts, masks = [], [], []
        for start in range(0, x.shape[0], per_frame):
            xs, js = x[start : start + per_frame], inj[start : start + per_frame]
            reply, _ = self._exchange(Op.EQ_SETTLE, eqp.pack_settle(xs, js), eqp.settle_reply_size(len(xs), lines))
            try:
                part = eqp.EqSettleReply.unpack(reply, len(xs), lines)
            except bp.PayloadError as exc:
                raise self._fail(f"malformed EQ_SETTLE reply: {exc}") from None
            times.append(part.settle_time)
            volts.append(part.voltages)
            masks.append(part.saturated)
        return eqp.EqSettleReply(np.concatenate(times), np.concatenate(volts), np.concatenate(masks))

    # -- SMU routing ---------------------------------------------------------------------------------
    def _port(self, port: int) -> int:
        self._limits()
        assert self.hardware is not None
        return self._index(port, self.hardware.smu_ports, "SMU port")

    def route_smu(self, port: int, row: int, col: int) -> None:
        """ROUTE_SMU: connect SMU port ``port`` across cell (row, col). Array commands are refused while routed."""
        p = self._port(port)
        ar, ac = self.shape
        self._exchange(Op.ROUTE_SMU, bp.pack_route(p, self._index(row, ar, "row"), self._index(col, ac, "column")), 0)

    def unroute_smu(self, port: int) -> None:
        """UNROUTE_SMU: disconnect SMU port ``port`` (no-op if it is not routed)."""
        self._exchange(Op.UNROUTE_SMU, bp.pack_port(self._port(port)), 0)

    def close(self) -> None:
        """Release the link (the station puts the board in its safe state first)."""
        self.transport.close()
