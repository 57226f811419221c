"""xbarlab: analog in-memory computing experiments on resistive crossbar arrays."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("xbarlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
