"""Parameter groups the array experiments share, declared once (:class:`~xbarlab.runs.step.ParamGroup`).

A step takes a group with ``*GROUP()``; a step whose published figures were measured with another
default keeps it with an override, e.g. ``*PROGRAMMING(tolerance=0.005)`` (closed loop, linear solve,
one-step), ``tolerance=0.02`` (training's initial weights), ``0.03`` (PCM drift).
"""

from __future__ import annotations

from xbarlab.runs.step import Param, ParamGroup

#: the conductance window weights are mapped onto (S)
CONDUCTANCE_WINDOW = ParamGroup("conductance window", (
    Param("g_min", float, 5e-6, "S", "low end of the conductance window", min=0.0),
    Param("g_max", float, 60e-6, "S", "high end of the conductance window", min=1e-9),
))

#: write-verify programming of the weights: tolerance and pulse shape
PROGRAMMING = ParamGroup("programming", (
    Param("tolerance", float, 0.01, help="write-verify tolerance, fraction of the window", min=1e-4, max=0.5),
    Param("pulse_amplitude", float, 1.2, "V", "programming (and update) pulse amplitude", min=0.0),
    Param("pulse_width", float, 100e-9, "s", "programming (and update) pulse width", min=1e-9),
))

#: input full scale of the analog MVMs (V)
MVM_INPUT = ParamGroup("MVM input", (
    Param("v_in", float, 0.2, "V", "input full scale", min=1e-3),
))

#: where on the array a matrix is placed, and the seed of the run's random choices
PLACEMENT = ParamGroup("placement", (
    Param("row0", int, 0, min=0, help="first array row of the matrix"),
    Param("col0", int, 0, min=0, help="first array column of the matrix"),
    Param("seed", int, 0, help="seed of the run's random choices (inputs, data split, initial weights)"),
))

#: how a calibration step gets its read-path calibration, and the conductance range it reads (S)
READ_CALIBRATION = ParamGroup("read calibration", (
    Param("calibration", str, "auto", help="read-path calibration: auto (newest logged, else measure) | measure",
          choices=("auto", "measure")),
    Param("max_calibration_age", float, 0.0, "s",
          "auto: a logged read-path calibration older than this (instrument time) is measured again; 0: any age",
          min=0.0),
    Param("g_max_expected", float, 150e-6, "S", "largest conductance expected (sets the TIA range)", min=1e-9),
))
