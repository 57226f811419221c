"""One-step Schrödinger, PageRank and inverse (Sun et al. 2019) on the simulated feedback-mode bench."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xbarlab.cli import main
from xbarlab.errors import ConfigError
from xbarlab.experiments import STEP_TYPES, resolve_params
from xbarlab.experiments.base import MemoryRecorder
from xbarlab.experiments.one_step import OneStepExperiment
from xbarlab.experiments.one_step_problems import (
    closed_loop_stability,
    digital_pagerank,
    google_matrix,
    hamiltonian,
    pagerank_system,
    shifted_for_ground_state,
    top_k_agreement,
    web_graph,
)
from xbarlab.instruments.config import parse_station
from xbarlab.instruments.station import Station
from xbarlab.sim.stations import sim_station_text

TEXT = sim_station_text(rows=12, cols=24, seed=3)


def run(params: dict, recorder: MemoryRecorder | None = None):
    with Station.from_text(TEXT) as station:
        t0 = station.sim_time()
        result = OneStepExperiment(station, params, recorder=recorder).run()
        return result, station.sim_time() - t0


# -- the problems, digitally --------------------------------------------------------------------------------
def test_hamiltonian_of_an_empty_box_has_the_particle_in_a_box_energies():
    h, x = hamiltonian(200, "square", 0.0)
    e = np.linalg.eigvalsh(h)[:3]
    assert np.allclose(e, [(k * math.pi) ** 2 / 2 for k in (1, 2, 3)], rtol=1e-3)
    assert x[0] > -0.5 and x[-1] < 0.5 and np.allclose(h, h.T)


@pytest.mark.parametrize("kind", ["square", "harmonic", "double"])
def test_the_shift_makes_the_ground_state_the_largest_eigenvalue(kind):
    h, _ = hamiltonian(10, kind, 100.0)
    m, c = shifted_for_ground_state(h)
    lam, vec = np.linalg.eigh(m)
    e, psi = np.linalg.eigh(h)
    assert lam[-1] == pytest.approx(c - e[0]) and lam[-1] > 0
    assert abs(vec[:, -1] @ psi[:, 0]) == pytest.approx(1.0)


def test_double_well_ground_pair_is_nearly_degenerate():
    e = np.linalg.eigvalsh(hamiltonian(40, "double", 400.0)[0])
    assert (e[1] - e[0]) < 0.1 * (e[2] - e[1])


def test_pagerank_digitally_three_ways_agree():
    g = google_matrix(web_graph(15, 4), 0.85)
    assert np.allclose(g.sum(axis=0), 1.0)
    r = digital_pagerank(g)
    lam, vec = np.linalg.eig(g)
    top = np.real(vec[:, np.argmax(lam.real)])
    assert np.allclose(r, top / top.sum(), atol=1e-10)
    a, b = pagerank_system(g, 0.85)
    assert np.allclose(np.linalg.solve(a, b), r, atol=1e-10)
    assert top_k_agreement(r, r) == 1.0 and top_k_agreement(-r, r, 3) == 0.0


def test_stability_condition():
    g_in = 1e-4
    assert closed_loop_stability(1e-5 * np.eye(3), np.full(3, 3e-5), g_in) > 0
    assert closed_loop_stability(-1e-5 * np.eye(3), np.full(3, 3e-5), g_in) < 0
    rotation = 1e-5 * np.array([[0.0, 1.0], [-1.0, 0.0]])  # eigenvalues ±i: marginal, refused
    assert closed_loop_stability(rotation, np.full(2, 2e-5), g_in) <= 0


# -- on the simulated bench ---------------------------------------------------------------------------------
def test_schrodinger_lowest_states_with_energies_measured_on_the_bench():
    rec = MemoryRecorder()
    r, _ = run({"problem": "schrodinger", "n": 6, "states": 2, "potential": "harmonic"}, rec)
    assert np.all(r.overlaps > 0.99), r.overlaps
    assert np.all(r.energy_rel_errors < 0.15), r.energy_rel_errors
    exact = np.linalg.eigvalsh(hamiltonian(6, "harmonic", 100.0)[0])[:2]
    assert np.allclose(r.energies_exact, exact)
    assert np.all(r.energies != exact)  # measured, not copied from the exact matrix
    rows = np.array(rec.streams["schrodinger_states"].rows).reshape(-1, 9)
    assert rows.shape[0] == 2 and np.allclose(rows[:, 1], r.energies)
    assert len(rec.streams["wavefunctions"].rows) == 2 and r.wavefunctions.shape == (2, 6)
    assert len(r.settle_times) == 2 and all(t > 0 for t in r.settle_times)
    runs = np.array(rec.streams["eigen_runs"].rows).reshape(-1, 4)
    assert set(runs[:, 0]) == {0.0, 1.0} and runs[:, 2].min() == 0.0 and runs[:, 2].max() == 1.0


@pytest.mark.parametrize("circuit", ["eigenvector", "solve"])
def test_pagerank_ranks_agree_with_the_digital_pagerank(circuit):
    r, _ = run({"problem": "pagerank", "n": 11, "circuit": circuit, "seed": 1})
    assert r.kendall_tau > 0.8 and r.top10 >= 0.8, (r.kendall_tau, r.top10)
    assert r.eigenvalue_rel_error < 0.05
    assert r.scores.sum() == pytest.approx(1.0)


def test_inverse_by_unit_right_hand_sides():
    rec = MemoryRecorder()
    r, took = run({"problem": "inverse", "n": 5, "condition": 4.0}, rec)
    assert r.inverse.shape == (5, 5) and r.inverse_rel_error < 0.05
    assert r.stability_margin > 0 and len(rec.streams["inverse_columns"].rows) == 5
    values, _ = resolve_params(OneStepExperiment.params_spec, {"problem": "inverse", "n": 5, "condition": 4.0})
    assert 0.5 < OneStepExperiment.estimate(values, parse_station(TEXT)).instrument_time / took < 2.0


def test_estimate_of_a_schrodinger_run_holds():
    params = {"problem": "schrodinger", "n": 5, "states": 2, "potential": "double"}
    _, took = run(params)
    values, _ = resolve_params(OneStepExperiment.params_spec, params)
    assert 0.5 < OneStepExperiment.estimate(values, parse_station(TEXT)).instrument_time / took < 2.0


def test_example_campaign_validates():
    from pathlib import Path

    from xbarlab.campaigns import load_campaign

    campaign = load_campaign(Path(__file__).resolve().parents[1] / "campaigns" / "one_step.toml")
    assert {s.params["problem"] for s in campaign.steps} == {"schrodinger", "pagerank", "inverse"}
    assert {s.params["potential"] for s in campaign.steps if s.params["problem"] == "schrodinger"} == {
        "square", "harmonic", "double"}
    for step, est in campaign.estimate():
        assert 0 < est.instrument_time < 3600, step.step_id


def test_a_matrix_the_circuit_cannot_solve_is_refused_before_programming(tmp_path):
    bad = tmp_path / "indefinite.npy"
    np.save(bad, np.diag([1.0, 0.5, -0.5, 1.0]))
    rec = MemoryRecorder()
    with pytest.raises(ConfigError, match=r"cannot solve this 4x4 matrix stably: D\^-1 A_G has an eigenvalue "
                       r"with real part -0\.1"):
        run({"problem": "inverse", "matrix": str(bad)}, rec)
    assert not rec.calibrations and not rec.streams  # nothing programmed, nothing solved


def test_wavefunction_figure(tmp_path):
    pytest.importorskip("matplotlib")
    from xbarlab.experiments.one_step_plot import plot_result

    params = {"problem": "schrodinger", "n": 5, "states": 2, "potential": "square", "depth": 50.0}
    r, _ = run(params)
    png = tmp_path / "psi.png"
    assert plot_result(r, params, png) == f"plotted 2 wavefunctions to {png}" and png.stat().st_size > 5000


def test_cli_refuses_it_in_one_line(tmp_path, capsys):
    bad = tmp_path / "negative.npy"
    np.save(bad, -np.eye(3))
    assert main(["onestep", "--problem", "inverse", "--matrix", str(bad), "-q", "-o", str(tmp_path / "x.h5")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot solve this 3x3 matrix stably" in err[0], err


def test_step_type_checks_the_array_fits():
    cls = STEP_TYPES["one_step"]
    values, problems = resolve_params(cls.params_spec, {"problem": "pagerank", "n": 20})
    assert problems == []
    assert any("columns" in p for p in cls.check(values, parse_station(TEXT), "steps[0].params"))
    values, _ = resolve_params(cls.params_spec, {"n": 4, "states": 5})
    assert any("states = 5 exceeds" in p for p in cls.check(values, parse_station(TEXT), "s"))


def test_a_logged_run_replays_bit_for_bit(tmp_path, capsys):
    from xbarlab.logbook import LogReader
    from xbarlab.logbook.replay import replay

    log, png = tmp_path / "pagerank.h5", tmp_path / "scores.png"
    assert main(["onestep", "--problem", "pagerank", "-n", "10", "-q", "-o", str(log), "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "Kendall tau" in out and f"plotted scores of 10 pages to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert LogReader(log).runs()[-1]["kind"] == "one_step"
    replay(str(log))  # raises ReplayDivergence at the first difference


def test_cli_options_come_from_the_param_declarations():
    from xbarlab.cli import build_parser
    from xbarlab.experiments.cli_options import format_value, option_name

    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    parser = sub.choices["onestep"]
    options = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    for spec in OneStepExperiment.params_spec:
        assert f"(default: {format_value(spec.default, spec.units)})" in options[option_name(spec)].help, spec.name
