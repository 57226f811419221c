"""Training on PCM: push-pull refused, SET-only + refresh, the PCM + 3T1C rule (transfer, polarity inversion),
logged and replayed bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from xbarlab.campaigns.runner import CampaignRunner
from xbarlab.campaigns.spec import load_campaign
from xbarlab.errors import ConfigError
from xbarlab.experiments.base import resolve_params
from xbarlab.experiments.support import tia_range
from xbarlab.experiments.training import TrainExperiment, TrainResult
from xbarlab.instruments.config import parse_station
from xbarlab.instruments.station import Station
from xbarlab.logbook import LogReader
from xbarlab.logbook.replay import replay
from xbarlab.sim.stations import sim_station_text


def _station_text(cap: bool = True, device: str = "pcm") -> str:
    return sim_station_text(rows=16, cols=32, device=device, seed=7, wire_resistance=0.0, stuck_fraction=0.0,
                            cap_cells={} if cap else None)


@pytest.fixture()
def tiny(tmp_path) -> Path:
    """40 samples, 4 features, 3 classes: a 4-2-3 network fits a 16x32 array."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 40)
    path = tmp_path / "tiny.npz"
    np.savez(path, X=rng.normal(size=(40, 4)) + 2 * y[:, None], y=y)
    return path


def _check(params: dict, cfg) -> list[str]:
    values, problems = resolve_params(TrainExperiment.params_spec, params)
    assert not problems
    return TrainExperiment.check(values, cfg, "steps[0]")


def _params(tiny: Path, **kw) -> dict:
    return {"dataset": str(tiny), "hidden": 2, "epochs": 1, "lr": 0.1, "g_min": 1e-6, "g_max": 20e-6,
            "seed": 3, **kw}


@pytest.mark.parametrize("rule, update", [("sgd", "push_pull"), ("mixed_precision", "push_pull"),
                                          ("mixed_precision", "single_device"), ("tiki_taka", "push_pull")])
def test_pcm_station_refuses_reset_based_updates(tiny, rule, update):
    cfg = parse_station(_station_text())
    problems = _check(_params(tiny, rule=rule, update=update), cfg)
    assert len(problems) == 1 and "PCM station refuses" in problems[0] and "set_only" in problems[0]
    assert not _check(_params(tiny, rule="pcm_3t1c"), cfg)
    assert not _check(_params(tiny, rule="mixed_precision", update="set_only"), cfg)
    rram = parse_station(_station_text(device="rram"))
    assert not _check(_params(tiny, rule=rule, update=update), rram)
    with Station.from_text(_station_text()) as st:
        t0 = st.sim.clock.now
        with pytest.raises(ConfigError, match="PCM station refuses"):
            TrainExperiment(st, _params(tiny, rule=rule, update=update)).run()
        assert not st.sim.board.model.device.t_prog.any() and st.sim.clock.now - t0 < 0.1  # nothing programmed


def test_set_only_is_only_for_mixed_precision(tiny):
    problems = _check(_params(tiny, rule="sgd", update="set_only"), None)
    assert problems and "set_only" in problems[0]


def test_pcm_3t1c_needs_the_capacitor_array(tiny):
    problems = _check(_params(tiny, rule="pcm_3t1c"), parse_station(_station_text(cap=False)))
    assert len(problems) == 1 and "[sim.cap_cells]" in problems[0]
    with Station.from_text(_station_text(cap=False)) as st:
        with pytest.raises(ConfigError, match="no 3T1C capacitor array"):
            TrainExperiment(st, _params(tiny, rule="pcm_3t1c")).run()


def test_transfer_keeps_the_weight_moves_it_into_pcm_and_inverts_polarity(tiny):
    """Judged on the simulator's true conductances (PCM reads carry 1/f noise of a few % of g per read)."""
    with Station.from_text(_station_text()) as st:
        exp = TrainExperiment(st, _params(tiny, rule="pcm_3t1c", cap_transfer_every=10**6))
        board = st.require_board()
        with tia_range(st, board, 1e-3):
            net = exp._analog_net([4, 2, 3], TrainResult("pcm_3t1c", [4, 2, 3]))
        layer = net.layers[0]
        rows, cols, unit, f = layer.pcm.rows, layer.pcm.matrix.cols, layer.pcm.mapping.unit, layer.significance

        def true_parts() -> tuple[np.ndarray, np.ndarray]:
            """(G⁺ − G⁻, polarity·(g⁺ − g⁻)), both n_out × n_in in S, from the physics."""
            g = st.sim.board.model.conductance_map()[np.ix_(rows, cols)]
            c = st.sim.board.cap.array.conductance_map()[np.ix_(rows, cols)]
            return (g[:, 0::2] - g[:, 1::2]).T, layer.polarity * (c[:, 0::2] - c[:, 1::2]).T

        def true_w() -> np.ndarray:
            d, lsp = true_parts()
            return d / unit + lsp / (f * unit)

        with tia_range(st, board, 1e-3):
            w0 = true_w()
            steps = np.zeros((2, 4), dtype=int)
            steps[0, 0], steps[1, 2] = 60, -60
            layer._charge(steps)
            w1 = true_w()
            moved = w1 - w0
            assert moved[0, 0] > 0.1 and moved[1, 2] < -0.1  # the capacitors hold the update
            assert np.abs(np.delete(moved.ravel(), [0, 6])).max() < 0.01  # and nothing else moved
            d_before, _ = true_parts()
            assert layer.polarity == 1
            layer.transfer()
            assert layer.polarity == -1 and len(layer.transfers) == 1 and layer.transfers[0].set_pulses >= 2
            d_after, lsp_after = true_parts()
            d_pcm = d_after - d_before
            assert d_pcm[0, 0] > 0.5 * moved[0, 0] * unit and d_pcm[1, 2] < 0.5 * moved[1, 2] * unit  # PCM took it
            assert np.abs(lsp_after).max() < 0.5 * np.abs(moved).max() * f * unit  # capacitors mostly emptied
            w2 = true_w()
            # W survives the transfer within the quantisation of the SET pulses that moved it (stochastic rounding:
            # < 1 pulse, plus the pulses' spread; a lost update would be off by |moved| > 0.15)
            bound = 1.5 * layer.set_step / unit
            assert bound < 0.6 * min(moved[0, 0], -moved[1, 2])
            assert abs(w2[0, 0] - w1[0, 0]) < bound and abs(w2[1, 2] - w1[1, 2]) < bound
            # the host's view of W after the inversion: the capacitors count with the new sign (PCM reads carry
            # ~0.07 of 1/f noise in weight units here; a sign error would be off by 2·|moved| ≈ 0.37)
            layer._charge(steps)
            w3 = true_w()
            assert w3[0, 0] - w2[0, 0] < -0.15
            assert abs(layer.weights()[0, 0] - w3[0, 0]) < 0.25


