"""Calibration layer: read-path calibration, device characterisation, write-verify programming,
weight mapping, residual (multi-array) programming and PCM drift compensation (docs/calibration.md)."""

from xbarlab.calibration.characterize import Characterization, characterize
from xbarlab.calibration.device import (
    BoundsMap,
    DeviceFit,
    fit_pulse_response,
    form_cell,
    iv_sweep,
    pulse_response,
)
from xbarlab.calibration.drift import DriftResult, drift_study
from xbarlab.calibration.mapping import PairMapping, compensate_stuck, plan_tiles
from xbarlab.calibration.pipeline import Prepared, prepare, program_matrix
from xbarlab.calibration.readpath import CalibratedBoard, ReadCalibration, calibrate_read_path
from xbarlab.calibration.residual import DiffBlocks, ResidualResult, program_residual
from xbarlab.calibration.writeverify import ProgramReport, PulseModel, program_conductances

__all__ = [
    "BoundsMap",
    "CalibratedBoard",
    "DeviceFit",
    "DiffBlocks",
    "DriftResult",
    "PairMapping",
    "Prepared",
    "ProgramReport",
    "PulseModel",
    "ReadCalibration",
    "ResidualResult",
    "calibrate_read_path",
    "compensate_stuck",
    "drift_study",
    "fit_pulse_response",
    "form_cell",
    "iv_sweep",
    "characterize",
    "Characterization",
    "plan_tiles",
    "prepare",
    "program_conductances",
    "program_matrix",
    "program_residual",
    "pulse_response",
]
