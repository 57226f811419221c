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

Placement. On a 2-vCPU virtual machine a wake-up across vCPUs costs ~20 µs more than one on
the same vCPU, and a round trip has two: the raw echo measures ~20 µs with its thread on the
client's vCPU and ~60 µs with it on the other one. Left to the scheduler, the light echo
thread stays with the client while the server threads (≈35 µs of emulator work per request)
are moved to the other vCPU after a few seconds, so the two paths were compared under
different placements (full stack ~120 µs against a ~20 µs raw floor). Every client/peer pair
is therefore timed under the same explicit placement (Linux ``sched_setaffinity``):
``one_cpu`` (client, server and echo threads on one CPU) and ``two_cpus`` (client on one,
server and echo peers on the other), each after an untimed settling period (right after a
move, round trips stay at the cross-CPU cost for up to ~50 ms). Without affinity control
both are left to the scheduler.

Keys: ``full_stack_us``, ``raw_transport_us``, ``ratio`` and ``ratio_paired`` are the
in-process server (a ``BenchServer`` thread in this process, sharing the GIL with the
client) against the in-process echo thread, both ``one_cpu``. ``separate_process_*`` is
what a user's second process sees: ``xbarlab sim serve`` running as its own process
against an echo process (this script with ``--echo``), ``one_cpu`` as well. The
``*_two_cpus_*`` keys are the same pairs with the peers on the other CPU.

Where the time goes (CPU time per 64×64 forward MVM, minimum of 7 × 3000 calls, measured with
``time.process_time`` so the figures hold on a loaded machine — load average ~15 when taken; cProfile
and py-spy for the call structure). The emulator alone (bytes in → bytes out) takes 27 µs with the
default physics (0.35 Ω wires; 43 µs before this round of work, 63 µs in the issue), of which

* the MVM handler 22 µs: array physics 7.1 µs (one product [K − Gᵀ | Gᵀ]·[V; f(V)] with the state's
  complete transfer matrix, then read noise: σ²·V², a square root and a normal draw per line), the
  TIA/ADC model 7.0 µs (gain, offset, a normal draw, quantisation, clipping: nine numpy calls), the DAC
  1.6 µs, and ~6 µs of checks and packing (input range, saturation test, float32 reply, clock);
* ~5 µs around it: the receive fast path (one intact frame: header check and CRC-32, 0.9 µs, no stream
  splitter and no Frame object), dispatch, the fault plan (skipped when nothing is armed), three clock
  advances and the reply frame (0.7 µs).

