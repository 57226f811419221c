"""A declarative SCPI command tree: one table per instrument drives parsing and the ``?`` answers.

A command is one :class:`Node` line, written as the manual prints it::

    Node("[:SOURce#]:VOLTage[:LEVel][:IMMediate][:AMPLitude]", Num(-210, 210, default=0.0), key="level_v")

* upper-case letters are the short form, the whole word the long form (either is accepted,
  nothing in between, case-insensitive);
* ``[...]`` marks an optional node, ``#`` a node whose numeric suffix is the channel (``SOUR2``),
  ``&`` a node taking another numeric suffix (``DELay:USER3``, passed to the handler);
* a node with a ``key`` is a setting: ``HEADER value`` stores it (per channel), ``HEADER?`` answers
  it in the parameter's format, ``HEADER? MIN|MAX|DEF`` answers the limits;
* ``action`` / ``query`` callables implement events and computed queries (``:INIT``, ``:READ?``).

:class:`ScpiParser` splits a program message on ``;`` (a header after ``;`` continues in the
subsystem of the previous command unless it starts with ``:`` or ``*``, as SCPI-1999 §6.2.4
says), resolves each header against the tree in O(1) and raises :class:`ScpiError` with the
SCPI error numbers (-101 .. -114 command errors, -2xx execution errors).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class ScpiError(Exception):
    """An error the instrument puts in its error queue (SCPI code and message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code},{message}")
        self.code, self.message = code, message


def undefined_header() -> ScpiError:
    return ScpiError(-113, "Undefined header")


# -- parameter types -----------------------------------------------------------------------------
_NRF = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_number(text: str) -> float:
    """An SCPI <NRf> (no units); -104 "Data type error" for anything else, -109 when empty."""
    t = text.strip()
    if not t:
        raise ScpiError(-109, "Missing parameter")
    if not _NRF.match(t):
        raise ScpiError(-104, "Data type error")
    return float(t)


def fmt_e(x: float) -> str:
    """SCPI <NR3> as these instruments print it: ``+1.000000E-03``."""
    return f"{x:+.6E}"


@dataclass(frozen=True)
class Param:
    """Base of parameter types: ``parse(text) -> value`` and ``format(value) -> str``."""

    def parse(self, text: str) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def format(self, value: Any) -> str:
        return str(value)

    def special(self, word: str) -> Any | None:
        """Value of MIN/MAX/DEF in a query argument (None: not supported)."""
        return None


@dataclass(frozen=True)
class Num(Param):
    """A number in [lo, hi] (-222 outside); accepts MINimum, MAXimum, DEFault."""

    lo: float
    hi: float
    default: float = 0.0
    integer: bool = False
    fmt: Callable[[float], str] = fmt_e

    def special(self, word: str) -> float | None:
        w = word.strip().upper()
        if w in ("MIN", "MINIMUM"):
            return self.lo
        if w in ("MAX", "MAXIMUM"):
            return self.hi
        if w in ("DEF", "DEFAULT"):
            return self.default
        return None

    def parse(self, text: str) -> float:
        x = self.special(text)
        if x is None:
            x = parse_number(text)
            if not self.lo <= x <= self.hi:
                raise ScpiError(-222, "Data out of range")
        return float(round(x)) if self.integer else x

    def format(self, value: Any) -> str:
        return str(int(value)) if self.integer else self.fmt(float(value))


def Int(lo: int, hi: int, default: int = 0) -> Num:  # noqa: N802 - a parameter type, like Num
    """An integer in [lo, hi]; answered without exponent."""
    return Num(lo, hi, default, integer=True)


@dataclass(frozen=True)
class Discrete(Param):
    """One of a few numbers (``:SYST:LFR 50|60``); -224 for any other; answered as an integer."""

    values: tuple[int, ...]

    def special(self, word: str) -> int | None:
        w = word.strip().upper()
        return {"MIN": min(self.values), "MINIMUM": min(self.values), "MAX": max(self.values),
                "MAXIMUM": max(self.values)}.get(w)

    def parse(self, text: str) -> int:
        x = self.special(text)
        if x is None:
            x = parse_number(text)
            if x not in self.values:
                raise ScpiError(-224, "Illegal parameter value")
        return int(x)


@dataclass(frozen=True)
class Bool(Param):
    """ON|OFF|1|0 (a number is rounded: non-zero is ON); answered 1 or 0."""

    def parse(self, text: str) -> bool:
        t = text.strip().upper()
        if t == "ON":
            return True
        if t == "OFF":
            return False
        try:
            return round(parse_number(t)) != 0
        except ScpiError:
            raise ScpiError(-104, "Data type error") from None

    def format(self, value: Any) -> str:
        return "1" if value else "0"


