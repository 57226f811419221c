"""Full-stack cost of a 64×64 forward MVM against a raw pyserial round trip of the same bytes.

Full stack: CrossbarBoard driver → pyserial ``socket://`` → `xbarlab sim serve` board
emulator → periphery → array physics, and back. Reference: the same pyserial
``socket://`` client exchanging the same request and reply sizes with a plain loopback
TCP thread (TCP_NODELAY) — the transport floor (see ../shared BENCHMARKS.md). Both are
timed in the same process, interleaved, several repetitions, medians.

Reported twice: with the default station physics (0.35 Ω wire segments: IR drop from the
nodal network) and with ideal wires (wire_resistance = 0), which isolates the software
stack from the physics. Also: the in-process ``xbarsim://`` path (ideal wires and default
physics), the emulator alone (request bytes in, reply bytes out, no transport), and a 256×256
MVM with the IR-drop solve against the ideal numpy product. ``ratio_paired`` is the median of
the per-repetition ratios (each full-stack batch against the raw batch timed just before it),
which holds better than the ratio of medians when other work loads the machine.

Usage: python benchmarks/stack_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import threading
import time

import numpy as np
import serial

from xbarlab.drivers.crossbar_board import CrossbarBoard
from xbarlab.drivers.transport import ByteTransport, SerialTransport
from xbarlab.instruments.config import parse_station
from xbarlab.protocol.board import Op, encode_request, pack_vector
from xbarlab.sim.array import CrossbarModel
from xbarlab.sim.bench import SimBench
from xbarlab.sim.devices import make_device
from xbarlab.sim.server import BenchServer
from xbarlab.sim.stations import sim_station_text


class CountingTransport(ByteTransport):
    """Counts the bytes of one exchange (to size the raw reference)."""

    def __init__(self, inner: ByteTransport) -> None:
        self.inner, self.sent, self.received = inner, 0, 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)
        self.inner.write(data)

    def read(self, count: int) -> bytes:
        data = self.inner.read(count)
        self.received += len(data)
        return data

    def reset_input(self) -> None:
        self.inner.reset_input()

    def close(self) -> None:
        self.inner.close()


class SizedEcho:
    """Loopback TCP server: reads ``request`` bytes, answers ``reply`` bytes."""

    def __init__(self, request: int, reply: int) -> None:
        self.request, self.reply = request, reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        conn, _ = self.sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        payload = bytes(self.reply)
        while True:
            got = 0
            while got < self.request:
                chunk = conn.recv(self.request - got)
                if not chunk:
                    return
                got += len(chunk)
            conn.sendall(payload)


def median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = ap.parse_args()
    reps, inner = (15, 20) if args.quick else (40, 50)
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.1, 0.1, 64)

    keys = ("default", "ideal", "inproc", "inproc_default", "emulator", "raw")
    results: dict[str, list[float]] = {k: [] for k in keys}
    benches, servers, boards = {}, [], {}
    for key, r_wire in (("default", 0.35), ("ideal", 0.0)):
        bench = SimBench.from_station(parse_station(sim_station_text(64, 64, seed=1, wire_resistance=r_wire)))
        server = BenchServer(bench).start()
        port = serial.serial_for_url(server.addresses["board"], timeout=5)
        board = CrossbarBoard(CountingTransport(SerialTransport(port)))
        board.configure(0.2, 2e-3)
        board.mvm_forward(x)  # warm up: factorisation / transfer matrix for this conductance state
        benches[key], boards[key] = bench, board
        servers.append(server)
    inproc_bench = SimBench.from_station(parse_station(sim_station_text(64, 64, seed=1, wire_resistance=0.0)))
    inproc = CrossbarBoard(SerialTransport(serial.serial_for_url(inproc_bench.serial_url("board"), timeout=5)))
    inproc.configure(0.2, 2e-3)
    inproc.mvm_forward(x)
    inproc_default_bench = SimBench.from_station(parse_station(sim_station_text(64, 64, seed=1)))
    inproc_default = CrossbarBoard(
        SerialTransport(serial.serial_for_url(inproc_default_bench.serial_url("board"), timeout=5)))
    inproc_default.configure(0.2, 2e-3)
    inproc_default.mvm_forward(x)
    emulator = inproc_default_bench.board  # the same bytes the driver sends, straight into the emulator
    mvm_request = encode_request(Op.MVM_FORWARD, 1, pack_vector(x.astype(np.float32)))

    counter = boards["ideal"].transport
    counter.sent = counter.received = 0
    boards["ideal"].mvm_forward(x)
    request, reply = counter.sent, counter.received
    echo = SizedEcho(request, reply)
    raw = serial.serial_for_url(f"socket://127.0.0.1:{echo.port}", timeout=5)
    msg = bytes(request)

    def time_it(fn) -> float:
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t) / inner

    def raw_roundtrip() -> None:
        raw.write(msg)
        raw.read(reply)

    def emulate() -> None:
        emulator.feed(mvm_request)
        emulator.read_output()

    for _ in range(reps):  # interleaved repetitions
        results["raw"].append(time_it(raw_roundtrip))
        results["default"].append(time_it(lambda: boards["default"].mvm_forward(x)))
        results["ideal"].append(time_it(lambda: boards["ideal"].mvm_forward(x)))
        results["inproc"].append(time_it(lambda: inproc.mvm_forward(x)))
        results["inproc_default"].append(time_it(lambda: inproc_default.mvm_forward(x)))
        results["emulator"].append(time_it(emulate))

    # 256×256: physics only, IR-drop solve vs ideal product
    m = CrossbarModel(256, 256, make_device("rram"), seed=2, wire_resistance=0.35)
    v = rng.uniform(-0.1, 0.1, 256)
    t = time.perf_counter()
    m.column_currents(v)
    first_256 = time.perf_counter() - t
    ir_times, ideal_times = [], []
    g = m.conductance_map()
    for _ in range(3 if args.quick else 7):
        t = time.perf_counter()
        m.column_currents(v)
        ir_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        for _ in range(1000):
            g.T @ v
        ideal_times.append((time.perf_counter() - t) / 1000)

    for s in servers:
        s.stop()
    for b in (*benches.values(), inproc_bench, inproc_default_bench):
        b.close()

    full, ideal, raw_us = median_us(results["default"]), median_us(results["ideal"]), median_us(results["raw"])
    out = {
        "full_stack_us": round(full, 1),
        "raw_transport_us": round(raw_us, 1),
        "ratio": round(full / raw_us, 2),
        "full_stack_ideal_wires_us": round(ideal, 1),
        "ratio_ideal_wires": round(ideal / raw_us, 2),
        "ratio_paired": round(statistics.median(f / r for f, r in zip(results["default"], results["raw"],
                                                                       strict=True)), 2),
        "in_process_ideal_wires_us": round(median_us(results["inproc"]), 1),
        "in_process_us": round(median_us(results["inproc_default"]), 1),
        "emulator_only_us": round(median_us(results["emulator"]), 1),
        "request_bytes": request,
        "reply_bytes": reply,
        "mvm256_ir_drop_ms": round(statistics.median(ir_times) * 1e3, 2),
        "mvm256_ir_drop_first_call_ms": round(first_256 * 1e3, 1),
        "mvm256_ideal_us": round(median_us(ideal_times), 2),
        "device": "rram defaults (xbarlab.sim.devices.RRAM), 1% stuck, seed 1",
        "repetitions": reps,
        "calls_per_repetition": inner,
    }
    print(f"64x64 forward MVM, full stack (default physics): {full:8.1f} us")
    print(f"64x64 forward MVM, full stack (ideal wires):     {ideal:8.1f} us")
    print(f"raw pyserial socket:// round trip ({request}+{reply} B): {raw_us:8.1f} us")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
