"""Validation of SMU replies: a reply that fails a check is a ProtocolError, never a number.

SCPI and TSP replies carry no checksum, so a reply is accepted only when it is printable
ASCII, has exactly the expected fields, writes every number in the instrument's one shape
(a lost or extra digit, sign or point stands out), lies in the range the request allows, and
is confirmed by a second copy:

* a measurement is taken twice in one command line; the two readings must agree within
  ``AGREE_REL`` (0.5 %) plus an absolute floor, more readings decide when they do not;
* stored data (identity, sweep buffers) is read until every field has arrived identically
  twice (line noise hits each copy independently);
* settings read in the same line as a reading (output on/off, source level) must be what
  the host set: once wrong is a garbled reply (repeated), wrong in every repeat means the
  instrument lost them (:class:`InstrumentResetDetected`, it reset itself).

Idempotent queries are repeated (``ATTEMPTS``) after a garbled reply. A corruption that moves
a reading by less than the agreement tolerance cannot be told from reading noise.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import math
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import numpy as np

from xbarlab.errors import ProtocolError

T = TypeVar("T")

#: one SCPI/TSP number: NR1, NR2 or NR3 (no hex, no "inf"/"nan" words)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$")
_ERROR = re.compile(r'^\s*([+-]?\d+)\s*,\s*"(.*)"\s*$')
#: how many times an idempotent query is repeated after a garbled reply
ATTEMPTS = 8
#: two readings of one quantity agree when they differ by at most REL·|x| + the absolute floor
AGREE_REL = 0.005


#: whether drivers send the confirming traffic above (False only while replaying a log written before it)
_CONFIRMING = contextvars.ContextVar("xbarlab_confirming_traffic", default=True)
_FLOOR_PAIRS = contextvars.ContextVar("xbarlab_floor_pairs_confirm", default=False)


def confirming() -> bool:
    """Whether the drivers take second readings and copies (every live session does)."""
    return _CONFIRMING.get()


@contextlib.contextmanager
def single_copy_traffic() -> Iterator[None]:
    """Drivers send the traffic of xbarlab before reply confirmation (logbook format 1): one reading per
    measurement, one copy of stored data. Only for replaying logs written then."""
    token = _CONFIRMING.set(False)
    try:
        yield
    finally:
        _CONFIRMING.reset(token)


@contextlib.contextmanager
def floor_pairs_agree() -> Iterator[None]:
    """Drivers accept two readings that agree only through the absolute floor, as before driver traffic
    revision 3. Only for replaying sessions written then."""
    token = _FLOOR_PAIRS.set(True)
    try:
        yield
    finally:
        _FLOOR_PAIRS.reset(token)


class InstrumentResetDetected(ProtocolError):
    """The instrument lost the state the host set (it reset itself, e.g. after a power glitch)."""


class SettingMismatch(ProtocolError):
    """A reply shows a setting other than the one the host made: garbled once, or lost (a reset) if it persists."""


def _shape(field: str, signed: bool) -> tuple[int, ...] | str:
    """:func:`number_format`, by default without the sign: not every instrument writes "+" for positive
    numbers (TSP never does), so a lost "-" is left to the agreement of two copies."""
    shape = number_format(field)
    return shape if signed or isinstance(shape, str) else shape[1:]


_SHAPE = re.compile(r"^([+-]?)(\d*)(\.?)(\d*)(?:([eE])([+-]?)(\d*))?$")


def number_format(field: str) -> tuple[int, ...] | str:
    """The shape of a number as the instrument wrote it (sign, digits before and after the point,
    exponent sign and digits). An instrument writes every value of a reply in one shape, so a field
    that lost or gained a byte (a dropped digit, sign or point) stands out."""
    m = _SHAPE.match(field.strip())
    if not m:
        return field
    sign, whole, point, frac, e, esign, edigits = m.groups()
    return (len(sign) > 0, len(whole), len(point), len(frac), len(e or ""), len(esign or ""), len(edigits or ""))


def same_format(fields: list[str], name: str, what: str, signed: bool = False) -> None:
    """ProtocolError unless every number field has the same shape (see :func:`number_format`)."""
    shapes = {_shape(f, signed) for f in fields}
    if len(shapes) > 1:
        raise ProtocolError(f"{name}: values in the reply to {what} differ in format ({', '.join(fields)[:80]})")


def printable(reply: str, name: str, what: str) -> str:
    """``reply`` if every character is printable ASCII (or a tab); ProtocolError otherwise."""
    bad = next((ch for ch in reply if not (" " <= ch <= "~" or ch == "\t")), None)
    if bad is not None:
        raise ProtocolError(f"{name}: non-ASCII byte 0x{ord(bad):02x} in the reply to {what}: {reply[:60]!r}")
    return reply


def numbers(reply: str, name: str, what: str, count: int | None = None, sep: str = ",",
            signed: bool = False) -> list[float]:
    """The finite numbers of a ``sep``-separated reply; exactly ``count`` of them when given."""
    fields = [f.strip() for f in printable(reply, name, what).strip().split(sep)]
    if fields == [""]:
        fields = []
    if count is not None and len(fields) != count:
        raise ProtocolError(f"{name}: expected {count} value(s) from {what}, got {len(fields)}: {reply[:60]!r}")
    same_format(fields, name, what, signed)
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
    readings (``more``) are taken, up to ``limit`` in all; ProtocolError when no two agree.

    Two readings that agree only through the absolute ``floor`` (both near zero, relatively apart) need a
    third that agrees too: a flipped exponent digit turns a reading into a near-zero number (7.9e-06 A into
    7.9e-86 A), and two such copies would otherwise agree with each other."""
    seen = [first, second]
    while True:
        for k, x in enumerate(seen):
            partners = [y for j, y in enumerate(seen) if j != k and agree(x, y, floor)]
            if len(partners) >= 2 or any(agree(x, y, 0.0) for y in partners) or (partners and _FLOOR_PAIRS.get()):
                return x
        if len(seen) >= limit:
            return _noisy_consensus(seen, floor, name, what, more)
        seen.append(more())