@dataclass(frozen=True)
class Choice(Param):
    """One of a set of mnemonics written ``"VOLTage"`` (short/long forms); stored as the short form.

    ``quoted``: the answer is quoted (``"CURR:DC"``) as for the 2400's ``:SENS:FUNC?``.
    ``aliases``: extra accepted spellings mapped to a choice's short form.
    """

    choices: tuple[str, ...]
    quoted: bool = False
    aliases: tuple[tuple[str, str], ...] = ()

    def parse(self, text: str) -> str:
        t = text.strip().strip("'\"").strip().upper()
        if not t:
            raise ScpiError(-109, "Missing parameter")
        for c in self.choices:
            if t in _spellings(c):
                return _short(c)
        for alias, target in self.aliases:
            if t == alias.upper():
                return target
        raise ScpiError(-224, "Illegal parameter value")

    def format(self, value: Any) -> str:
        return f'"{value}"' if self.quoted else str(value)


@dataclass(frozen=True)
class Text(Param):
    """A string (quotes removed); answered quoted."""

    def parse(self, text: str) -> str:
        return text.strip().strip("'\"")

    def format(self, value: Any) -> str:
        return f'"{value}"'


# -- the tree ------------------------------------------------------------------------------------
def _short(mnemonic: str) -> str:
    """``SOURce`` -> ``SOUR``; a multi-part choice ``CURRent:DC`` -> ``CURR:DC``."""
    return ":".join("".join(ch for ch in part if not ch.islower()) for part in mnemonic.split(":"))


def _spellings(mnemonic: str) -> set[str]:
    """Accepted upper-case spellings of a mnemonic (short and long form of each part)."""
    parts = mnemonic.split(":")
    options = [{_short(p).upper(), p.upper()} for p in parts]
    return {":".join(combo) for combo in itertools.product(*options)}


@dataclass
class Call:
    """What a handler gets: the channel index (0-based), parsed argument text, the node."""

    channel: int
    args: str
    node: Node
    suffixes: dict[str, int] = field(default_factory=dict)


@dataclass
class Node:
    """One command of the tree (see the module docstring)."""

    pattern: str
    param: Param | None = None
    key: str | None = None
    action: Callable[[Call], None] | None = None
    query: Callable[[Call], str] | None = None
    settable: bool = True
    queryable: bool = True
    on_set: Callable[[Call, Any], None] | None = None
    default: Any = None

    def default_value(self) -> Any:
        """The ``*RST`` value of a setting."""
        if self.default is not None:
            return self.default
        if isinstance(self.param, Num):
            return self.param.default
        if isinstance(self.param, Discrete):
            return self.param.values[0]
        if isinstance(self.param, Choice):
            return _short(self.param.choices[0])
        if isinstance(self.param, Bool):
            return False
        return ""

    def paths(self) -> list[tuple[tuple[str, str, str], ...]]:
        """Every header path this node accepts: tuples of (short, long, suffix kind "", "#", "&")."""
        nodes: list[tuple[str, str, str, bool]] = []
        for m in re.finditer(r"(\[)?:?([*A-Za-z][A-Za-z0-9]*)([#&])?\]?", self.pattern.replace("[1]", "#")):
            optional, word, suffix = m.group(1) is not None, m.group(2), m.group(3) or ""
            nodes.append((_short(word).upper(), word.upper(), suffix, optional))
        optional_idx = [i for i, n in enumerate(nodes) if n[3]]
        out = []
        for keep in itertools.product((True, False), repeat=len(optional_idx)):
            drop = {i for i, k in zip(optional_idx, keep, strict=True) if not k}
            out.append(tuple((s, lng, suf) for i, (s, lng, suf, _) in enumerate(nodes) if i not in drop))
        return out


_NODE = re.compile(r"^([A-Za-z]+?)(\d*)$")


