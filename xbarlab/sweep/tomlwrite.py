"""Write plain TOML (tables, arrays of tables, scalars, lists) for generated station and campaign files.

``tomllib`` only reads; the files a sweep generates hold nothing but nested tables of numbers,
strings, booleans and lists, so this short writer covers them. :func:`dumps` checks its own
output by reading it back.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k)


def _value(v: Any, where: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x, where) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x, where)}" for k, x in v.items()) + "}"
    raise TypeError(f"{where}: cannot write {type(v).__name__} value {v!r} to TOML")


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _emit(table: dict[str, Any], path: list[str], out: list[str]) -> None:
    plain = {k: v for k, v in table.items() if not isinstance(v, dict) and not _is_table_array(v)}
    for k, v in plain.items():
        out.append(f"{_key(k)} = {_value(v, '.'.join([*path, k]))}")
    for k, v in table.items():
        if isinstance(v, dict):
            sub = [*path, k]
            out.append("")
            out.append("[" + ".".join(_key(p) for p in sub) + "]")
            _emit(v, sub, out)
        elif _is_table_array(v):
            sub = [*path, k]
            for item in v:
                out.append("")
                out.append("[[" + ".".join(_key(p) for p in sub) + "]]")
                _emit(item, sub, out)


def dumps(data: dict[str, Any], header: str = "") -> str:
    """TOML text for ``data``; ``header`` lines become leading comments."""
    out = [f"# {line}" for line in header.splitlines()]
    _emit(data, [], out)
    text = "\n".join(out).lstrip("\n") + "\n"
    if tomllib.loads(text) != data:  # pragma: no cover - a writer bug, never user input
        raise ValueError("TOML writer: the written text does not read back to the same data")
    return text
