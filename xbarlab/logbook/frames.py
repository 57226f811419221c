"""Logged streams as pandas DataFrames and xarray objects, with named dimensions and units.

Needs the ``data`` extra (``pip install "xbarlab[data]"``: pandas, xarray). Conventions:

* the first dimension of every stream is ``sample`` (one appended row: a read, a sweep point, an epoch);
* a stream with named columns (e.g. ``iv``: voltage, current, compliance) becomes a DataFrame with those
  columns / an xarray Dataset with one variable per column, each with its ``units`` attribute;
* a stream of frames (e.g. ``conductance``: sample × row × col, S) becomes a DataArray with named dims
  (``row``, ``col`` for array maps, else ``<stream>_dim1``, ...) and ``units``; as a DataFrame it is in long
  form, indexed by (sample, dims...).

Units are SI strings ("V", "A", "S", "s"; "1" for dimensionless), as the writer stored them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xbarlab.errors import ConfigError
from xbarlab.logbook.reader import StreamData

#: dimension names of a frame's axes for streams whose layout is known
KNOWN_DIMS = {"conductance": ("row", "col")}


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError:
        raise ConfigError(f"{module} is not installed: pip install \"xbarlab[data]\"") from None


def frame_dims(stream: StreamData, dims: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Dimension names of ``stream``: ``sample`` then one per frame axis (``dims`` overrides the frame's)."""
    extra = stream.data.ndim - 1
    base = stream.name.rsplit("/", 1)[-1]
    names = dims or KNOWN_DIMS.get(base) or tuple(f"{base}_dim{k}" for k in range(1, extra + 1))
    if len(names) != extra:
        raise ConfigError(f"stream {stream.name!r}: {extra} frame axes, got dims {names}")
    return ("sample", *names)


def _column_units(stream: StreamData) -> dict[str, str]:
    cols = stream.columns or []
    units = stream.units if isinstance(stream.units, list) else [stream.units] * len(cols)
    return {c: str(u) for c, u in zip(cols, units, strict=False)}


def to_pandas(stream: StreamData, run_id: str = "", dims: tuple[str, ...] | None = None) -> Any:
    """``stream`` as a pandas DataFrame; ``df.attrs`` holds ``units`` (per column), ``run_id``, ``stream``."""
    pd = _require("pandas")
    attrs: dict[str, Any] = {"run_id": run_id, "stream": stream.name}
    data = stream.data
    if stream.columns and data.ndim == 2 and data.shape[1] == len(stream.columns):
        df = pd.DataFrame(data, columns=list(stream.columns))
        df.index.name = "sample"
        attrs["units"] = _column_units(stream)
    else:
        names = frame_dims(stream, dims)
        index = pd.MultiIndex.from_product([range(n) for n in data.shape], names=list(names))
        df = pd.DataFrame({stream.name: data.reshape(-1)}, index=index)
        attrs["units"] = {stream.name: str(stream.units)}
    df.attrs.update(attrs)
    return df


def to_xarray(stream: StreamData, run_id: str = "", dims: tuple[str, ...] | None = None) -> Any:
    """``stream`` as an xarray Dataset (named columns: one variable each) or DataArray (frames), with
    ``units`` attributes on every variable and ``run_id`` / ``stream`` on the object."""
    xr = _require("xarray")
    attrs = {"run_id": run_id, "stream": stream.name}
    data = stream.data
    if stream.columns and data.ndim == 2 and data.shape[1] == len(stream.columns):
        units = _column_units(stream)
        variables = {c: xr.Variable(("sample",), data[:, j], attrs={"units": units[c]})
                     for j, c in enumerate(stream.columns)}
        return xr.Dataset(variables, coords={"sample": np.arange(len(data))}, attrs=attrs)
    names = frame_dims(stream, dims)
    coords = {name: np.arange(n) for name, n in zip(names, data.shape, strict=True)}
    return xr.DataArray(data, dims=names, coords=coords, name=stream.name.replace("/", "_"),
                        attrs={**attrs, "units": str(stream.units)})