With ideal wires the physics is Gᵀ·f(V) plus the same noise (5.9 µs). The driver and the in-process
pyserial port add ~17 µs (the in-process full stack: 45 µs CPU): encoding and checking both frames, the
input-range check, unpacking the reading. A numpy 64×64 matrix-vector product is 1.2 µs. Compared with
the previous round, the time saved came from the frame fast path, the unarmed fault plan, the single
physics product and removing ndarray method wrappers; what remains is ~35 numpy calls of 0.3–1 µs each
(two random draws, the ADC's arithmetic) and ~60 Python calls per frame, none above 25 %: the 15 µs
emulator goal would need the ADC model folded into the physics product (it belongs to the periphery
model, kept separate on purpose) or a compiled kernel.

Usage: python benchmarks/stack_overhead.py [--quick]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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
    """Loopback TCP server: reads ``request`` bytes, answers ``reply`` bytes (a thread, or ``--echo``: a process)."""

    def __init__(self, request: int, reply: int, thread: bool = True) -> None:
        self.request, self.reply = request, reply
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        if thread:
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


def _announced(proc: subprocess.Popen, pattern: str) -> str:
    """The first match of ``pattern`` in a child's standard output (its address announcement)."""
    assert proc.stdout is not None
    for line in proc.stdout:
        m = re.search(pattern, line)
        if m:
            return m.group(1)
    raise RuntimeError(f"child exited ({proc.wait()}) without announcing {pattern!r}")


def _spawn(argv: list[str], pattern: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, *argv], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    atexit.register(proc.kill)  # no child outlives a failed run (a no-op once it has been reaped)
    return proc, _announced(proc, pattern)


class Placement:
    """Pins this process's threads and the children's: ``one_cpu`` or ``two_cpus`` (peers on another CPU)."""

    def __init__(self, children: list[subprocess.Popen]) -> None:
        self.children = children
        self.main = threading.get_native_id()
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # no affinity control: the scheduler decides
            cpus = []
        self.client_cpu = cpus[0] if cpus else None
        self.peer_cpu = cpus[1] if len(cpus) > 1 else None
        self.allowed = set(cpus)

    @staticmethod
    def _tasks(pid: int) -> list[int]:
        try:
            return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            return [pid]

    def set(self, name: str) -> None:
        if self.client_cpu is None:
            return
        peer = {self.client_cpu if name == "one_cpu" else self.peer_cpu}
        pids = [(os.getpid(), True)] + [(c.pid, False) for c in self.children]
        for pid, own in pids:
            for tid in self._tasks(pid):
                try:
                    os.sched_setaffinity(tid, {self.client_cpu} if own and tid == self.main else peer)
                except OSError:  # a thread that has just exited
                    pass

    def release(self) -> None:
        for pid in [os.getpid()] + [c.pid for c in self.children]:
            for tid in self._tasks(pid):
                try:
                    os.sched_setaffinity(tid, self.allowed)
                except OSError:
                    pass


def echo_process(request: int, reply: int) -> None:
    """``--echo REQUEST REPLY``: the raw reference's echo as a process of its own."""
    echo = SizedEcho(request, reply, thread=False)
    print(f"echo on port {echo.port}", flush=True)
    echo._run()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--echo", nargs=2, type=int, metavar=("REQUEST", "REPLY"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo:
        echo_process(*args.echo)
        return
    reps, inner = (15, 20) if args.quick else (40, 50)
    settle_s = 0.1 if args.quick else 0.2
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.1, 0.1, 64)

    keys = ("default", "ideal", "inproc", "inproc_default", "emulator", "raw", "proc", "raw_proc",
            "default_2", "raw_2", "proc_2", "raw_proc_2")
    results: dict[str, list[float]] = {k: [] for k in keys}
    benches, servers, boards = {}, [], {}
    for key, r_wire in (("default", 0.35), ("ideal", 0.0)):
        bench = SimBench.from_station(parse_station(sim_station_text(64, 64, seed=1, wire_resistance=r_wire)))
        server = BenchServer(bench).start()
        port = serial.serial_for_url(server.addresses["board"], timeout=60)
        board = CrossbarBoard(CountingTransport(SerialTransport(port)))
        board.configure(0.2, 2e-3)
        board.mvm_forward(x)  # warm up: factorisation / transfer matrix for this conductance state
        benches[key], boards[key] = bench, board
        servers.append(server)
    inproc_bench = SimBench.from_station(parse_station(sim_station_text(64, 64, seed=1, wire_resistance=0.0)))
    inproc = CrossbarBoard(SerialTransport(serial.serial_for_url(inproc_bench.serial_url("board"), timeout=60)))
    inproc.configure(0.2, 2e-3)
    inproc.mvm_forward(x)
    inproc_default_bench = SimBench.from_station(parse_station(sim_station_text(64, 64, seed=1)))
    inproc_default = CrossbarBoard(
        SerialTransport(serial.serial_for_url(inproc_default_bench.serial_url("board"), timeout=60)))
    inproc_default.configure(0.2, 2e-3)
    inproc_default.mvm_forward(x)
    emulator = inproc_default_bench.board  # the same bytes the driver sends, straight into the emulator
    mvm_request = encode_request(Op.MVM_FORWARD, 1, pack_vector(x.astype(np.float32)))

    counter = boards["ideal"].transport
    counter.sent = counter.received = 0
    boards["ideal"].mvm_forward(x)
    request, reply = counter.sent, counter.received
    echo = SizedEcho(request, reply)
    raw = serial.serial_for_url(f"socket://127.0.0.1:{echo.port}", timeout=60)
    msg = bytes(request)

    # the same default-physics station served by `xbarlab sim serve` in a process of its own,
    # and the raw reference's echo as a process of its own
    tmp = tempfile.TemporaryDirectory()
    station = Path(tmp.name, "station.toml")
    station.write_text(sim_station_text(64, 64, seed=1, wire_resistance=0.35))
    serve, serve_url = _spawn(["-c", "import sys; from xbarlab.cli import main; sys.exit(main())",
                               "sim", "serve", "--station", str(station), "--base-port", "0"],
                              r"board\s+(socket://\S+)")
    echo_proc, echo_port = _spawn([__file__, "--echo", str(request), str(reply)], r"echo on port (\d+)")
    children = [serve, echo_proc]
    proc_board = CrossbarBoard(SerialTransport(serial.serial_for_url(serve_url, timeout=60)))
    proc_board.configure(0.2, 2e-3)
    proc_board.mvm_forward(x)
    raw_proc = serial.serial_for_url(f"socket://127.0.0.1:{echo_port}", timeout=60)
    placement = Placement(children)

    def time_it(fn) -> float:
        fn()  # after a change of placement: the first call pays the migration
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t) / inner

    def raw_roundtrip() -> None:
        raw.write(msg)
        raw.read(reply)

    def raw_proc_roundtrip() -> None:
        raw_proc.write(msg)
        raw_proc.read(reply)

    def emulate() -> None:
        emulator.feed(mvm_request)
        emulator.read_output()

    def settle(*fns) -> None:
        """Run the pairs untimed for a while after a change of placement: the first tens of
        milliseconds on the new CPUs are slower (measured: up to ~50 ms at the two-CPU figure)."""
        end = time.perf_counter() + settle_s
        while time.perf_counter() < end:
            for fn in fns:
                fn()

    def full_default() -> None:
        boards["default"].mvm_forward(x)

    def full_proc() -> None:
        proc_board.mvm_forward(x)

    two_cpus = placement.peer_cpu is not None
    for _ in range(reps):  # interleaved repetitions
        placement.set("one_cpu")
        settle(raw_roundtrip, full_default, raw_proc_roundtrip, full_proc)
        results["raw"].append(time_it(raw_roundtrip))
        results["default"].append(time_it(full_default))
        results["ideal"].append(time_it(lambda: boards["ideal"].mvm_forward(x)))
        results["inproc"].append(time_it(lambda: inproc.mvm_forward(x)))
        results["inproc_default"].append(time_it(lambda: inproc_default.mvm_forward(x)))
        results["emulator"].append(time_it(emulate))
        results["raw_proc"].append(time_it(raw_proc_roundtrip))
        results["proc"].append(time_it(full_proc))
        if two_cpus:
            placement.set("two_cpus")
            settle(raw_roundtrip, full_default, raw_proc_roundtrip, full_proc)
            results["raw_2"].append(time_it(raw_roundtrip))
            results["default_2"].append(time_it(full_default))
            results["raw_proc_2"].append(time_it(raw_proc_roundtrip))
            results["proc_2"].append(time_it(full_proc))
    placement.release()

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
    proc_board.close()
    raw_proc.close()
    for child in children:
        child.terminate()
        child.wait(timeout=10)
    tmp.cleanup()
    for b in (*benches.values(), inproc_bench, inproc_default_bench):
        b.close()

    full, ideal, raw_us = median_us(results["default"]), median_us(results["ideal"]), median_us(results["raw"])

    def pair_us(key: str) -> float | None:
        return round(median_us(results[key]), 1) if results[key] else None

    def pair_ratio(key: str, ref: str) -> float | None:
        return round(median_us(results[key]) / median_us(results[ref]), 2) if results[key] else None

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
        "separate_process_us": round(median_us(results["proc"]), 1),
        "raw_transport_separate_process_us": round(median_us(results["raw_proc"]), 1),
        "ratio_separate_process": round(median_us(results["proc"]) / median_us(results["raw_proc"]), 2),
        "full_stack_two_cpus_us": pair_us("default_2"),
        "raw_transport_two_cpus_us": pair_us("raw_2"),
        "ratio_two_cpus": pair_ratio("default_2", "raw_2"),
        "separate_process_two_cpus_us": pair_us("proc_2"),
        "raw_transport_separate_process_two_cpus_us": pair_us("raw_proc_2"),
        "ratio_separate_process_two_cpus": pair_ratio("proc_2", "raw_proc_2"),
        "placement": (f"one_cpu: CPU {placement.client_cpu}; two_cpus: client on CPU {placement.client_cpu}, "
                      f"peers on CPU {placement.peer_cpu}") if two_cpus else
                     (f"one_cpu: CPU {placement.client_cpu}; two_cpus: not available" if placement.client_cpu
                      is not None else "left to the scheduler (no affinity control)"),
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
    print(f"separate process: full stack {out['separate_process_us']} us, "
          f"raw {out['raw_transport_separate_process_us']} us")
    print(f"two CPUs: full stack {out['full_stack_two_cpus_us']} us, raw {out['raw_transport_two_cpus_us']} us; "
          f"separate process {out['separate_process_two_cpus_us']} us, "
          f"raw {out['raw_transport_separate_process_two_cpus_us']} us")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
