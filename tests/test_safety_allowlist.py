"""Safety is an allowlist: the station hands out checked operations and read-only queries only.

* every public member of every object the station hands out is registered as a checked
  operation or a read-only query (a method added later without registration fails here);
* every bypass attempt of issue 11 §1 is refused with a clear error, and nothing reaches the
  emulated instruments (observed by a tap on the emulators' input, not through our drivers).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import struct
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from safety_bench import bench_text

from xbarlab.errors import SafetyAccessError, SafetyLimitError, XbarlabError
from xbarlab.instruments.interfaces import Pulse
from xbarlab.instruments.safety import (
    BoardLimits,
    ExpertRawBoard,
    ExpertRawSmu,
    SafeCrossbar,
    SafeSourceMeter,
    SmuLimits,
)
from xbarlab.instruments.station import Station
from xbarlab.protocol import board as bp

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def station():
    s = Station.from_text(bench_text())
    yield s
    s.close()


@pytest.fixture()
def received(station):
    """Every byte any emulated instrument receives while the test runs, by instrument."""
    seen: dict[str, bytearray] = {}
    taps = []
    for name, emulator in station.sim.emulators.items():
        buf = seen.setdefault(name, bytearray())

        def tap(data: bytes, buf: bytearray = buf) -> None:
            buf.extend(data)

        emulator.add_tap(tap)
        taps.append((emulator, tap))
    yield seen
    for emulator, tap in taps:
        emulator.remove_tap(tap)


# -- the allowlist --------------------------------------------------------------------------------------
_IMMUTABLE = (str, int, float, bool, tuple, frozenset, type(None), MappingProxyType)


def unregistered(obj: Any) -> list[str]:
    """Public members of ``obj`` that its class does not register, or that are mutable data."""
    registry = type(obj).OPERATIONS
    problems = []
    names = {n for n in dir(type(obj)) if not n.startswith("_")} | {n for n in dir(obj) if not n.startswith("_")}
    for name in sorted(names):
        if name not in registry:
            problems.append(f"{type(obj).__name__}.{name} is neither a checked operation nor a query")
            continue
        desc = registry[name]
        if not (desc.startswith(("checked:", "query:")) or type(obj) is Station):
            problems.append(f"{type(obj).__name__}.{name}: registry entry {desc!r} is not 'checked:' or 'query:'")
        if isinstance(obj, (SafeSourceMeter, SafeCrossbar, ExpertRawSmu, ExpertRawBoard)):
            value = getattr(obj, name)
            if not callable(value) and not (isinstance(value, _IMMUTABLE) or _frozen(value)):
                problems.append(f"{type(obj).__name__}.{name} returns mutable {type(value).__name__}")
    for name in registry:
        if name not in names:
            problems.append(f"{type(obj).__name__}: registered {name!r} does not exist")
    return problems


def _frozen(value: Any) -> bool:
    params = getattr(type(value), "__dataclass_params__", None)
    return bool(params and params.frozen)


def handed_out(station: Station) -> list[Any]:
    objs: list[Any] = [station, station.require_board(), station.board]
    objs += [station.smu(n) for n in station.smus] + list(station.smus.values()) + [station.smu()]
    objs += [station.expert_raw(n) for n in station.config.instruments]
    return objs


def test_every_public_member_is_a_registered_checked_operation_or_query(station):
    problems = [p for obj in handed_out(station) for p in unregistered(obj)]
    assert not problems, "\n".join(problems)
    assert all(isinstance(s, SafeSourceMeter) for s in station.smus.values())
    assert isinstance(station.expert_raw("smu2"), ExpertRawSmu) and isinstance(station.expert_raw("board"),
                                                                               ExpertRawBoard)
    assert isinstance(station.board, SafeCrossbar)


def test_the_enumeration_catches_a_method_added_later(station):
    class Extended(SafeCrossbar):
        __slots__ = ()

        def write_raw(self, frame: bytes) -> None:  # a new, unchecked method
            raise NotImplementedError

    board = Extended.__new__(Extended)
    object.__setattr__(board, "_name", "board")
    object.__setattr__(board, "_limits", BoardLimits())
    object.__setattr__(board, "_gate", lambda *a, **k: None)
    assert unregistered(board) == ["Extended.write_raw is neither a checked operation nor a query"]


def test_every_checked_operation_exists_on_the_driver_side_of_the_gate():
    """The gate tables and the public registries name the same operations (no silent passthrough)."""
    from xbarlab.instruments import safety

    full_board = safety.safe_crossbar_class()  # a board with every optional capability
    expert = {SafeSourceMeter: {"expert_send", "expert_ask"}, full_board: {"expert_exchange"}}
    for cls, table in ((SafeSourceMeter, safety._SMU_OPERATIONS), (full_board, safety._BOARD_OPERATIONS)):
        public = set(cls.OPERATIONS) - {"name", "limits", "OPERATIONS", "capabilities"} | expert[cls]
        assert public == set(table), (cls.__name__, public ^ set(table))


def test_no_xbarlab_code_digs_under_the_safety_layer():
    """Interpreter introspection is the one way left to the driver: no module of xbarlab may use it."""
    pattern = re.compile(r"__closure__|cell_contents|gc\.get_referents|object\.__getattribute__\((?!self)")
    offenders = []
    for path in sorted((REPO / "xbarlab").rglob("*.py")):
        if path.name == "safety.py" and path.parent.name == "instruments":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


# -- the attempts of issue 11 §1 -----------------------------------------------------------------------------
def _frame(op: bp.Op, payload: bytes) -> bytes:
    return bp.encode_request(op, 7, payload)


def _all_cells(b: Any) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = b.shape
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return r.ravel(), c.ravel()


def _gate(obj: Any) -> Callable[..., Any]:
    return object.__getattribute__(obj, "_gate")


#: (instrument, attempt): every route listed in issue 11 §1, on every SMU model where it applies
ATTEMPTS: list[tuple[str, Callable[[Station], Any]]] = []
for _smu in ("smu1", "smu2", "smu3", "smu4"):
    ATTEMPTS += [
        (_smu, lambda st, n=_smu: st.smu(n).configure(":SOUR:VOLT:LEV 50", ":OUTP ON")),
        (_smu, lambda st, n=_smu: st.smu(n).configure(":SENS:CURR:PROT 1")),
        (_smu, lambda st, n=_smu: st.smu(n).query(":SOUR:VOLT:LEV 60;:OUTP ON;:READ?")),
        (_smu, lambda st, n=_smu: st.smu(n).write(":SOUR:VOLT:LEV 50")),
        (_smu, lambda st, n=_smu: st.smu(n).transport.write(":SOUR:VOLT:LEV 50")),
        (_smu, lambda st, n=_smu: st.smu(n).inner.source_voltage(80, 0.5)),
        (_smu, lambda st, n=_smu: st.smu(n)._send("smua.source.levelv = 50")),
        (_smu, lambda st, n=_smu: st.smu(n).configure(":SOUR1:VOLT 50")),
        (_smu, lambda st, n=_smu: st.smus[n]._driver),
        (_smu, lambda st, n=_smu: _gate(st.smu(n))("configure", ":SOUR:VOLT 50")),
        (_smu, lambda st, n=_smu: _gate(st.smu(n))("source_voltage", 50, 1e-3)),
        (_smu, lambda st, n=_smu: st.smu(n).source_voltage(50, 1e-3)),
        (_smu, lambda st, n=_smu: st.smu(n).source_voltage(1.0, 1.0)),
        (_smu, lambda st, n=_smu: st.smu(n).source_current(0.5, 1.0)),
        (_smu, lambda st, n=_smu: st.smu(n).source_current(1e-4, 80.0)),
        (_smu, lambda st, n=_smu: st.smu(n).sweep_voltage(0.0, 50.0, 11, 1e-4)),
        (_smu, lambda st, n=_smu: st.smu(n).sweep_voltage(0.0, 1.0, 11, 1.0)),
    ]
_B = "board"
ATTEMPTS += [
    (_B, lambda st: st.board.closed_loop_solve(np.full(4, 0.9))),
    (_B, lambda st: st.board.closed_loop_eigen(float("nan"), 4)),
    (_B, lambda st: st.board.inner.pulse_cell(0, 0, 9.0, 1e-6)),
    (_B, lambda st: st.board.inner.pulse_cell(0, 0, 1.0, 0.5)),
    (_B, lambda st: st.board.inner.pulse_arrays(*_all_cells(st.board), 9.9, 1e-6)),
    (_B, lambda st: st.board.inner.outer_product_update(np.ones((8, 1)), np.ones((8, 1)), 9.0, 1e-6)),
    (_B, lambda st: st.board.inner.mvm_forward(np.full(8, 0.95))),
    (_B, lambda st: st.board.inner.configure(0.95, 1e-3)),
    (_B, lambda st: st.board.transport.write(_frame(bp.Op.PULSE, bp.pack_pulse(0, 0, 9.0, 1000)))),
    (_B, lambda st: st.board._exchange(bp.Op.PULSE, bp.pack_pulse(0, 0, 9.0, 1000))),
    (_B, lambda st: _gate(st.board)("_exchange", bp.Op.PULSE, b"")),
    (_B, lambda st: st.board.pulse_cell(0, 0, 9.0, 1e-6)),
    (_B, lambda st: st.board.pulse_cell(0, 0, 1.0, 0.5)),
    (_B, lambda st: st.board.pulse_batch([Pulse(0, 0, 1.0, 1e-6), Pulse(1, 1, 9.0, 1e-6)])),
    (_B, lambda st: st.board.pulse_arrays(*_all_cells(st.board), 9.9, 1e-6)),
    (_B, lambda st: st.board.outer_product_update(np.ones((8, 1)), np.ones((8, 1)), 9.0, 1e-6)),
    (_B, lambda st: st.board.mvm_forward(np.full(8, 0.95))),
    (_B, lambda st: st.board.mvm_transpose(np.full(8, 0.95))),
    (_B, lambda st: st.board.configure(0.95, 1e-3)),
    (_B, lambda st: st.board.configure(0.2, 1.0)),
    (_B, lambda st: st.board.route_smu(3, 0, 0)),  # no station SMU on port 3: its limits are unknown
]


def _expert_attempts() -> list[tuple[str, Callable[[Station], Any]]]:
    out: list[tuple[str, Callable[[Station], Any]]] = []
    scpi = [":SOUR:VOLT:LEV 50", ":SENS:CURR:PROT 1", ":SOUR:VOLT:LEV 60;:OUTP ON;:READ?", ":SOUR1:VOLT 50",
            ":SOUR:FUNC VOLT;:SENS:CURR:PROT 1e-4;:SOUR:VOLT 50", ":SOUR:VOLT MAX", "*RCL 1",
            ":SENS:CURR:PROT 1e-4;:SOUR:FUNC VOLT;:SOUR:VOLT 1;LEV 50", ":OUTP ON", ":SOUR:VOLT 1",
            ":SENS:VOLT:PROT 5;:SOUR:FUNC CURR;:SOUR:CURR 0.5", ":SOUR:FUNC CURR;:OUTP ON"]
    tsp = ["smua.source.levelv = 50", "smua.source.limiti = 1", "smua.source.output = smua.OUTPUT_ON",
           "smua.source.func = smua.OUTPUT_DCVOLTS; smua.source.limiti = 1e-4; smua.source.levelv = 50",
           "for i = 1, 10 do smua.source.levelv = i end", "smub.source.levelv = 1", "loadscript x",
           "smua.source.limiti = 1e-4; smua.source.func = 1; smua.source.levelv = 2 * 30"]
    for n in ("smu1", "smu3", "smu4"):
        out += [(n, lambda st, n=n, m=m: st.expert_raw(n).send(m)) for m in scpi]
    out += [("smu2", lambda st, m=m: st.expert_raw("smu2").send(m)) for m in tsp]
    frames = [(bp.Op.PULSE, bp.pack_pulse(0, 0, 9.0, 1000)), (bp.Op.PULSE, bp.pack_pulse(0, 0, 1.0, 500_000_000)),
              (bp.Op.MVM_FORWARD, bp.pack_vector(np.full(8, 0.95))),
              (bp.Op.CONFIGURE, bp.Configuration(8, 8, 0.95, 1e-3).pack()), (0x7F, b""),
              (bp.Op.CLOSED_LOOP_SOLVE, bp.pack_closed_loop_solve(bp.ClosedLoopBlock(2, 0, 0, "differential"),
                                                                   np.full(2, 0.9)))]
    out += [(_B, lambda st, f=f: st.expert_raw("board").exchange(*f)) for f in frames]
    return out


ATTEMPTS += _expert_attempts()


def _limits_attempts() -> list[tuple[str, Callable[[Station], Any]]]:
    out: list[tuple[str, Callable[[Station], Any]]] = []
    for n in ("smu1", "smu2", "smu3", "smu4"):
        out.append((n, lambda st, n=n: setattr(st.smu(n), "limits", SmuLimits(max_voltage=100.0))))
    out.append((_B, lambda st: setattr(st.board, "limits", BoardLimits(max_pulse_amplitude=20.0))))
    out.append((_B, lambda st: setattr(st, "board", None)))
    out.append((_B, lambda st: st.smus.__setitem__("smu1", None)))
    out.append(("station", lambda st: setattr(st, "config", None)))
    return out


ATTEMPTS += _limits_attempts()


@pytest.mark.parametrize("index", range(len(ATTEMPTS)), ids=[f"{i}-{a[0]}" for i, a in enumerate(ATTEMPTS)])
def test_each_bypass_attempt_is_refused_and_nothing_arrives(station, received, index):
    instrument, attempt = ATTEMPTS[index]
    with pytest.raises((XbarlabError, AttributeError, TypeError)) as err:
        attempt(station)
    message = str(err.value)
    assert message and "\n" not in message.strip()
    if isinstance(err.value, XbarlabError):
        assert instrument in message or "board" in message or "smus" in message
    arrived = {name: bytes(buf) for name, buf in received.items() if buf}
    assert not arrived, f"bytes reached the emulators: {arrived}"
    assert station.smu("smu1").limits == SmuLimits(max_voltage=5.0, max_current=1e-3)
    assert isinstance(station.board, SafeCrossbar) and isinstance(station.smus["smu1"], SafeSourceMeter)


def test_the_number_of_attempts_blocked(station):
    """The regression list holds every route of the issue on every SMU model (N of N must be blocked)."""
    assert len(ATTEMPTS) >= 51
    assert len(ATTEMPTS) == 147


def test_limits_cannot_be_changed_even_below_the_public_api(station, received):
    """Mutating the frozen limits object (object.__setattr__) or the wrapper's slot changes what is
    reported, never what is checked: the gate holds its own copy."""
    smu = station.smu("smu3")
    frozen = smu.limits
    with pytest.raises(dataclasses.FrozenInstanceError):
        frozen.max_voltage = 100.0  # type: ignore[misc]
    copy = dataclasses.replace(frozen)
    try:
        object.__setattr__(frozen, "max_voltage", 100.0)
        object.__setattr__(smu, "_limits", SmuLimits(max_voltage=100.0))
        with pytest.raises(SafetyLimitError, match="source voltage"):
            smu.source_voltage(50.0, 1e-3)
    finally:
        object.__setattr__(frozen, "max_voltage", copy.max_voltage)
        object.__setattr__(smu, "_limits", frozen)
    assert not any(received.values())


def test_refusals_name_the_problem_in_one_line(station):
    with pytest.raises(SafetyAccessError, match=r"smu1: 'configure' is not an operation of the safety layer"):
        station.smu("smu1").configure(":SOUR:VOLT 50")
    with pytest.raises(SafetyAccessError, match=r"smu1: 'limits' is read-only"):
        station.smu("smu1").limits = SmuLimits()  # type: ignore[misc]
    with pytest.raises(SafetyLimitError, match=r"board: closed-loop input voltage \(V\) = 0.9 .*nothing was sent"):
        station.board.closed_loop_solve(np.full(4, 0.9))
    assert dir(station.smu("smu1")) == sorted(SafeSourceMeter.OPERATIONS)
    with pytest.raises(TypeError, match="cannot be pickled"):
        import copy

        copy.copy(station.board)


def test_closed_loop_is_refused_while_the_board_rail_exceeds_the_limit(received):
    """The op-amp outputs drive the array up to the board's rail: a 0.9 V rail on a 0.5 V bench is refused
    before any closed-loop frame is sent (only the CLOSED_LOOP_INFO query reaches the board)."""
    with Station.from_text(bench_text(rail=0.9)) as st:
        frames: list[int] = []
        buf = bytearray()

        def tap(data: bytes) -> None:
            buf.extend(data)
            frames.extend(f.opcode for f in bp.split_frames(buf) if not isinstance(f, Exception))

        st.sim.board.add_tap(tap)
        for attempt in (lambda: st.board.closed_loop_solve(np.zeros(4)),
                        lambda: st.board.closed_loop_eigen(1e-5, 4),
                        lambda: st.board.closed_loop_solve(np.full(2, 0.1), row0=2, col0=2)):
            with pytest.raises(SafetyLimitError, match=r"closed-loop output rail \(V\) = 0.9"):
                attempt()
        assert frames == [bp.Op.CLOSED_LOOP_INFO]
        assert st.board.closed_loop_info().rail == pytest.approx(0.9)
    with Station.from_text(bench_text(rail=0.45)) as st:
        reading = st.board.closed_loop_solve(np.zeros(2))
        assert np.all(np.abs(reading.voltages) <= 0.45 + 1e-6)


def test_safe_objects_keep_their_interfaces_signatures():
    """Typed operations keep the driver-facing signatures callers use (keyword names included)."""
    from xbarlab.instruments.safety import safe_crossbar_class

    board_cls = safe_crossbar_class()
    sig = inspect.signature(board_cls.closed_loop_solve)
    assert list(sig.parameters) == ["self", "inputs", "row0", "col0", "layout"]
    sig = inspect.signature(board_cls.pulse_arrays)
    assert "readback" in sig.parameters
    assert struct.calcsize("<ff") == 8  # CLOSED_LOOP_INFO reply