#: a reading further than this many robust standard deviations (MAD) from the trend is an outlier
OUTLIER_SIGMAS = 5.0
#: readings taken of a quantity that no two agree on: enough for a robust spread (a median and MAD of 9)
NOISY_READINGS = 9
#: a corrupted digit of the exponent moves a reading by whole decades: two readings more than this many
#: decades apart are never the same noisy quantity (1/f read noise of 100 % spreads ~0.5 decade at 3σ)
DECADES_MAX = 1.0


def _noisy_consensus(seen: list[float], floor: float, name: str, what: str, more: Callable[[], float] | None = None
                     ) -> float:
    """No two readings agree within ``AGREE_REL``: the quantity itself is noisy or moving (PCM 1/f read
    noise, a drifting or read-disturbed cell), or several replies were corrupted.

    Line noise corrupts a reply's bytes: a flipped digit moves a reading anywhere from a trailing digit
    to whole decades (exponent), independently in each reply and rarely; a noisy quantity spreads every
    reading, continuously. So more readings are taken (``more``, up to ``NOISY_READINGS``) and judged in
    log space when two thirds of them have the quantity's sign and lie above the absolute ``floor`` (a
    noise of ±100 % is a factor, not an offset; the others are then outside): around a robust trend
    (Theil–Sen line through the readings in order, so a slowly moving cell is not taken for noise) the
    readings within ``OUTLIER_SIGMAS`` robust deviations and half of ``DECADES_MAX`` decades of it are the
    quantity, provided the trend itself spans less than ``DECADES_MAX`` over the readings; at least two
    thirds of the readings must be, else ProtocolError. The earliest reading inside is returned (a cell
    the reads move is reported as it was before them). A corruption inside the noise band cannot be told
    from the device's own noise; it is off by less than the band."""
    from scipy.stats import theilslopes

    while more is not None and len(seen) < NOISY_READINGS:
        seen.append(more())
    x = np.asarray(seen, dtype=float)
    need = max(3, int(np.ceil(2 * x.size / 3)))
    sign = 1.0 if np.median(x) >= 0 else -1.0
    valid = sign * x > floor  # readings of the quantity's sign above the floor: judged in log space
    logs = int(valid.sum()) >= need
    t = np.arange(x.size, dtype=float)[valid] if logs else np.arange(x.size, dtype=float)
    y = np.log10(sign * x[valid]) if logs else x
    slope, intercept = theilslopes(y, t)[:2]
    r = y - (intercept + slope * t)
    r = r - np.median(r)
    sigma = 1.4826 * float(np.median(np.abs(r)))
    ok = np.abs(r) <= OUTLIER_SIGMAS * sigma + (0.0 if logs else floor)
    if logs:  # within half a decade of the trend, and the trend itself not sweeping over decades
        ok &= (np.abs(r) <= DECADES_MAX / 2) & (abs(slope) * (x.size - 1) <= DECADES_MAX)
    inside = np.zeros(x.size, dtype=bool)
    inside[np.flatnonzero(valid) if logs else np.arange(x.size)] = ok
    if int(inside.sum()) >= need:
        return float(x[np.argmax(inside)])
    raise ProtocolError(f"{name}: {len(seen)} readings of {what} disagree pairwise "
                        f"({', '.join(f'{v:.6g}' for v in seen)})")


