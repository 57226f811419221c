"""Every array experiment is a campaign step type with valid defaults and a dry-run estimate that holds."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import xbarlab.experiments.catalog  # noqa: F401 - registers the step types
from xbarlab.campaigns import load_campaign
from xbarlab.experiments import STEP_TYPES, resolve_params
from xbarlab.instruments.config import parse_station
from xbarlab.instruments.station import Station
from xbarlab.session import resolve_station
from xbarlab.sim.stations import sim_station_text

ARRAY_EXPERIMENTS = ("mvm", "linear_solve", "closed_loop_solve", "train", "drift_inference")
CAMPAIGN = Path(__file__).resolve().parents[1] / "campaigns" / "experiments.toml"


@pytest.mark.parametrize("kind", ARRAY_EXPERIMENTS)
def test_defaults_validate_and_estimate_sanely(kind):
    cls = STEP_TYPES[kind]
    station = resolve_station(None)
    values, problems = resolve_params(cls.params_spec, {}, where=kind)
    assert problems == []
    assert cls.check(values, station, kind) == []
    est = cls.estimate(values, station)
    assert est.operations > 0 and math.isfinite(est.instrument_time) and est.instrument_time > 1.0
    if kind == "drift_inference":
        assert est.instrument_time >= max(values["times"])  # the waits are instrument time too
    else:
        assert est.instrument_time < 3600.0


def test_float_training_needs_no_instrument_time():
    cls = STEP_TYPES["train"]
    values, _ = resolve_params(cls.params_spec, {"rule": "float"})
    est = cls.estimate(values, resolve_station(None))
    assert est.operations == 0 and est.instrument_time == 0.0


def test_limits_of_the_station_are_checked():
    cls = STEP_TYPES["mvm"]
    values, _ = resolve_params(cls.params_spec, {"v_ins": [0.2, 0.9], "pulse_amplitude": 5.0})
    problems = cls.check(values, resolve_station(None), "steps[0].params")
    assert any("0.9 V exceeds the board limit max_mvm_voltage" in p for p in problems)
    assert any("pulse_amplitude = 5 V exceeds" in p for p in problems)


def test_example_campaign_validates_and_covers_every_experiment():
    campaign = load_campaign(CAMPAIGN)
    kinds = {s.kind for s in campaign.steps}
    assert kinds == set(ARRAY_EXPERIMENTS)
    assert {s.params["encoding"] for s in campaign.steps if s.kind == "mvm"} == {"amplitude", "bit_serial",
                                                                                  "pulse_width"}
    assert {s.params["inner"] for s in campaign.steps if s.kind == "linear_solve"} == {"cg", "closed_loop"}
    assert {s.params["mode"] for s in campaign.steps if s.kind == "closed_loop_solve"} == {"solve", "eigenvector"}
    for step, est in campaign.estimate():
        # instrument time is spent exactly when instrument operations are (a float baseline uses none)
        assert math.isfinite(est.instrument_time) and (est.instrument_time > 0) == (est.operations > 0), step.step_id


@pytest.mark.parametrize("kind, params", [
    ("mvm", {"n_in": 8, "n_out": 4, "vectors": 5, "sizes": [2, 4], "v_ins": [0.1, 0.2]}),
    ("linear_solve", {"n": 8, "condition": 10.0}),
    ("closed_loop_solve", {"n": 6, "rhs": 3}),
    ("train", {"rule": "sgd", "hidden": 4, "epochs": 1}),
])
def test_estimate_matches_the_simulated_instrument_time(kind, params, blobs):
    """The dry-run estimate is within a factor 2 of the instrument time the run really takes."""
    if kind == "train":
        params = {**params, "dataset": blobs}
    text = sim_station_text(rows=8, cols=32, seed=3)
    cls = STEP_TYPES[kind]
    values, _ = resolve_params(cls.params_spec, params)
    est = cls.estimate(values, parse_station(text))
    with Station.from_text(text) as station:
        t0 = station.sim_time()
        cls(station, params).run()
        took = station.sim_time() - t0
    assert 0.5 < est.instrument_time / took < 2.0, (est, took)
