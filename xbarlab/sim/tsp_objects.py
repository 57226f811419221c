"""The 2600B's TSP objects behind the Lua prelude: channel attributes, reading buffers, trigger model,
status, ``localnode`` and ``format`` (Series 2600B Reference Manual, 2600BS-901-01).

:class:`TspObjectModel` is mixed into :class:`~xbarlab.sim.smu_tsp.Keithley2600Emulator`; the prelude
(``tsp_prelude.lua``) calls these methods. Errors are :class:`TspError` with the instrument's code.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.sim.smu_engine import Channel, pick_range


class TspError(Exception):
    """An instrument error raised from an attribute or function (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


SOURCE_DEFAULTS: dict[str, float] = {
    "func": 1.0, "levelv": 0.0, "leveli": 0.0, "limitv": 20.0, "limiti": 0.1, "limitp": 1e30,
    "rangev": 0.2, "rangei": 1e-7, "autorangev": 1.0, "autorangei": 1.0, "lowrangev": 0.2, "lowrangei": 1e-7,
    "output": 0.0, "offmode": 0.0, "offfunc": 1.0, "offlimiti": 1e-3, "offlimitv": 40.0, "delay": 0.0,
    "highc": 0.0, "settling": 0.0, "sink": 0.0,
}
MEASURE_DEFAULTS: dict[str, float] = {
    "nplc": 1.0, "autozero": 2.0, "count": 1.0, "interval": 0.0, "delay": 0.0, "delayfactor": 1.0,
    "rangev": 0.2, "rangei": 1e-7, "autorangev": 1.0, "autorangei": 1.0, "lowrangev": 0.2, "lowrangei": 1e-7,
    "rel.enablev": 0.0, "rel.enablei": 0.0, "filter.enable": 0.0, "filter.count": 1.0, "filter.type": 1.0,
}
TRIGGER_DEFAULTS: dict[str, dict[str, float]] = {
    "trigger": {"count": 1.0, "initiated": 0.0, "autoclear": 0.0, "timeout": 0.0},
    "trigger.source": {"action": 0.0, "limitv": 0.0, "limiti": 0.0, "stimulus": 0.0},
    "trigger.measure": {"action": 0.0, "stimulus": 0.0},
    "trigger.arm": {"count": 1.0, "stimulus": 0.0},
    "trigger.endpulse": {"action": 1.0, "stimulus": 0.0},
    "trigger.endsweep": {"action": 0.0},
}
BUFFER_FIELDS = ("appendmode", "collectsourcevalues", "collecttimestamps", "fillmode", "timestampresolution")


class _Buffer:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.readings: list[float] = []
        self.sourcevalues: list[float] = []
        self.timestamps: list[float] = []
        self.fields: dict[str, float] = dict.fromkeys(BUFFER_FIELDS, 0.0)
        self.fields["collecttimestamps"] = 1.0
        self.fields["collectsourcevalues"] = 1.0

    def clear(self) -> None:
        self.readings.clear()
        self.sourcevalues.clear()
        self.timestamps.clear()

    def append(self, value: float, source: float, t: float) -> None:
        if len(self.readings) >= self.capacity:
            return
        self.readings.append(value)
        self.sourcevalues.append(source)
        self.timestamps.append(t)


class TspObjectModel:
    """State and behaviour of the TSP objects; the host provides ``ch``, ``clock``, ``engine``, ``MODEL``,
    ``errors``, ``format``, ``node``, ``esr``/``ese``/``sre``, ``timer_zero``, ``_out``, ``_check_time``,
    ``_format_value`` and ``_status_byte``."""

    ch: list[Channel]
    MODEL: Any
    clock: Any
    engine: Any
    errors: list[tuple[int, str]]
    format: dict[str, float]
    node: dict[str, Any]
    esr: int
    ese: int
    sre: int
    timer_zero: float
    _out: list[bytes]

    def _check_time(self) -> None:  # pragma: no cover - provided by the host
        raise NotImplementedError

    def _format_value(self, value: Any) -> str:  # pragma: no cover - provided by the host
        raise NotImplementedError

    def _status_byte(self) -> int:  # pragma: no cover - provided by the host
        raise NotImplementedError

    def _reset_channel(self, c: Channel) -> None:
        c.output = False
        c.tripped = False
        c.s = {"source": dict(SOURCE_DEFAULTS), "measure": dict(MEASURE_DEFAULTS),
               **{k: dict(v) for k, v in TRIGGER_DEFAULTS.items()}}
        n = self.MODEL.buffer_points
        c.s["buffers"] = {"nvbuffer1": _Buffer(n), "nvbuffer2": _Buffer(n)}
        c.s["sweep"] = {"v": None, "i": None}
        c.s["trigger_measure"] = None
        c.s["meas_event"] = 0

    def _chan(self, ch: Any) -> Channel:
        return self.ch[int(ch)]

    # smuX.source / smuX.measure / smuX.trigger.* attributes
    def _get(self, ch: int, group: str, key: Any) -> Any:
        c = self._chan(ch)
        if group == "source" and key == "compliance":
            return c.tripped
        if group == "source" and key == "output":
            return 1.0 if c.output else 0.0
        if group == "source" and key in ("rangev", "rangei"):
            return self._source_range(c, key[-1])
        table = c.s.get(group)
        if table is None or key not in table:
            return None
        return table[key]

    def _set(self, ch: int, group: str, key: Any, value: Any) -> None:
        c = self._chan(ch)
        table = c.s.get(group)
        if table is None or key not in table or (group == "source" and key == "compliance"):
            raise TspError(-286, f"TSP Runtime error at line 1: attempt to set unknown or read-only attribute '{key}'")
        x = tsp_number(value, key)
        m = self.MODEL
        if group == "source":
            if key in ("levelv", "limitv", "rangev", "lowrangev", "offlimitv") and abs(x) > m.max_v:
                raise TspError(1100, "Parameter too big")
            if key in ("leveli", "limiti", "rangei", "lowrangei", "offlimiti") and abs(x) > m.max_i:
                raise TspError(1100, "Parameter too big")
            if key in ("levelv", "leveli"):
                self._check_range(c, key[-1], x)
            if key in ("rangev", "rangei"):
                unit = key[-1]
                table["auto" + key] = 0.0
                x = pick_range(m.v_ranges if unit == "v" else m.i_ranges, x)
            if key == "output":
                c.output = x == 1.0
                if not c.output:
                    c.tripped = False
            if key == "func" and x not in (0.0, 1.0):
                raise TspError(1100, "Parameter out of range")
        if group == "measure" and key == "nplc" and not 0.001 <= x <= 25:
            raise TspError(1100, "Parameter too big" if x > 25 else "Parameter too small")
        if group == "measure" and key == "count" and not 1 <= x <= self.MODEL.buffer_points:
            raise TspError(1100, "Parameter out of range")
        table[key] = x

    def _source_range(self, c: Channel, unit: str) -> float:
        src = c.s["source"]
        ranges = self.MODEL.v_ranges if unit == "v" else self.MODEL.i_ranges
        if src["autorange" + unit]:
            return pick_range(ranges, src["level" + unit])
        return src["range" + unit]

    def _check_range(self, c: Channel, unit: str, level: float) -> None:
        src = c.s["source"]
        if not src["autorange" + unit] and abs(level) > src["range" + unit] * self.MODEL.overrange:
            raise TspError(5007, "Source range exceeded")

    def _smu_reset(self, ch: int) -> None:
        self._reset_channel(self._chan(ch))

    # measurements
    def _reading(self, c: Channel) -> tuple[float, float, float]:
        self._check_time()
        src, meas = c.s["source"], c.s["measure"]
        func = "VOLT" if src["func"] == 1.0 else "CURR"
        level = src["levelv"] if func == "VOLT" else src["leveli"]
        limit = src["limiti"] if func == "VOLT" else src["limitv"]
        if meas["delay"] > 0:
            self.clock.advance(meas["delay"])
        r = self.engine.measure(c, func, level, limit, meas["nplc"])
        if r.tripped:
            c.s["meas_event"] |= 2 if func == "VOLT" else 1
        return r.v, r.i, r.t

    def _measure_cb(self, ch: int, what: str, buf1: str | None = None, buf2: str | None = None) -> Any:
        c = self._chan(ch)
        result: Any = None
        for _ in range(int(c.s["measure"]["count"])):
            v, i, t = self._reading(c)
            src = v if c.s["source"]["func"] == 1.0 else i
            values = {"i": (i,), "v": (v,), "r": (v / i if i else 9.91e37,), "p": (v * i,), "iv": (i, v)}[what]
            for ref, value in zip((buf1, buf2), values, strict=False):
                if ref is not None:
                    self._buffer(ref).append(value, src, t - self.timer_zero)
            result = values
        return result if what == "iv" else result[0]

    # buffers
    def _buffer(self, ref: str) -> _Buffer:
        """``"0:nvbuffer1"`` (channel index : buffer name) -> the buffer."""
        ch, _, name = str(ref).partition(":")
        try:
            return self._chan(int(ch)).s["buffers"][name]
        except (KeyError, ValueError, IndexError):
            raise TspError(-286, "TSP Runtime error: reading buffer does not exist") from None

    def _buffer_item(self, ref: str, column: str, index: Any) -> Any:
        data = getattr(self._buffer(ref), column)
        k = int(tsp_number(index, "index"))
        if not 1 <= k <= len(data):
            return None
        return data[k - 1]

    def _buffer_get(self, ref: str, key: str) -> Any:
        b = self._buffer(ref)
        if key == "n":
            return float(len(b.readings))
        if key == "capacity":
            return float(b.capacity)
        return b.fields.get(key)

    def _buffer_set(self, ref: str, key: str, value: Any) -> None:
        b = self._buffer(ref)
        if key not in b.fields:
            raise TspError(-286, f"TSP Runtime error: attempt to set read-only buffer attribute '{key}'")
        b.fields[key] = tsp_number(value, key)

    def _make_buffer(self, ch: int, n: Any) -> str:
        size = int(tsp_number(n, "makebuffer"))
        if not 1 <= size <= self.MODEL.buffer_points:
            raise TspError(1100, "Parameter out of range")
        buffers = self._chan(ch).s["buffers"]
        name = f"buffer{len(buffers) + 1}"
        buffers[name] = _Buffer(size)
        return name

    def _printbuffer(self, first: Any, last: Any, refs: str) -> None:
        i0, i1 = int(tsp_number(first, "printbuffer")), int(tsp_number(last, "printbuffer"))
        columns = []
        for ref in refs.split(","):
            where, _, column = ref.partition("|")
            columns.append(getattr(self._buffer(where), column))
        if not columns:
            raise TspError(-286, "TSP Runtime error: printbuffer needs a reading buffer")
        n = min(len(col) for col in columns)
        if not 1 <= i0 <= i1 <= n:
            raise TspError(1400, "Buffer index out of range")
        values = [col[k] for k in range(i0 - 1, i1) for col in columns]
        kind = self.format["data"]
        if kind == 1.0:
            self._out.append(", ".join(self._format_value(x) for x in values).encode())
        else:  # format.REAL32 / REAL64: "#0" then the raw IEEE floats (2600B manual, format.data)
            order = ">" if self.format["byteorder"] == 1.0 else "<"
            dtype = np.dtype(f"{order}f{4 if kind == 4.0 else 8}")
            self._out.append(b"#0" + np.asarray(values, dtype=dtype).tobytes())

    # trigger model
    def _trigger_sweep(self, ch: int, unit: str, spacing: str, start: Any, stop: Any, points: Any) -> None:
        a, b, n = tsp_number(start, "start"), tsp_number(stop, "stop"), int(tsp_number(points, "points"))
        hi = self.MODEL.max_v if unit == "v" else self.MODEL.max_i
        if max(abs(a), abs(b)) > hi:
            raise TspError(1100, "Parameter too big")
        if n < 1:
            raise TspError(1100, "Parameter too small")
        values = np.geomspace(a, b, n) if spacing == "log" and a * b > 0 else np.linspace(a, b, n)
        self._chan(ch).s["sweep"][unit] = [float(x) for x in values]

    def _trigger_list(self, ch: int, unit: str, table: Any) -> None:
        values = [tsp_number(table[k], "list") for k in range(1, len(table) + 1)]
        hi = self.MODEL.max_v if unit == "v" else self.MODEL.max_i
        if any(abs(x) > hi for x in values):
            raise TspError(1100, "Parameter too big")
        self._chan(ch).s["sweep"][unit] = values

    def _trigger_measure(self, ch: int, what: str, buf1: str | None = None, buf2: str | None = None) -> None:
        self._chan(ch).s["trigger_measure"] = (what, buf1, buf2)

    def _trigger_initiate(self, ch: int) -> None:
        c = self._chan(ch)
        src = c.s["source"]
        unit = "v" if src["func"] == 1.0 else "i"
        sweep = c.s["sweep"][unit]
        source_on = c.s["trigger.source"]["action"] == 1.0
        measure_on = c.s["trigger.measure"]["action"] == 1.0
        count = int(c.s["trigger"]["count"])
        level = src["level" + unit]
        limit_key = "limiti" if unit == "v" else "limitv"
        sweep_limit = c.s["trigger.source"]["limiti" if unit == "v" else "limitv"]
        limit = src[limit_key]
        if sweep_limit:
            src[limit_key] = sweep_limit
        try:
            for _ in range(int(c.s["trigger.arm"]["count"])):
                for k in range(count):
                    if source_on and sweep:
                        src["level" + unit] = sweep[k % len(sweep)]
                    if measure_on and c.s["trigger_measure"] is not None:
                        what, b1, b2 = c.s["trigger_measure"]
                        saved = c.s["measure"]["count"]
                        c.s["measure"]["count"] = 1.0
                        try:
                            self._measure_cb(ch, what, b1, b2)
                        finally:
                            c.s["measure"]["count"] = saved
        finally:
            src[limit_key] = limit
            if c.s["trigger.endsweep"]["action"] == 0.0:
                src["level" + unit] = level

    # errorqueue, status, localnode, format
    def _error_next(self) -> tuple[float, str, float, float]:
        if not self.errors:
            return 0.0, "Queue Is Empty", 0.0, 0.0
        code, message = self.errors.pop(0)
        return float(code), message, 2.0, 0.0

    def _status_get(self, path: str, key: str) -> Any:
        constants = {"VOLTAGE_LIMIT": 1.0, "CURRENT_LIMIT": 2.0, "MSB": 1.0, "EAV": 4.0, "ESB": 32.0, "MSS": 64.0,
                     "OPC": 1.0, "QYE": 4.0, "DDE": 8.0, "EXE": 16.0, "CME": 32.0, "PON": 128.0}
        if key in constants:
            return constants[key]
        if path == "" and key in ("condition", "event"):
            return float(self._status_byte())
        if path == "" and key == "request_enable":
            return float(self.sre)
        if path == "standard" and key in ("event", "condition"):
            value = self.esr
            if key == "event":
                self.esr = 0
            return float(value)
        if path == "standard" and key == "enable":
            return float(self.ese)
        if path.startswith("measurement"):
            chans = self.ch if path in ("measurement", "measurement.instrument") else [self.ch[path.endswith("smub")]]
            if key == "condition":
                bits = 0
                for c in chans:
                    if c.tripped:
                        bits |= 2 if c.s["source"]["func"] == 1.0 else 1
                return float(bits)
            if key == "event":
                bits = 0
                for c in chans:
                    bits |= c.s["meas_event"]
                    c.s["meas_event"] = 0
                return float(bits)
        if key in ("condition", "event", "enable", "ntr", "ptr"):
            return 0.0
        return None

    def _status_set(self, path: str, key: str, value: Any) -> None:
        x = int(tsp_number(value, key))
        if not 0 <= x <= 65535:
            raise TspError(1100, "Parameter out of range")
        if path == "" and key == "request_enable":
            self.sre = x
        elif path == "standard" and key == "enable":
            self.ese = x
        elif key not in ("enable", "ntr", "ptr"):
            raise TspError(-286, f"TSP Runtime error: attempt to set read-only status attribute '{key}'")

    def _status_reset(self) -> None:
        self.ese = self.sre = 0

    def _node_get(self, key: str) -> Any:
        fixed = {"model": "2636B", "serialno": "4321234", "revision": "3.3.5",
                 "description": "System SourceMeter 2636B - 4321234"}
        if key in fixed:
            return fixed[key]
        return self.node.get(key)

    def _node_set(self, key: str, value: Any) -> None:
        if key not in self.node:
            raise TspError(-286, f"TSP Runtime error: attempt to set read-only localnode attribute '{key}'")
        self.node[key] = tsp_number(value, key)

    def _format_get(self, key: str) -> Any:
        constants = {"ASCII": 1.0, "SREAL": 4.0, "REAL32": 4.0, "REAL64": 8.0, "REAL": 8.0, "NORMAL": 1.0,
                     "SWAPPED": 0.0, "LITTLEENDIAN": 0.0, "BIGENDIAN": 1.0, "NETWORK": 1.0}
        return constants.get(key, self.format.get(key))

    def _format_set(self, key: str, value: Any) -> None:
        if key not in self.format:
            raise TspError(-286, f"TSP Runtime error: attempt to set unknown format attribute '{key}'")
        x = tsp_number(value, key)
        if key == "data" and x not in (1.0, 4.0, 8.0):
            raise TspError(1100, "Parameter out of range")
        if key == "byteorder" and x not in (0.0, 1.0):
            raise TspError(1100, "Parameter out of range")
        if key == "asciiprecision" and not 1 <= x <= 16:
            raise TspError(1100, "Parameter out of range")
        self.format[key] = x



def tsp_number(value: Any, what: str) -> float:
    """A Lua number as float; a TspError naming the argument otherwise."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TspError(-286, f"TSP Runtime error: bad argument for {what} (number expected, got {value!r})")
    if not np.isfinite(value):
        raise TspError(1100, "Parameter out of range")
    return float(value)
