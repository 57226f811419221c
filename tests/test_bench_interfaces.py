"""The bench interfaces: drivers satisfy the Protocols structurally, the safety layer exposes exactly the
capabilities of the board it wraps, and a missing capability is one clear line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from xbarlab.drivers.crossbar_board import CrossbarBoard
from xbarlab.drivers.keithley2400 import Keithley2400
from xbarlab.drivers.keithley2450 import Keithley2450
from xbarlab.drivers.keithley2600 import Keithley2600
from xbarlab.drivers.keysight_b2900 import KeysightB2900
from xbarlab.errors import CapabilityError, SafetyAccessError, SafetyLimitError
from xbarlab.instruments.interfaces import (
    ABILITIES,
    BatchedPulses,
    CellReads,
    ClosedLoop,
    CrossbarArray,
    SourceMeter,
    capabilities,
    require,
)
from xbarlab.instruments.safety import BoardLimits, SafeCrossbar
from xbarlab.readings import BoardInfo, Pulse


class Unused:
    """A transport the constructors keep but these tests never use."""

    def __getattr__(self, item):
        raise AssertionError(f"the test touched the transport ({item})")


class PlainBoard(CrossbarArray):
    """A board with only what every board can do (no optional capability)."""

    def __init__(self) -> None:
        self.g = np.full((4, 4), 1e-5)
        self.pulses: list[Pulse] = []

    def identify(self) -> BoardInfo:
        return BoardInfo("plain", 1, 4, 4, "1T1R", 1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.g.shape

    def configure(self, read_voltage: float, tia_range: float) -> None:
        pass

    def read_cell(self, row: int, col: int) -> float:
        return float(self.g[row, col])

    def read_all(self) -> np.ndarray:
        return self.g.copy()

    def mvm_forward(self, row_voltages: np.ndarray) -> np.ndarray:
        return self.g.T @ row_voltages

    def mvm_transpose(self, col_voltages: np.ndarray) -> np.ndarray:
        return self.g @ col_voltages

    def pulse_cell(self, row: int, col: int, amplitude: float, width: float) -> None:
        self.pulses.append(Pulse(row, col, amplitude, width))

    def pulse_batch(self, pulses: list[Pulse]) -> None:
        self.pulses += pulses

    def route_smu(self, port: int, row: int, col: int) -> None:
        pass

    def unroute_smu(self, port: int) -> None:
        pass

    def all_off(self) -> None:
        pass


class BatchingBoard(PlainBoard):
    def pulse_arrays(self, rows, cols, amplitudes, widths, *, readback=False):
        self.pulses += [Pulse(int(r), int(c), float(a), float(w)) for r, c, a, w in
                        zip(rows, cols, np.broadcast_to(amplitudes, np.shape(rows)),
                            np.broadcast_to(widths, np.shape(rows)), strict=True)]


@pytest.mark.parametrize("driver", [
    Keithley2400(Unused(), name="a"), Keithley2450(Unused(), name="b"), KeysightB2900(Unused(), "2", name="c"),
    Keithley2600(Unused(), "b", name="d"),
])
def test_smu_drivers_are_source_meters_without_inheriting(driver):
    assert isinstance(driver, SourceMeter)
    assert SourceMeter not in type(driver).__mro__


def test_the_board_driver_has_every_capability_and_checking_does_not_talk_to_it():
    board = CrossbarBoard(Unused(), name="board")  # any exchange would fail the test
    methods = [n for n in vars(CrossbarArray) if not n.startswith("_") and n != "name"]
    assert "shape" in methods and not [m for m in methods if not hasattr(CrossbarBoard, m)]
    assert list(CrossbarArray.__annotations__) == ["name"] and board.name == "board"
    assert CrossbarArray not in type(board).__mro__
    assert capabilities(board) == tuple(ABILITIES)
    assert SafeCrossbar(board, BoardLimits()).capabilities == tuple(ABILITIES)


def test_the_safety_layer_exposes_exactly_the_drivers_capabilities():
    plain = SafeCrossbar(PlainBoard(), BoardLimits())
    assert plain.capabilities == () and capabilities(plain) == ()
    assert dir(plain) == sorted(type(plain).OPERATIONS)
    for name in ("pulse_arrays", "read_cells", "closed_loop_solve", "outer_product_update", "status"):
        assert name not in type(plain).OPERATIONS
        with pytest.raises(SafetyAccessError, match=f"{name!r} is not an operation"):
            getattr(plain, name)
    batching = SafeCrossbar(BatchingBoard(), BoardLimits())
    assert batching.capabilities == (BatchedPulses,) and isinstance(batching, BatchedPulses)
    assert not isinstance(batching, CellReads) and "pulse_arrays" in dir(batching)
    assert isinstance(plain, SafeCrossbar) and isinstance(batching, SafeCrossbar)
    assert type(SafeCrossbar(BatchingBoard(), BoardLimits())) is type(batching)  # one class per capability set


def test_a_capability_through_the_safety_layer_is_still_checked():
    driver = BatchingBoard()
    board = SafeCrossbar(driver, BoardLimits(max_pulse_amplitude=2.0))
    require(board, BatchedPulses).pulse_arrays(np.array([0, 1]), np.array([0, 0]), 1.5, 1e-6)
    with pytest.raises(SafetyLimitError, match="pulse amplitude"):
        board.pulse_arrays(np.array([0, 1]), np.array([0, 0]), np.array([1.0, 2.5]), 1e-6)
    assert len(driver.pulses) == 2  # the refused batch sent nothing


def test_a_missing_capability_is_one_clear_line():
    board = SafeCrossbar(PlainBoard(), BoardLimits())
    with pytest.raises(CapabilityError) as err:
        require(board, ClosedLoop)
    assert str(err.value) == "this board cannot run the closed-loop (feedback) circuit (board)"
    with pytest.raises(CapabilityError, match=r"^this board cannot read a list of cells in one exchange"):
        require(PlainBoard(), CellReads)


def test_drivers_do_not_import_instruments():
    code = ("import sys, xbarlab.drivers.crossbar_board, xbarlab.drivers.keithley2400, xbarlab.drivers.keithley2450, "
            "xbarlab.drivers.keithley2600, xbarlab.drivers.keysight_b2900; "
            "print(sorted(m for m in sys.modules if m.startswith('xbarlab.instruments')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
