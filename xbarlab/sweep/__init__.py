"""Sweeps of campaigns over simulator and step parameters, and a bench queue, on Dask distributed."""

from xbarlab.sweep.spec import Axis, Point, Sweep, load_sweep, parse_sweep

__all__ = ["Axis", "Point", "Sweep", "load_sweep", "parse_sweep"]
