"""Command-line conventions: exit codes, --debug anywhere, defaults in every help, options from Param."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from xbarlab.cli import build_parser, main
from xbarlab.errors import ConfigError
from xbarlab.experiments.cli_options import option_name
from xbarlab.logbook import LogReader

ROOT = Path(__file__).parents[1]


def _all_parsers(parser: argparse.ArgumentParser, path: str = "xbarlab"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _all_parsers(sub, f"{path} {name}")


def test_python_dash_m_runs_the_cli(subprocess_env):
    out = subprocess.run([sys.executable, "-m", "xbarlab", "--version"], capture_output=True, text=True,
                         env=subprocess_env, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("xbarlab ")


@pytest.mark.parametrize("argv", [[], ["station"], ["log"], ["sim"]])
def test_missing_command_or_action_exits_2_like_argparse(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "error: the following arguments are required" in err


def test_debug_is_accepted_after_the_subcommand(tmp_path, capsys):
    missing = str(tmp_path / "missing.h5")
    assert main(["log", "show", missing]) == 2
    assert "no such log file" in capsys.readouterr().err
    with pytest.raises(ConfigError):  # --debug: the exception (and its traceback) comes through
        main(["log", "show", missing, "--debug"])
    with pytest.raises(ConfigError):
        main(["--debug", "log", "show", missing])


def test_every_option_has_help_showing_its_default():
    parser = build_parser()
    missing = []
    for path, p in _all_parsers(parser):
        formatter = p._get_formatter()
        for action in p._actions:
            if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                continue
            text = formatter._get_help_string(action) if action.help else ""
            if not action.help or "default" not in text:
                missing.append(f"{path} {action.option_strings[0]}: {text!r}")
    assert not missing, "\n".join(missing)


@pytest.mark.parametrize(("command", "cls_path"), [
    ("mvm", "xbarlab.experiments.mvm:MvmExperiment"),
    ("solve", "xbarlab.experiments.linear_solve:LinearSolveExperiment"),
    ("train", "xbarlab.experiments.training:TrainExperiment"),
    ("drift", "xbarlab.experiments.drift_inference:DriftInferenceExperiment"),
])
def test_experiment_options_come_from_param_declarations(command, cls_path):
    import importlib

    from xbarlab.experiments.cli_options import format_value, params_from_args

    module, name = cls_path.split(":")
    cls = getattr(importlib.import_module(module), name)
    parser = dict(_all_parsers(build_parser()))[f"xbarlab {command}"]
    options = {a.option_strings[0]: a for a in parser._actions if a.option_strings}
    for spec in cls.params_spec:
        action = options[option_name(spec)]
        assert f"(default: {format_value(spec.default, spec.units)})" in action.help, (spec.name, action.help)
    # nothing given: nothing passed, so the experiment applies its declared defaults itself
    assert params_from_args(parser.parse_args([]), cls.params_spec) == {}


def test_list_steps_shows_every_step_type_with_parameters_and_units(capsys):
    from xbarlab.campaigns.spec import step_types

    assert main(["run", "--list-steps"]) == 0
    out = capsys.readouterr().out
    for kind, cls in step_types().items():
        assert f"\n{kind}:" in f"\n{out}"
        for spec in cls.params_spec:
            assert f"    {spec.name} ({spec.type.__name__}" in out
    assert "read_voltage (float [V])" in out


def test_replay_of_a_missing_file_fails_before_any_progress_bar(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope.h5")]) == 2
    err = capsys.readouterr().err
    assert err == f"xbarlab: error: {tmp_path / 'nope.h5'}: no such log file\n"


def test_experiment_commands_keep_a_default_log(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    np.savez(tmp_path / "d.npz", X=np.eye(3)[y] + 0.05 * rng.normal(size=(60, 3)), y=y)
    assert main(["train", "-q", "--rule", "float", "--dataset", "d.npz", "--hidden", "3", "--epochs", "1"]) == 0
    out = capsys.readouterr().out
    (log,) = tmp_path.glob("xbarlab-train-*.h5")
    assert f"logging to {log.name}" in out
    assert [r["status"] for r in LogReader(log).runs() if r["kind"] == "train"] == ["completed"]
    assert main(["train", "-q", "--rule", "float", "--append"]) == 2  # --append needs -o
    assert "--append" in capsys.readouterr().err


def test_bad_parameters_fail_before_a_default_log_is_created(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["mvm", "-q", "--v-in", "0"]) == 2
    assert "v_in = 0.0 is below the minimum" in capsys.readouterr().err
    assert main(["mvm", "-q", "--n-out", "100"]) == 2  # does not fit the embedded 64x64 array
    assert "100 outputs need" in capsys.readouterr().err
    assert list(tmp_path.glob("*.h5")) == []


def test_run_checks_its_log_and_retries_before_drawing_progress_bars(tmp_path, capsys):
    campaign = ROOT / "campaigns" / "characterize.toml"
    assert main(["run", str(campaign), "-o", str(tmp_path / "missing" / "x.h5")]) == 2
    assert capsys.readouterr().err == f"xbarlab: error: {tmp_path / 'missing' / 'x.h5'}: folder " \
                                      f"{tmp_path / 'missing'} does not exist\n"
    (tmp_path / "old.h5").write_bytes(b"")
    assert main(["run", str(campaign), "-o", str(tmp_path / "old.h5")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["run", str(campaign), "--retries", "-1"]) == 2
    assert capsys.readouterr().err == "xbarlab: error: --retries -1: expected 0 or more\n"