def _campaign(tmp_path: Path, tiny: Path, rule: str, extra: str = "") -> Path:
    (tmp_path / "pcm.toml").write_text(_station_text())
    text = f"""
[campaign]
name = "PCM training"
station = "pcm.toml"
seed = 1

[[steps]]
type = "train"
[steps.params]
rule = "{rule}"
dataset = "{tiny}"
hidden = 2
epochs = 2
lr = 0.1
g_min = 1e-6
g_max = 20e-6
{extra}
"""
    path = tmp_path / "campaign.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("rule, extra, stream", [
    ("pcm_3t1c", "cap_transfer_every = 8", "transfers"),
    ("mixed_precision", 'update = "set_only"\nrefresh_every = 8\nrefresh_level = 0.5', None),
])
def test_pcm_training_is_logged_and_replays_bit_for_bit(tmp_path, tiny, rule, extra, stream):
    log = tmp_path / "run.h5"
    assert CampaignRunner(load_campaign(_campaign(tmp_path, tiny, rule, extra)), log).run().status == "completed"
    reader = LogReader(log)
    run = next(r for r in reader.runs() if r["kind"] == "train")
    assert run["status"] == "completed" and run["params"]["rule"] == rule
    epochs = reader.stream(run["run_id"], "epochs")
    assert epochs.data.shape[0] == 2
    if stream:
        transfers = reader.stream(run["run_id"], stream)
        assert transfers.data.shape[0] >= 3 and set(np.unique(transfers.data[:, -1])) == {-1.0, 1.0}
        assert transfers.columns[-1] == "polarity" and "write_error_rms" in transfers.columns
        cols = {c: k for k, c in enumerate(transfers.columns)}
        assert (transfers.data[:, cols["ref_mean"]] > 0).all()  # the reference capacitors were read
        assert ((transfers.data[:, cols["cap_railed"]] >= 0) & (transfers.data[:, cols["cap_railed"]] <= 1)).all()
        kind, data, _ = reader.calibrations(run["run_id"])["train-cap-step"]
        assert kind == "cap_step" and data["bottom"] < data["reset"] < data["top"]  # the capacitors' range
    report = replay(log)
    assert [r.outcome for r in report.runs if r.run_id == run["run_id"]] == ["reproduced"]


def test_a_characterisation_stop_is_one_line_saying_what_to_do(tiny, monkeypatch, capsys):
    """A PCM array whose RESET ladder the characterisation cannot fit: the training run refuses in one line
    (rule, what stopped, what to try), from Python and from the CLI (exit 2, no traceback)."""
    import xbarlab.experiments.programming as programming
    from xbarlab.cli import main

    def no_graded_reset(*args, **kwargs):
        raise ConfigError("characterisation: too few graded RESET steps to fit the kinetics (2 points); "
                          "increase the sample or lower v_step")

    monkeypatch.setattr(programming, "characterize", no_graded_reset)
    for rule, extra in (("pcm_3t1c", {}), ("mixed_precision", {"update": "set_only"})):
        with Station.from_text(_station_text()) as st, pytest.raises(ConfigError) as info:
            TrainExperiment(st, _params(tiny, rule=rule, **extra)).run()
        text = str(info.value)
        assert "\n" not in text and f"rule {rule!r}" in text and "too few graded RESET steps" in text
        assert "row0, col0" in text and "pulse_response" in text
    station = Path(str(tiny)).with_name("pcm.toml")
    station.write_text(_station_text())
    code = main(["train", "--rule", "pcm_3t1c", "--station", str(station), "--dataset", str(tiny), "--hidden", "2",
                 "--epochs", "1", "--g-min", "1e-6", "--g-max", "20e-6", "-o", str(station.with_suffix(".h5"))])
    err = capsys.readouterr().err
    assert code == 2 and "too few graded RESET steps" in err and "Traceback" not in err
    assert len([line for line in err.splitlines() if line.strip()]) == 1

