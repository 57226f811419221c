"""Validation of SMU replies: a reply that fails a check is a ProtocolError, never a number.

SCPI and TSP replies carry no checksum, so a reply is accepted only when it is printable
ASCII, has exactly the expected fields in the instrument's number format, lies in the range
the request allows, and agrees with a second copy: stored data (identity, buffers) is read
twice and must be identical; a measurement is taken twice in one command line and the two
readings must agree within the reading noise (a third decides when they do not). Status
read in the same line (output on/off, source level) must match what the host set, which
also reveals an instrument that reset itself (:class:`InstrumentResetDetected`).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from typing import TypeVar

from xbarlab.errors import ProtocolError

T = TypeVar("T")

#: one SCPI/TSP number: NR1, NR2 or NR3 (no hex, no "inf"/"nan" words)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$")
_ERROR = re.compile(r'^\s*([+-]?\d+)\s*,\s*"(.*)"\s*$')
#: how many times an idempotent query is repeated after a garbled reply
ATTEMPTS = 4
#: two readings of one quantity agree when they differ by at most REL·|x| + the absolute floor
AGREE_REL = 0.005


class InstrumentResetDetected(ProtocolError):
    """The instrument lost the state the host set (it reset itself, e.g. after a power glitch)."""


class SettingMismatch(ProtocolError):
    """A reply shows a setting other than the one the host made: garbled once, or lost (a reset) if it persists."""


def printable(reply: str, name: str, what: str) -> str:
    """``reply`` if every character is printable ASCII (or a tab); ProtocolError otherwise."""
    bad = next((ch for ch in reply if not (" " <= ch <= "~" or ch == "\t")), None)
    if bad is not None:
        raise ProtocolError(f"{name}: non-ASCII byte 0x{ord(bad):02x} in the reply to {what}: {reply[:60]!r}")
    return reply


def numbers(reply: str, name: str, what: str, count: int | None = None, sep: str = ",") -> list[float]:
    """The finite numbers of a ``sep``-separated reply; exactly ``count`` of them when given."""
    fields = [f.strip() for f in printable(reply, name, what).strip().split(sep)]
    if fields == [""]:
        fields = []
    if count is not None and len(fields) != count:
        raise ProtocolError(f"{name}: expected {count} value(s) from {what}, got {len(fields)}: {reply[:60]!r}")
    out = []
    for f in fields:
        if not _NUMBER.match(f):
            raise ProtocolError(f"{name}: {f[:30]!r} in the reply to {what} is not a number")
        x = float(f)
        if not math.isfinite(x):
            raise ProtocolError(f"{name}: {f!r} in the reply to {what} is not finite")
        out.append(x)
    return out


def flag(reply: str, name: str, what: str, true: str = "1", false: str = "0") -> bool:
    """A boolean reply that must be exactly ``true`` or ``false``."""
    r = printable(reply, name, what).strip()
    if r not in (true, false):
        raise ProtocolError(f"{name}: expected {true} or {false} from {what}, got {r[:30]!r}")
    return r == true


def agree(a: float, b: float, floor: float, rel: float = AGREE_REL) -> bool:
    """Whether two readings of one quantity agree within ``rel``·|x| + ``floor``."""
    return abs(a - b) <= rel * max(abs(a), abs(b)) + floor


def confirmed(first: float, second: float, more: Callable[[], float], floor: float, name: str, what: str,
              limit: int = 5) -> float:
    """The earliest reading that another one agrees with: the first when the second agrees, else more
    readings (``more``) are taken, up to ``limit`` in all; ProtocolError when no two agree."""
    seen = [first, second]
    while True:
        for k, x in enumerate(seen):
            if any(agree(x, y, floor) for j, y in enumerate(seen) if j != k):
                return x
        if len(seen) >= limit:
            raise ProtocolError(f"{name}: {len(seen)} readings of {what} disagree pairwise "
                                f"({', '.join(f'{x:.6g}' for x in seen)})")
        seen.append(more())


def repeat(fn: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Call an idempotent exchange until its reply passes validation (ProtocolError), at most ``attempts`` times.

    A setting that reads back wrong in every attempt was lost: :class:`InstrumentResetDetected`.
    """
    for k in range(attempts):
        try:
            return fn()
        except InstrumentResetDetected:
            raise
        except SettingMismatch as exc:
            if k == attempts - 1:
                raise InstrumentResetDetected(f"{exc} in {attempts} replies: the instrument reset itself") from None
        except ProtocolError:
            if k == attempts - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def scpi_error(reply: str, name: str) -> tuple[int, str]:
    """A ``:SYST:ERR?`` reply → (code, message), checked for consistency.

    Only code 0 says "No error"; a reply whose code reads 0 but whose message is garbled, or
    whose message is a recognisable "No error" under a garbled code, is the empty queue. Any
    other reply that does not parse (or a non-zero code with the "No error" text) is a
    ProtocolError: the real error it carried is not known.
    """
    text = reply
    m = _ERROR.match(text)
    if m and _NUMBER.match(m.group(1)):
        code, message = int(m.group(1)), m.group(2)
        if code == 0:
            return 0, "No error"
        if message.lower() != "no error" and message.isprintable() and message.isascii():
            return code, message
    if difflib.SequenceMatcher(None, text.strip().lower(), '0,"no error"').ratio() >= 0.85:
        return 0, "No error"  # one or two bytes garbled in the empty-queue reply (a real error's code differs)
    raise ProtocolError(f"{name}: garbled error-queue reply {reply[:60]!r}; an instrument error may have been lost")


def same_twice(query: Callable[[], str | None], name: str, what: str, attempts: int = 8) -> str:
    """A reply that reads back identically twice (stored data: identity, buffers); None never matches.

    Line noise hits each copy independently, so two identical copies are the uncorrupted reply.
    """
    seen: set[str] = set()
    for _ in range(attempts):
        r = query()
        if r is not None:
            if r in seen:
                return r
            seen.add(r)
    raise ProtocolError(f"{name}: {what} never read back the same twice in {attempts} tries")


def stored_numbers(query: Callable[[], str | None], count: int, name: str, what: str, sep: str = ",",
                   attempts: int = 8) -> list[float]:
    """``count`` numbers of stored data (a reading buffer), read as often as needed (at most ``attempts``
    times) until every field has arrived identically in two copies; copies with the wrong number of
    fields are set aside. Long replies rarely arrive whole under line noise, but each field does."""
    copies: list[list[str]] = []
    agreed: list[str | None] = [None] * count
    for _ in range(attempts):
        r = query()
        if r is None:
            continue
        fields = [f.strip() for f in r.strip().split(sep)]
        if len(fields) != count:
            continue
        for k, f in enumerate(fields):
            if agreed[k] is None and _NUMBER.match(f) and any(c[k] == f for c in copies):
                agreed[k] = f
        copies.append(fields)
        if all(a is not None for a in agreed):
            return [float(a) for a in agreed if a is not None]
    missing = sum(a is None for a in agreed)
    raise ProtocolError(f"{name}: {missing} of {count} values of {what} never arrived the same twice "
                        f"in {attempts} reads")
