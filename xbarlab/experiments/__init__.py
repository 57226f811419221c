"""Experiments: step-by-step, abortable, logged runs on an open station."""

from xbarlab.experiments.base import (
    STEP_TYPES,
    Aborted,
    AbortToken,
    Estimate,
    Experiment,
    MemoryRecorder,
    Param,
    Progress,
    Recorder,
    register,
    resolve_params,
)

__all__ = [
    "Aborted",
    "AbortToken",
    "Estimate",
    "Experiment",
    "MemoryRecorder",
    "Param",
    "Progress",
    "Recorder",
    "STEP_TYPES",
    "register",
    "resolve_params",
]