class CommandTree:
    """Header lookup for a list of :class:`Node` s; raises -113 for anything not in the tree."""

    def __init__(self, nodes: Sequence[Node]) -> None:
        self.nodes = list(nodes)
        self._index: dict[tuple[str, ...], tuple[Node, tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {}
        self._spell: dict[str, str] = {}
        for node in self.nodes:
            for path in node.paths():
                key = tuple(s for s, _, _ in path)
                if key in self._index and self._index[key][0] is not node:
                    raise ValueError(f"SCPI tree: {node.pattern!r} collides with {self._index[key][0].pattern!r}")
                self._index[key] = (node, tuple(suf for _, _, suf in path), key, tuple(lng for _, lng, _ in path))
                for short, long_, _ in path:
                    self._spell[short] = short
                    self._spell[long_] = short

    def resolve(self, header: str) -> tuple[Node, dict[str, int], int | None]:
        """``SOUR2:VOLT:LEV`` -> (node, other suffixes by node, channel suffix or None)."""
        if header.startswith("*"):
            entry = self._index.get((header.upper(),))
            if entry is None:
                raise undefined_header()
            return entry[0], {}, None
        shorts, words, suffixes = [], [], {}
        for part in header.split(":"):
            m = _NODE.match(part)
            if not m:
                raise undefined_header()
            word, digits = m.group(1).upper(), m.group(2)
            # a mnemonic ending in a digit that is part of its name (CALCulate3)
            if digits and (word + digits) in self._spell:
                word, digits = word + digits, ""
            short = self._spell.get(word)
            if short is None:
                raise undefined_header()
            if digits:
                suffixes[short] = int(digits)
            shorts.append(short)
            words.append(word)
        entry = self._index.get(tuple(shorts))
        if entry is None:
            raise undefined_header()
        node, kinds, path, longs = entry
        if any(w not in (s, lng) for w, s, lng in zip(words, path, longs, strict=True)):
            raise undefined_header()  # e.g. STATe spelled where STATus is meant
        channel = None
        for short, kind in zip(path, kinds, strict=True):
            if short in suffixes:
                if not kind:
                    raise undefined_header()
                if kind == "#" and channel is None:
                    channel = suffixes.pop(short)
        return node, suffixes, channel


# -- message splitting ---------------------------------------------------------------------------
_HEADER = re.compile(r"^(:?\*?[A-Za-z][A-Za-z0-9:]*)(\?)?(?:(\s+)(.*))?$", re.S)


@dataclass
class Unit:
    """One program message unit: header (canonical text), query flag, argument text."""

    header: str
    query: bool
    args: str


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` outside quotes and parentheses; parts stripped."""
    out, cur, quote, depth = [], [], "", 0
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(depth - 1, 0)
        elif ch == sep and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def split_units(message: str) -> list[str]:
    """Split a program message on ``;`` outside quotes and parentheses."""
    return _split_top_level(message, ";")


def parse_unit(text: str, context: list[str]) -> Unit:
    """Parse one unit; ``context`` is the path prefix from the previous unit (updated in place).

    -102 "Syntax error" for a unit that is no header; -101 for characters outside ASCII.
    """
    if any(ord(ch) > 126 or (ord(ch) < 32 and ch not in "\t") for ch in text):
        raise ScpiError(-101, "Invalid character")
    m = _HEADER.match(text)
    if not m:
        raise ScpiError(-102, "Syntax error")
    head, query, space, args = m.group(1), bool(m.group(2)), m.group(3), m.group(4) or ""
    if not space and args:
        raise ScpiError(-102, "Syntax error")
    if head.endswith(":") or "::" in head:
        raise ScpiError(-102, "Syntax error")
    if head.lstrip(":").startswith("*"):
        return Unit(head.lstrip(":").upper(), query, args.strip())
    if head.startswith(":"):
        parts = head[1:].split(":")
    else:
        parts = context + head.split(":")
    context[:] = parts[:-1]
    return Unit(":".join(parts), query, args.strip())


def split_args(args: str) -> list[str]:
    """Top-level comma-separated arguments (quotes and parentheses respected)."""
    return _split_top_level(args, ",") if args.strip() else []


_CHANLIST = re.compile(r"^\(@\s*(\d+)(?:\s*[,:]\s*(\d+))*\s*\)$")


def take_channel_list(args: str) -> tuple[str, list[int] | None]:
    """Split a trailing ``(@1)`` / ``(@1,2)`` / ``(@1:2)`` channel list off the arguments."""
    parts = split_args(args)
    if parts and parts[-1].startswith("(@"):
        text = parts[-1]
        if not _CHANLIST.match(text):
            raise ScpiError(-104, "Data type error")
        nums = [int(x) for x in re.findall(r"\d+", text)]
        if ":" in text and len(nums) == 2:
            nums = list(range(nums[0], nums[1] + 1))
        return ",".join(parts[:-1]), nums
    return args, None
