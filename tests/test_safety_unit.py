"""The safety wrappers refuse out-of-limit values before the driver is called."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xbarlab.errors import ConfigError, SafetyLimitError
from xbarlab.instruments.interfaces import Pulse
from xbarlab.instruments.safety import BoardLimits, SafeCrossbar, SafeSourceMeter, SmuLimits


class Spy:
    """Records every call that reaches the 'driver'."""

    name = "spy"

    def __init__(self):
        self.calls = []

    def __getattr__(self, item):
        def record(*args, **kwargs):
            self.calls.append((item, args))
            return None

        return record


def test_smu_limits():
    spy = Spy()
    smu = SafeSourceMeter(spy, SmuLimits(max_voltage=2.0, max_current=1e-3))
    smu.source_voltage(1.5, 1e-4)
    assert spy.calls == [("source_voltage", (1.5, 1e-4))]
    for args in [(2.5, 1e-4), (-2.01, 1e-4), (1.0, 2e-3), (1.0, 0.0), (math.nan, 1e-4), (1.0, math.inf)]:
        with pytest.raises(SafetyLimitError):
            smu.source_voltage(*args)
    with pytest.raises(SafetyLimitError, match="source current"):
        smu.source_current(5e-3, 1.0)
    with pytest.raises(SafetyLimitError, match="compliance voltage"):
        smu.source_current(1e-4, 3.0)
    with pytest.raises(SafetyLimitError, match="sweep stop"):
        smu.sweep_voltage(0, 3.0, 11, 1e-4)
    with pytest.raises(SafetyLimitError, match="sweep points"):
        smu.sweep_voltage(0, 1.0, 100000, 1e-4)
    assert len(spy.calls) == 1, "nothing out of limits reached the driver"


def test_error_message_names_limit_and_value():
    smu = SafeSourceMeter(Spy(), SmuLimits(max_voltage=2.0))
    with pytest.raises(SafetyLimitError) as err:
        smu.source_voltage(3.0, 1e-4)
    assert "source voltage (V) = 3" in str(err.value)
    assert "|source voltage (V)| <= 2" in str(err.value)
    assert "nothing was sent" in str(err.value)


def test_board_limits():
    spy = Spy()
    board = SafeCrossbar(spy, BoardLimits(max_pulse_amplitude=2.0, max_mvm_voltage=0.3))
    board.pulse_cell(0, 0, 1.9, 1e-6)
    with pytest.raises(SafetyLimitError):
        board.pulse_cell(0, 0, 2.1, 1e-6)
    with pytest.raises(SafetyLimitError, match="pulse width"):
        board.pulse_cell(0, 0, 1.0, 1.0)
    with pytest.raises(SafetyLimitError, match="MVM row voltage"):
        board.mvm_forward(np.array([0.1, 0.31]))
    with pytest.raises(SafetyLimitError):
        board.mvm_transpose(np.array([0.1, np.nan]))
    # a batch is checked whole before its first pulse is sent
    with pytest.raises(SafetyLimitError):
        board.pulse_batch([Pulse(0, 0, 1.0, 1e-6), Pulse(0, 1, -2.5, 1e-6)])
    with pytest.raises(SafetyLimitError, match="read voltage"):
        board.configure(0.6, 1e-3)
    with pytest.raises(SafetyLimitError, match="TIA range"):
        board.configure(0.2, 1.0)
    assert [c[0] for c in spy.calls] == ["pulse_cell"]


def test_no_backdoor_through_getattr():
    board = SafeCrossbar(Spy(), BoardLimits())
    with pytest.raises(AttributeError):
        board.pulse_raw  # noqa: B018
    smu = SafeSourceMeter(Spy(), SmuLimits())
    with pytest.raises(AttributeError):
        smu.source_level  # noqa: B018


def test_invalid_limits_rejected():
    with pytest.raises(ConfigError):
        SmuLimits(max_voltage=-1)
    with pytest.raises(ConfigError):
        BoardLimits(min_pulse_width=1e-3, max_pulse_width=1e-6)
