"""`xbarlab sim serve`: per-connection state and a bounded input buffer with an error reply."""

from __future__ import annotations

import socket

import pytest

from xbarlab.instruments.config import parse_station
from xbarlab.protocol import board as bp
from xbarlab.sim.bench import SimBench
from xbarlab.sim.server import BenchServer
from xbarlab.sim.stations import sim_station_text


@pytest.fixture
def served():
    bench = SimBench.from_station(parse_station(sim_station_text(8, 8)))
    with BenchServer(bench) as server:
        yield bench, server
    bench.close()


def _connect(server: BenchServer, name: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.ports[name]), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, "server closed the connection"
        data += chunk
    return data


def _frame(sock: socket.socket) -> bp.Frame:
    head = b""
    while len(head) < bp.OVERHEAD:
        head += sock.recv(bp.OVERHEAD - len(head))
    data = head
    frames = []
    while not frames:
        frames = [f for f in bp.split_frames(bytearray(data)) if isinstance(f, bp.Frame)]
        if not frames:
            data += sock.recv(65536)
    return frames[0]


def test_partial_line_of_a_departed_client_never_reaches_the_next(served):
    _, server = served
    first = _connect(server, "smu1")
    first.sendall(b":SOUR:VOLT:LEV 0.1;:OUTP")  # no newline: then the client goes away
    first.close()
    second = _connect(server, "smu1")
    second.sendall(b"*IDN?\n")
    assert _line(second).startswith(b"KEITHLEY INSTRUMENTS INC.,MODEL 2400")
    second.sendall(b":SYST:ERR?\n")
    assert _line(second).startswith(b"0,")  # the fragment was never executed: no error either
    second.close()


def test_two_clients_interleaving_partial_lines_each_get_their_own_reply(served):
    _, server = served
    a, b = _connect(server, "smu1"), _connect(server, "smu1")
    a.sendall(b"*ID")
    b.sendall(b":SYST:ERR?\n")
    assert _line(b).startswith(b"0,")
    a.sendall(b"N?\n")
    assert _line(a).startswith(b"KEITHLEY")
    a.close()
    b.close()


def test_overlong_line_is_dropped_and_queued_as_input_overrun(served):
    bench, server = served
    sock = _connect(server, "smu1")
    chunk = b"A" * 65536
    for _ in range(64):  # 4 MiB without a newline
        sock.sendall(chunk)
    sock.sendall(b"tail of the same line\n*IDN?\n")
    assert _line(sock).startswith(b"KEITHLEY")
    sock.sendall(b":SYST:ERR?\n")
    assert _line(sock).startswith(b"-363,")
    sock.sendall(b":SYST:ERR?\n")
    assert _line(sock).startswith(b"0,")  # one overrun, one entry
    sock.close()
    assert len(bench.emulators["smu1"]._inbuf) == 0


@pytest.mark.parametrize(("model", "query", "expected"), [
    ("keithley2400", b":SYST:ERR?\n", b"-363,"),
    ("keysight_b2900", b":SYST:ERR?\n", b"-363,"),
    ("keithley2450", b":SYST:ERR?\n", b"-363,"),
    ("keithley2600", b"print(errorqueue.next())\n", b"-3.63000e+02\tInput buffer overrun"),
])
def test_emulator_bounds_its_own_input_buffer_in_process(model, query, expected):
    """The same bound behind the in-process transports: a buffer never grows past max_input."""
    from xbarlab.sim import smu_scpi, smu_tsp

    emu = {"keithley2400": smu_scpi.Keithley2400Emulator, "keysight_b2900": smu_scpi.KeysightB2900Emulator,
           "keithley2450": smu_scpi.Keithley2450Emulator, "keithley2600": smu_tsp.Keithley2600Emulator}[model]()
    for _ in range(40):
        emu.feed(b"B" * 10_000)
        assert len(emu._inbuf) <= emu.max_input
    emu.feed(b"\n" + query)
    assert emu.read_output().startswith(expected)


def test_partial_board_frame_of_a_departed_client_is_dropped(served):
    _, server = served
    frame = bp.encode_frame(bp.Op.IDENTIFY, 7, b"")
    first = _connect(server, "board")
    first.sendall(frame[: len(frame) // 2])
    first.close()
    second = _connect(server, "board")
    second.sendall(frame)
    reply = _frame(second)
    assert reply.seq == 7 and reply.status == bp.Status.OK  # the half frame did not swallow this one
    second.close()


def test_oversized_board_frame_gets_an_error_frame_and_no_growth(served):
    bench, server = served
    sock = _connect(server, "board")
    huge = bytearray(bp.encode_frame(bp.Op.PULSE, 3, b"\x00" * 16))
    huge[8:12] = (0x7FFFFFFF).to_bytes(4, "little")  # length field after sync, version, op, seq, status, flags
    sock.sendall(bytes(huge) + b"\x00" * (1 << 20))  # a header claiming 2 GiB, then 1 MiB of payload
    reply = _frame(sock)
    assert reply.status == bp.Status.ERROR
    assert len(bench.board._inbuf) <= bench.board.limits.max_payload + bp.OVERHEAD
    sock.close()


@pytest.mark.parametrize(("argv", "word"), [
    (["--host", "8.8.8.8"], "loopback only"),
    (["--base-port", "70000"], "0..65535"),
])
def test_sim_serve_bad_options_are_one_line(argv, word, capsys):
    from xbarlab.cli import main

    assert main(["sim", "serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and word in err


def test_sim_serve_port_in_use_is_one_line(capsys):
    from xbarlab.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["sim", "serve", "--base-port", str(taken.getsockname()[1])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot listen" in err
