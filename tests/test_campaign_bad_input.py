"""Out-of-range campaign parameters are errors at validation, with their location; --dry-run never crashes."""

from __future__ import annotations

import re

import pytest

from xbarlab.campaigns.console import format_plan
from xbarlab.campaigns.spec import parse_campaign, step_types
from xbarlab.cli import main
from xbarlab.errors import ConfigError


def _campaign(kind: str, assignment: str) -> str:
    return f'[campaign]\nstation = "sim"\n[[steps]]\ntype = "{kind}"\n[steps.params]\n{assignment}\n'


@pytest.mark.parametrize(("kind", "assignment", "expected"), [
    ("drift_compensation", "times = [inf]", "steps[0].params.times[0]: expected a finite number, got inf"),
    ("drift_compensation", "times = [1.0, nan]", "steps[0].params.times[1]: expected a finite number, got nan"),
    ("drift_inference", "times = [inf]", "steps[0].params.times[0]: expected a finite number"),
    ("device_fit", "cells = 100000", "steps[0].params.cells = 100000 is more than the 64x64 array's 4096 cells"),
    ("array_read", "read_voltage = -0.2", "steps[0].params.read_voltage = -0.2 is below the minimum 0 V"),
    ("mvm", "n_out = 70", "steps[0].params: 70 outputs need 70 columns in the offset layout; only 64"),
    ("mvm", "n_in = 65", "steps[0].params: matrix region: rows 0..64, columns 0..31 do not fit the 64x64"),
    ("linear_solve", "n = 65", "steps[0].params: 65 outputs need 65 columns"),
    ("closed_loop_solve", "n = 40", "steps[0].params: 40 outputs need 80 columns in the differential"),
])
def test_out_of_range_parameters_are_errors_with_their_location(tmp_path, capsys, kind, assignment, expected):
    with pytest.raises(ConfigError, match="invalid campaign") as info:
        parse_campaign(_campaign(kind, assignment))
    assert expected in str(info.value)
    path = tmp_path / "c.toml"
    path.write_text(_campaign(kind, assignment))
    assert main(["run", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


def test_sweep_location_is_named():
    text = ('[campaign]\nstation = "sim"\n[[steps]]\ntype = "array_read"\n[steps.sweep]\n'
            "read_voltage = [0.1, -0.1]\n")
    with pytest.raises(ConfigError, match=r"read_voltage = -0.1 is below the minimum 0 V \(in steps\[0\] sweep "
                                          r"read_voltage\[1\]\)"):
        parse_campaign(text)


EXTREMES = {int: ["-1", "0", "9223372036854775807"],
            float: ["inf", "nan", "-inf", "1e308", "-1e308", "-1.0", "0.0"],
            list: ["[inf]", "[nan]", "[-1.0]", "[1e308]", "[]", '["a"]']}


def test_every_step_parameter_at_extreme_values_gives_a_plan_or_a_config_error():
    """Every numeric parameter of every step type at absurd values: validation or a dry-run plan, nothing else."""
    tried = 0
    for kind, cls in step_types().items():
        for spec in cls.params_spec:
            for value in EXTREMES.get(spec.type, []):
                tried += 1
                try:
                    format_plan(parse_campaign(_campaign(kind, f"{spec.name} = {value}")))
                except ConfigError:
                    pass
    assert tried > 300


@pytest.mark.parametrize(("steps", "expected"), [
    ('type = "aray_read"\n', "unknown step type 'aray_read' (did you mean 'array_read'?)"),
    ('type = "array_read"\n[steps.params]\nrepeat = 2\n', "repeat: unknown parameter (did you mean 'repeats'?)"),
])
def test_misspelt_names_get_a_suggestion(steps, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        parse_campaign("[[steps]]\n" + steps)
