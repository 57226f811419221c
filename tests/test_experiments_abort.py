"""Abort on the simulated bench: every experiment stops at a safe point with every output off, logged as aborted."""

from __future__ import annotations

import pytest

from xbarlab.experiments.base import Aborted, AbortToken
from xbarlab.logbook import LogReader
from xbarlab.session import LabSession
from xbarlab.sim.stations import sim_station_text


def _open(tmp_path, device: str = "rram") -> LabSession:
    station = tmp_path / "bench.toml"
    station.write_text(sim_station_text(rows=8, cols=32, device=device, seed=4, stuck_fraction=0.0))
    return LabSession.open(station, tmp_path / "log.h5")


def _spy_all_off(lab: LabSession) -> list[int]:
    """ALL_OFF frames as the board emulator receives them (the safety layer cannot be patched)."""
    from xbarlab.protocol import board as bp

    calls: list[int] = []
    buf = bytearray()

    def tap(data: bytes) -> None:
        buf.extend(data)
        for frame in bp.split_frames(buf):
            if not isinstance(frame, Exception) and frame.opcode == bp.Op.ALL_OFF:
                calls.append(1)

    lab.station.sim.board.add_tap(tap)
    return calls


def _assert_safe(lab: LabSession) -> None:
    emulator = lab.station.sim.emulators["smu1"]
    assert not any(ch.output for ch in emulator.ch)  # the instrument itself, not just the driver's view
    assert not lab.station.smu("smu1").output_enabled()
    assert lab.station.sim.board.routes == {}  # no SMU routed into the array


@pytest.mark.parametrize("rule", ["mixed_precision", "tiki_taka"])
def test_abort_during_training_switches_every_output_off(tmp_path, blobs, rule):
    token = AbortToken()
    seen: list[str] = []
    with _open(tmp_path) as lab:
        all_off = _spy_all_off(lab)
        smu = lab.station.smu("smu1")

        def progress(pr):
            seen.append(pr.message)
            if pr.message.startswith("epoch 1: 100/"):  # mid-epoch, after 100 training samples
                smu.source_voltage(0.1, 1e-4)
                smu.set_output(True)  # something on the bench is live when the operator aborts
                token.request()

        with pytest.raises(Aborted):
            lab.run("train", {"rule": rule, "dataset": blobs, "hidden": 4, "epochs": 2,
                              "zero_shift_pulses": 50}, progress=progress, abort=token)
        assert token.requested and any(m.startswith("epoch 1: 100/") for m in seen)
        assert all_off  # the board was put in its safe state (lines grounded, SMUs unrouted)
        _assert_safe(lab)
        run_id = next(r["run_id"] for r in LogReader(lab.log_path).runs() if r["kind"] == "train")
    reader = LogReader(tmp_path / "log.h5")
    assert reader.run(run_id)["status"] == "aborted"
    steps = [s["step_id"] for s in reader.steps(run_id)]
    assert "initialised" in steps and not any(s.startswith("epoch-") for s in steps)  # stopped inside epoch 1
    assert "epochs" not in reader.stream_names(run_id) or reader.stream(run_id, "epochs").data.shape[0] == 0


@pytest.mark.parametrize("kind, params", [
    ("mvm", {"n_in": 6, "n_out": 3, "vectors": 4, "sizes": [2, 3]}),
    ("linear_solve", {"n": 6, "condition": 10.0}),
    ("closed_loop_solve", {"n": 6, "rhs": 4}),
    ("drift_inference", {"hidden": 4, "epochs": 2, "times": [1.0, 3600.0]}),
])
def test_abort_of_the_other_experiments_is_safe_and_logged(tmp_path, blobs, kind, params):
    if kind == "drift_inference":
        params = {**params, "dataset": blobs}
    token = AbortToken()
    reports: list[int] = []
    with _open(tmp_path, device="pcm" if kind == "drift_inference" else "rram") as lab:
        all_off = _spy_all_off(lab)

        def progress(pr):
            reports.append(pr.done)
            if pr.done >= 1:  # after the first measured step (programming done)
                token.request()

        with pytest.raises(Aborted):
            lab.run(kind, params, progress=progress, abort=token)
        assert all_off
        _assert_safe(lab)
        (run,) = [r for r in LogReader(lab.log_path).runs() if r["kind"] == kind]
    assert run["status"] == "aborted"
