"""Command-line options generated from an experiment's :class:`~xbarlab.experiments.base.Param` declarations.

Each parameter becomes ``--name-with-dashes`` with its type, choices, unit, range and default
taken from the declaration, so a default lives in one place. Options left out on the command
line are not passed at all: the experiment then applies the declared default itself.
"""

from __future__ import annotations

import argparse
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from xbarlab.experiments.base import Param


def format_value(value: Any, units: str = "") -> str:
    """A parameter value as a user writes it, with its unit."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, list):
        if not value:
            return "none"
        text = " ".join(format_value(v) for v in value)
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return f"{text} {units}".rstrip() if units and not isinstance(value, (str, bool)) else text


def describe(spec: Param) -> str:
    """Help text of a parameter: what it is, its range or choices and its default with the unit."""
    parts = [spec.help or spec.name.replace("_", " ")]
    if spec.min is not None and spec.max is not None:
        parts.append(f"range {spec.min:g}..{spec.max:g} {spec.units}".rstrip())
    elif spec.min is not None:
        parts.append(f">= {spec.min:g} {spec.units}".rstrip())
    elif spec.max is not None:
        parts.append(f"<= {spec.max:g} {spec.units}".rstrip())
    text = "; ".join(parts)
    if spec.required:
        return f"{text} (required)"
    return f"{text} (default: {format_value(spec.default, spec.units)})"


def _scalar(text: str) -> Any:
    """One list element typed as TOML would type it (``2`` int, ``0.1`` float, else the bare word)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def option_name(spec: Param) -> str:
    return "--" + spec.name.replace("_", "-")


def add_param_options(
    parser: argparse.ArgumentParser,
    specs: Iterable[Param],
    *,
    short: Mapping[str, str] | None = None,
    many: Iterable[str] = (),
    skip: Iterable[str] = (),
) -> None:
    """Add one option per parameter. ``short``: extra option strings (``{"n": "-n"}``); ``many``: scalar
    parameters that also accept several values (``--v-in 0.1 0.2``); ``skip``: parameters left out."""
    short = dict(short or {})
    many, skip = set(many), set(skip)
    for spec in specs:
        if spec.name in skip:
            continue
        flags = [option_name(spec), *([short[spec.name]] if spec.name in short else [])]
        kw: dict[str, Any] = {"dest": spec.name, "default": argparse.SUPPRESS, "help": describe(spec)}
        if spec.type is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif spec.type is list:
            kw.update(nargs="*", type=_scalar, metavar="VALUE")
        else:
            kw["type"] = spec.type
            if spec.choices is not None:
                kw["choices"] = spec.choices
            else:
                kw["metavar"] = spec.units or spec.type.__name__.upper()
            if spec.name in many:
                kw["nargs"] = "+"
        parser.add_argument(*flags, **kw)


def params_from_args(args: argparse.Namespace, specs: Iterable[Param]) -> dict[str, Any]:
    """The parameters given on the command line (only those: the rest keep their declared defaults)."""
    return {s.name: getattr(args, s.name) for s in specs if hasattr(args, s.name)}
