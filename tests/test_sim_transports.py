"""Ways into the simulated bench: in-process VISA, xbarsim:// serial, loopback sockets."""

from __future__ import annotations

import time

import pytest
import pyvisa
import serial

from xbarlab.drivers.crossbar_board import CrossbarBoard
from xbarlab.drivers.keithley2400 import Keithley2400
from xbarlab.drivers.transport import SerialTransport, VisaTransport
from xbarlab.instruments.config import parse_station
from xbarlab.sim.bench import SimBench
from xbarlab.sim.server import BenchServer
from xbarlab.sim.stations import sim_station_text


@pytest.fixture
def bench():
    b = SimBench.from_station(parse_station(sim_station_text(8, 8)))
    yield b
    b.close()


def test_in_process_visa_identify_and_fast_timeout(bench):
    rm = pyvisa.ResourceManager(f"{bench.bench_id}@xbarsim")
    assert "GPIB0::24::INSTR" in rm.list_resources()
    res = rm.open_resource("GPIB0::24::INSTR", read_termination="\n", write_termination="\n", timeout=2000)
    assert res.query("*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
    t = time.perf_counter()
    with pytest.raises(pyvisa.errors.VisaIOError):
        res.read()
    assert time.perf_counter() - t < 0.5  # nothing pending: a timeout at once, no sleeping
    with pytest.raises(pyvisa.errors.VisaIOError):
        rm.open_resource("GPIB0::9::INSTR")


def test_xbarsim_serial_url_reaches_the_board(bench):
    port = serial.serial_for_url(bench.serial_url("board"), timeout=0.5)
    board = CrossbarBoard(SerialTransport(port))
    info = board.identify()
    assert (info.rows, info.cols) == (8, 8)
    with pytest.raises(serial.SerialException, match="no instrument"):
        serial.serial_for_url(f"xbarsim://{bench.bench_id}/nothing")


def test_serve_answers_pyvisa_py_and_pyserial_on_loopback(bench):
    with BenchServer(bench) as server:
        rm = pyvisa.ResourceManager("@py")
        res = rm.open_resource(server.addresses["smu1"], read_termination="\n", write_termination="\n",
                               timeout=5000)
        assert res.query("*IDN?").startswith("KEITHLEY INSTRUMENTS INC.,MODEL 2400")
        # a source-measure sequence through the driver: the SMU routed to a cell measures that cell
        port = serial.serial_for_url(server.addresses["board"], timeout=5)
        board = CrossbarBoard(SerialTransport(port))
        board.configure(0.2, 1e-3)
        smu = Keithley2400(VisaTransport(res), name="smu1")
        board.route_smu(0, 2, 3)
        smu.source_voltage(0.1, 1e-4)
        smu.set_output(True)
        i = smu.measure_current()
        smu.set_output(False)
        g_true = bench.model.conductance_map()[2, 3]
        assert i == pytest.approx(g_true * 0.1, rel=0.05)
        port.close()
        res.close()


def test_serve_refuses_non_loopback(bench):
    with pytest.raises(ValueError, match="loopback only"):
        BenchServer(bench, host="8.8.8.8")
