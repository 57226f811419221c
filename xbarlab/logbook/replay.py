"""Offline replay (:mod:`xbarlab.runs.replay`) under its older import path, with every built-in step type
registered: ``from xbarlab.logbook.replay import replay`` keeps working."""

import xbarlab.experiments.catalog  # noqa: F401 - registers the built-in step types
from xbarlab.runs.replay import NOT_REDERIVED, ReplayReport, ReplayStation, RunReplay, replay

__all__ = ["NOT_REDERIVED", "ReplayReport", "ReplayStation", "RunReplay", "replay"]
