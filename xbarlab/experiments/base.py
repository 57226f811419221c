"""The step framework under its older import path: everything here lives in :mod:`xbarlab.runs`.

``from xbarlab.experiments.base import Experiment, Param, register, ...`` keeps working; new code
imports from :mod:`xbarlab.runs.step` and :mod:`xbarlab.runs.recorder`.
"""

from xbarlab.runs.recorder import MemoryRecorder, Recorder, Stream
from xbarlab.runs.step import (
    BEFORE_EACH_RUN,
    CATEGORIES,
    STEP_TYPES,
    Aborted,
    AbortToken,
    Estimate,
    Experiment,
    Param,
    ParamGroup,
    PlotSpec,
    Progress,
    did_you_mean,
    register,
    resolve_params,
)

__all__ = [
    "BEFORE_EACH_RUN", "CATEGORIES", "STEP_TYPES", "Aborted", "AbortToken", "Estimate", "Experiment", "MemoryRecorder",
    "Param", "ParamGroup", "PlotSpec", "Progress", "Recorder", "Stream", "did_you_mean", "register", "resolve_params",
]
