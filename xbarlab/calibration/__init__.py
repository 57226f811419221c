"""Calibration layer: read-path calibration, device characterisation, write-verify programming,
weight mapping, residual (multi-array) programming and PCM drift compensation."""

from xbarlab.calibration.device import BoundsMap, DeviceFit, fit_pulse_response, measure_bounds, pulse_response
from xbarlab.calibration.pipeline import Prepared, prepare, program_matrix
from xbarlab.calibration.readpath import CalibratedBoard, ReadCalibration, calibrate_read_path
from xbarlab.calibration.writeverify import ProgramReport, PulseModel, program_conductances

__all__ = [
    "BoundsMap",
    "CalibratedBoard",
    "DeviceFit",
    "Prepared",
    "ProgramReport",
    "PulseModel",
    "ReadCalibration",
    "calibrate_read_path",
    "fit_pulse_response",
    "measure_bounds",
    "prepare",
    "program_conductances",
    "program_matrix",
    "pulse_response",
]