def repeat(fn: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """Call an idempotent exchange until its reply passes validation (ProtocolError), at most ``attempts`` times.

    A setting that reads back wrong in every attempt was lost: :class:`InstrumentResetDetected`.
    """
    mismatches = 0
    for k in range(attempts):
        try:
            return fn()
        except InstrumentResetDetected:
            raise
        except ProtocolError as exc:
            mismatches += isinstance(exc, SettingMismatch)
            if k == attempts - 1:
                if mismatches == attempts:
                    raise InstrumentResetDetected(f"{exc} in {attempts} replies: the instrument reset itself") from None
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _like_no_error(message: str) -> bool:
    return difflib.SequenceMatcher(None, message.strip().strip('"').lower(), "no error").ratio() >= 0.75


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
        if code == 0 or _like_no_error(message):
            return 0, "No error"  # only the empty queue says "No error": a garbled code with it is still 0
        if message.isprintable() and message.isascii():
            return code, message
    empty = '0,"no error"'
    close = difflib.SequenceMatcher(None, text.strip().lower(), empty).ratio() >= 0.75
    if close and abs(len(text.strip()) - len(empty)) <= 2:
        return 0, "No error"  # one or two bytes garbled in the empty-queue reply (a real error's code differs)
    raise ProtocolError(f"{name}: garbled error-queue reply {reply[:60]!r}; an instrument error may have been lost")


def same_twice(query: Callable[[], str | None], name: str, what: str, attempts: int = 12) -> str:
    """A text reply of stored data (identity, mode) whose every comma-separated field arrived identically
    in two copies with the same number of fields; None (an unusable copy) never counts.

    Line noise hits each copy independently, so two identical copies of a field are the field as sent.
    """
    copies: dict[int, list[list[str]]] = {}
    for _ in range(attempts):
        r = query()
        if r is None:
            continue
        fields = r.split(",")
        same = copies.setdefault(len(fields), [])
        same.append(fields)
        agreed = [next((f for j, f in enumerate(col) if f in col[j + 1:]), None) for col in zip(*same, strict=True)]
        if len(same) >= 2 and all(a is not None for a in agreed):
            return ",".join(a for a in agreed if a is not None)
    raise ProtocolError(f"{name}: {what} never read back the same twice in {attempts} tries")


def stored_numbers(query: Callable[[], str | None], count: int, name: str, what: str, sep: str = ",",
                   attempts: int = 12, valid: Callable[[int, float], bool] | None = None,
                   signed: bool = False) -> list[float]:
    """``count`` numbers of stored data (a reading buffer), read as often as needed (at most ``attempts``
    times) until every field has arrived identically in two copies and passes ``valid(index, value)``
    (the range the request allows); copies with the wrong number of fields are set aside. Long
    replies rarely arrive whole under line noise, but each field does."""
    copies: list[list[str]] = []
    agreed: list[str | None] = [None] * count
    widths: Counter[tuple[int, ...] | str] = Counter()
    for _ in range(attempts):
        r = query()
        if r is None:
            continue
        fields = [f.strip() for f in r.strip().split(sep)]
        if len(fields) != count:
            continue
        widths.update(_shape(f, signed) for f in fields)
        width = widths.most_common(1)[0][0]  # the instrument's format: a dropped digit is a minority
        copies.append(fields)
        for k, f in enumerate(fields):
            if agreed[k] is None and _NUMBER.match(f) and _shape(f, signed) == width \
                    and sum(c[k] == f for c in copies) >= 2 and (valid is None or valid(k, float(f))):
                agreed[k] = f
        if all(a is not None for a in agreed):
            return [float(a) for a in agreed if a is not None]
    missing = sum(a is None for a in agreed)
    raise ProtocolError(f"{name}: {missing} of {count} values of {what} never arrived the same twice "
                        f"in {attempts} reads")


def sweep_point_check(start: float, stop: float, points: int, compliance: float, *, voltage_every: int = 0,
                      voltage_offset: int = 0, current_offset: int = 1) -> Callable[[int, float], bool]:
    """A ``valid(index, value)`` for sweep buffers: currents within the compliance asked for, and
    voltages (when interleaved every ``voltage_every`` fields, or ``voltage_every=-1`` for a
    voltage-only buffer) at the staircase point asked for, or below it in magnitude under compliance."""
    step = (stop - start) / (points - 1) if points > 1 else 0.0
    tol_i = compliance * 0.01 + 1e-10

    def valid(k: int, x: float) -> bool:
        if voltage_every == -1:
            target = start + k * step
        elif voltage_every > 0 and k % voltage_every == voltage_offset:
            target = start + (k // voltage_every) * step
        else:
            return abs(x) <= compliance + tol_i
        return abs(x) <= abs(target) * (1 + 1e-3) + 1e-4 and (x * target >= 0 or abs(x) <= 1e-4)

    return valid


def check_sweep(name: str, voltage: Sequence[float], current: Sequence[float], start: float, stop: float,
                points: int, compliance: float) -> None:
    """Every point of a voltage sweep sourced the staircase voltage asked for, or less under compliance;
    anything else means the instrument did not run the sweep that was set up (it lost the set-up)."""
    target = np.linspace(start, stop, points)
    v, i = np.asarray(voltage, dtype=float), np.asarray(current, dtype=float)
    off = np.abs(v - target) > 1e-3 * np.abs(target) + 1e-3
    limited = np.abs(i) >= compliance * (1 - 1e-3)
    bad = np.flatnonzero(off & ~limited)
    if bad.size:
        k = int(bad[0])
        raise InstrumentResetDetected(
            f"{name}: sweep point {k} sourced {v[k]:.6g} V instead of {target[k]:.6g} V without reaching compliance: "
            "the instrument did not run the sweep that was set up (it reset itself)")
