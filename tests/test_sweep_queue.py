"""The lab queue on a scheduler started as its own process: a bench worker bound to a "physical" station
(instruments on loopback sockets, as a driver sees hardware) and a plain worker. Bench campaigns run only
on the bench worker, one at a time; simulated ones anywhere; logs come back checked; cancel works."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from xbarlab.cli import main  # noqa: E402
from xbarlab.instruments.config import load_station  # noqa: E402
from xbarlab.logbook import LogReader  # noqa: E402
from xbarlab.sim.bench import SimBench  # noqa: E402
from xbarlab.sim.server import BenchServer  # noqa: E402
from xbarlab.sim.stations import sim_station_text  # noqa: E402
from xbarlab.sweep import load_sweep, queue  # noqa: E402
from xbarlab.sweep.cluster import connect  # noqa: E402
from xbarlab.sweep.run import run_sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
READS = """
[campaign]
name = "{name}"
station = "{station}"

[[steps]]
type = "array_read"
[steps.sweep]
read_voltage = {volts}
"""


def physical_station(addresses: dict[str, str]) -> str:
    return f"""
[station]
name = "Test bench 7"
visa_library = "@py"
[instruments.smu1]
driver = "keithley2400"
address = "{addresses['smu1']}"
board_port = 0
timeout = 10.0
[instruments.smu1.limits]
max_voltage = 5.0
max_current = 1e-3
[instruments.board]
driver = "crossbar_board"
address = "{addresses['board']}"
timeout = 10.0
[instruments.board.limits]
max_read_voltage = 0.5
max_mvm_voltage = 0.5
max_pulse_amplitude = 3.5
min_pulse_width = 1e-8
max_pulse_width = 1e-3
max_tia_range = 10e-3
"""


def _start(cmd: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True)


def wait_for(predicate, timeout: float, what: str):  # noqa: ANN001, ANN201
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_bench_queue_routes_serialises_collects_and_cancels(tmp_path: Path) -> None:
    config = load_station_text(tmp_path / "sim8.toml", sim_station_text(8, 8, seed=3))
    bench = SimBench.from_station(config)
    server = BenchServer(bench).start()
    station = tmp_path / "lab7.toml"
    station.write_text(physical_station(server.addresses), encoding="utf-8")
    volts = "[" + ", ".join(f"{0.1 + 0.01 * i:.2f}" for i in range(6)) + "]"
    long_volts = "[" + ", ".join(f"{0.1 + 0.0005 * i:.4f}" for i in range(400)) + "]"
    for name, st, v in (("a", "lab7.toml", volts), ("b", "lab7.toml", volts), ("c", "sim8.toml", volts),
                        ("d", "lab7.toml", long_volts), ("e", "lab7.toml", volts)):
        (tmp_path / f"{name}.toml").write_text(READS.format(name=name, station=st, volts=v), encoding="utf-8")
    sched_file = tmp_path / "scheduler.json"
    procs = [_start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(sched_file)], tmp_path / "scheduler.log", tmp_path)]
    try:
        wait_for(sched_file.exists, 30, "the scheduler")
        address = json.loads(sched_file.read_text())["address"]
        procs.append(_start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                             "--no-dashboard", "--name", "bench7", "--resources", "bench-test-bench-7=1",
                             "--preload", "xbarlab.sweep.bench", "--station", str(station), "--spool",
                             str(tmp_path / "spool7")], tmp_path / "bench-worker.log", tmp_path))
        procs.append(_start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                             "--no-dashboard", "--name", "plain"], tmp_path / "plain-worker.log", tmp_path))
        with connect(address) as client:
            wait_for(lambda: len(client.scheduler_info()["workers"]) == 2, 40, "two workers")
            bench_worker = next(a for a, w in client.scheduler_info()["workers"].items() if w["name"] == "bench7")
            ids = {n: queue.submit(client, tmp_path / f"{n}.toml")["id"] for n in ("a", "b", "c")}
            wait_for(lambda: all(e["state"] == "done" for e in queue.entries(client)), 60, "three campaigns")
            results = {n: queue.collect(client, i, tmp_path / "logs") for n, i in ids.items()}
            assert queue.entries(client) == []  # collected entries leave the queue
            for r in results.values():
                assert r["status"] == "completed" and r["log_state"] == "complete"
            bench_pid = client.run(os.getpid, workers=[bench_worker])[bench_worker]
            assert results["a"]["worker"].endswith(f":{bench_pid}") and results["b"]["worker"].endswith(f":{bench_pid}")
            spans = []
            for n in ("a", "b"):  # one at a time on the bench: the two campaigns' runs do not overlap
                runs = LogReader(tmp_path / "logs" / f"{ids[n]}.h5").runs()
                spans.append((min(r["start_time"] for r in runs), max(r["end_time"] for r in runs)))
                assert "Test bench 7" in runs[0]["station_text"]  # the bench worker's own station file
            spans.sort()
            assert spans[0][1] <= spans[1][0]

            d = queue.submit(client, tmp_path / "d.toml")["id"]
            e = queue.submit(client, tmp_path / "e.toml")["id"]
            wait_for(lambda: {x["id"]: x["state"] for x in queue.entries(client)}.get(d) == "running", 30, "d running")
            assert {x["id"]: x["state"] for x in queue.entries(client)}[e] == "waiting for bench"
            assert main(["queue", "cancel", e, "--scheduler", address]) == 0
            assert main(["queue", "cancel", d, "--scheduler", address]) == 0
            wait_for(lambda: [x["state"] for x in queue.entries(client)] == ["done"], 60, "d stopping")
            r = queue.collect(client, d, tmp_path / "logs")
            assert r["status"] == "interrupted" and r["log_state"] == "incomplete"
            assert not (tmp_path / "spool7" / f"{e}.h5").exists()  # e never started

            # a sweep over a physical station's step parameter: every point on the bench worker, its station file
            (tmp_path / "one.toml").write_text(READS.format(name="one", station="lab7.toml", volts="[0.1]"),
                                               encoding="utf-8")
            (tmp_path / "bs.toml").write_text('[sweep]\ncampaign = "one.toml"\n[axes]\n'
                                              '"steps.array_read.repeats" = [1, 2]\n', encoding="utf-8")
            index = run_sweep(load_sweep(tmp_path / "bs.toml"), tmp_path / "bench-sweep", client)
            assert [r["status"] for r in index.rows] == ["completed", "completed"]
            assert {r["worker"].split(":")[1] for r in index.rows} == {str(bench_pid)}
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        server.stop()
        bench.close()


def load_station_text(path: Path, text: str):  # noqa: ANN201
    path.write_text(text, encoding="utf-8")
    return load_station(path)
