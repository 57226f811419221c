"""SerialTransport on pyserial socket:// ports and the per-connection BenchServer threads."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest
import serial

from xbarlab.drivers.crossbar_board import CrossbarBoard
from xbarlab.drivers.transport import SerialTransport
from xbarlab.errors import TransportError, TransportTimeout
from xbarlab.instruments.config import parse_station
from xbarlab.sim.bench import SimBench
from xbarlab.sim.server import BenchServer
from xbarlab.sim.stations import sim_station_text


class Peer:
    """A loopback TCP peer whose side of the connection the test drives by hand."""

    def __init__(self) -> None:
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen()
        self.url = f"socket://127.0.0.1:{self.lsock.getsockname()[1]}"
        self.conn: socket.socket | None = None
        self._accepted = threading.Thread(target=self._accept, daemon=True)
        self._accepted.start()

    def _accept(self) -> None:
        self.conn, _ = self.lsock.accept()

    def wait(self) -> socket.socket:
        self._accepted.join(timeout=5)
        assert self.conn is not None
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.lsock.close()


@pytest.fixture
def peer():
    p = Peer()
    yield p
    p.close()


def test_socket_reads_split_one_arrival_and_keep_the_rest(peer):
    t = SerialTransport(serial.serial_for_url(peer.url, timeout=2))
    conn = peer.wait()
    t.write(b"ping")
    assert conn.recv(16) == b"ping"
    assert t._socket() is not None  # the fast path is in use on socket:// ports
    assert t._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    conn.sendall(b"0123456789abcdef")
    assert t.read(4) == b"0123"
    assert t.read(10) == b"456789abcd"
    conn.sendall(b"XYZ")
    assert t.read(5) == b"efXYZ"  # kept bytes first, then the next arrival
    conn.sendall(b"junk-read-ahead")
    assert t.read(2) == b"ju"  # the rest arrived with it and waits in the transport
    t.reset_input()  # drops what arrived unread, including the bytes read ahead
    conn.sendall(b"fresh")
    assert t.read(5) == b"fresh"
    t.close()


def test_socket_read_times_out_and_reports_disconnects(peer):
    t = SerialTransport(serial.serial_for_url(peer.url, timeout=0.05))
    conn = peer.wait()
    conn.sendall(b"abc")
    start = time.monotonic()
    with pytest.raises(TransportTimeout, match="expected 8 bytes, got 3"):
        t.read(8)
    assert time.monotonic() - start < 1.0
    conn.sendall(b"12")
    assert t.read(2) == b"12"  # the short read was consumed, like pyserial's
    conn.close()
    with pytest.raises(TransportError, match="disconnected"):
        t.read(1)
    t.close()


def test_served_board_mvm_matches_the_in_process_port_bit_for_bit():
    text = sim_station_text(16, 12, seed=4)
    a = SimBench.from_station(parse_station(text))
    b = SimBench.from_station(parse_station(text))
    x = np.random.default_rng(1).uniform(-0.1, 0.1, 16)
    with BenchServer(a) as server:
        remote = CrossbarBoard(SerialTransport(serial.serial_for_url(server.addresses["board"], timeout=5)))
        local = CrossbarBoard(SerialTransport(serial.serial_for_url(b.serial_url("board"), timeout=5)))
        for board in (remote, local):
            board.configure(0.2, 1e-3)
        for _ in range(3):
            r, loc = remote.mvm_forward_reading(x), local.mvm_forward_reading(x)
            assert r.currents.tobytes() == loc.currents.tobytes()
            assert remote.status().board_time == local.status().board_time
        threads = list(server._conns.values())
        assert threads and all(t.is_alive() for t in threads)
    assert not any(t.is_alive() for t in threads)  # stop() ends the connection threads
    a.close()
    b.close()


@pytest.mark.parametrize("wire_resistance", [0.35, 0.0])
@pytest.mark.parametrize("scale", [0.1, 0.9])  # 0.9 V clips the ADC
def test_mvm_saturation_mask_marks_exactly_the_samples_at_full_scale(wire_resistance, scale):
    """Through the driver: the mask flags the samples within 1.5 LSB of the TIA full scale, the raising
    call raises exactly when one is flagged, and the clip-free samples are the same either way."""
    from xbarlab.readings import AdcSaturationError

    bench = SimBench.from_station(parse_station(sim_station_text(12, 10, seed=7, wire_resistance=wire_resistance)))
    board = CrossbarBoard(SerialTransport(serial.serial_for_url(bench.serial_url("board"), timeout=5)))
    board.configure(0.2, 1e-4)
    fs, lsb = 1e-4, 2e-4 / (1 << board.hardware.adc_bits)
    x = np.random.default_rng(3).uniform(-scale, scale, 12)
    for reading, plain in ((board.mvm_forward_reading, board.mvm_forward),
                           (board.mvm_transpose_reading, board.mvm_transpose)):
        v = x[:10] if reading == board.mvm_transpose_reading else x
        r = reading(v)
        assert r.saturated.tolist() == (np.abs(r.currents) >= fs - 1.5 * lsb).tolist()
        assert r.saturated.any() == (scale > 0.5)
        try:
            plain(v)
            clipped = False
        except AdcSaturationError as exc:
            clipped = True
            assert exc.saturated.tolist() == r.saturated.tolist()
        assert clipped == r.saturated.any()
    board.close()
    bench.close()


def test_measurement_mask_round_trips_with_and_without_clipped_samples():
    from xbarlab.protocol import board as bp

    rng = np.random.default_rng(2)
    for n in (1, 7, 8, 9, 64):
        values = rng.normal(size=n).astype(np.float32)
        for mask in (np.zeros(n, bool), rng.random(n) < 0.3, np.eye(1, n, n - 1, dtype=bool)[0]):
            payload = bp.pack_measurement(values, mask)
            for buf in (payload, bytearray(payload), memoryview(payload)):
                got_values, got_mask = bp.unpack_measurement(buf, n)
                assert got_values.tobytes() == values.tobytes()
                assert got_mask.dtype == bool and got_mask.tolist() == mask.tolist()
