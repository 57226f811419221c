"""What a driver is talking to: model families from ``*IDN?`` and each model's rated source ranges.

A driver checks the identity on open and refuses a mismatch with one clear line naming both the
expected family and what answered (another SMU, or an HTTP server on the port). Ratings are the
DC source maxima from the models' data sheets (V, A); the station compares its limits with them.

``TRAFFIC_REVISION``: the drivers' open-time traffic. Revision 1 (logs written before the open
checks) only queried the identity; revision 2 adds the status clear, the 2400's ``:OUTP ON`` before
a sweep's ``:INIT`` (the manual's +803 otherwise) with ``:OUTP OFF`` and ``:TRIG:COUN 1`` after it, and
the read-back of an output switched off; revision 3 takes a third reading when two agree only through
the absolute floor (``replies.confirmed``). Each session run records its revision (``driver_traffic``
in its params); replay opens the drivers of every session at that revision (none recorded: 1).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass

from xbarlab.errors import ConfigError, ProtocolError, TransportError, TransportTimeout

#: 3: two readings that agree only through the absolute floor are confirmed by a third (``replies.confirmed``)
TRAFFIC_REVISION = 3


@dataclass(frozen=True)
class Rating:
    """Largest DC source level of a model: ``voltage`` V, ``current`` A."""

    model: str
    voltage: float
    current: float


@dataclass(frozen=True)
class Family:
    """A driver's model family: a regex on ``*IDN?`` and per-model ratings."""

    description: str
    pattern: str
    ratings: dict[str, tuple[float, float]]
    makers: tuple[str, ...] = ("KEITHLEY INSTRUMENTS",)

    def resembles(self, reply: str) -> bool:
        """Whether ``reply`` looks like this family's identity with line noise (same maker, mostly)."""
        head = reply.upper()
        return any(difflib.SequenceMatcher(None, head[:len(m) + 2], m).ratio() >= 0.7 for m in self.makers)

    def maker_exact(self, reply: str) -> bool:
        """Whether the maker field of ``reply`` is spelled exactly as this maker's instruments spell it."""
        maker = reply.split(",")[0].strip().upper()
        return any(maker in (m, f"{m} INC.") for m in self.makers)

    def match(self, identity: str) -> Rating | None:
        m = re.search(self.pattern, identity, re.I)
        if not m:
            return None
        model = m.group(1).upper()
        volts, amps = self.ratings.get(model, (float("nan"), float("nan")))
        return Rating(model, volts, amps)


KEITHLEY_2400 = Family(
    "a Keithley 2400-series SourceMeter (2400/2401/2410/2420/2425/2430/2440)",
    r"^KEITHLEY INSTRUMENTS(?: INC\.)?,\s*MODEL (24[0-4][015])\b",
    {"2400": (210.0, 1.05), "2401": (21.0, 1.05), "2410": (1100.0, 1.05), "2420": (63.0, 3.15),
     "2425": (105.0, 3.15), "2430": (105.0, 3.15), "2440": (42.0, 5.25)},
)
KEITHLEY_2450 = Family(
    "a Keithley 2450 SourceMeter",
    r"^KEITHLEY INSTRUMENTS(?: INC\.)?,\s*MODEL (2450)\b",
    {"2450": (210.0, 1.05)},
)
KEITHLEY_2600B = Family(
    "a Keithley 2600B System SourceMeter (2601B/2602B/2604B/2611B/2612B/2614B/2634B/2635B/2636B)",
    r"^KEITHLEY INSTRUMENTS(?: INC\.)?,\s*MODEL (26[0-3][1-6]B)\b",
    {"2601B": (40.4, 3.03), "2602B": (40.4, 3.03), "2604B": (40.4, 3.03), "2611B": (202.0, 1.515),
     "2612B": (202.0, 1.515), "2614B": (202.0, 1.515), "2634B": (202.0, 1.515), "2635B": (202.0, 1.515),
     "2636B": (202.0, 1.515)},
)
KEYSIGHT_B2900 = Family(
    "a Keysight B2900-series SMU (B2901A/B2902A/B2911A/B2912A/B2961A/B2962A)",
    r"^(?:KEYSIGHT|AGILENT) TECHNOLOGIES,\s*(B29[0-6][12][AB]?)\b",
    {"B2901A": (210.0, 3.03), "B2902A": (210.0, 3.03), "B2911A": (210.0, 3.03), "B2912A": (210.0, 3.03),
     "B2961A": (210.0, 3.03), "B2962A": (210.0, 3.03), "B2901B": (210.0, 3.03), "B2902B": (210.0, 3.03),
     "B2911B": (210.0, 3.03), "B2912B": (210.0, 3.03)},
    ("KEYSIGHT TECHNOLOGIES", "AGILENT TECHNOLOGIES"),
)


def checked_identity(name: str, driver: str, family: Family, ask: Callable[[], str],
                     ask_confirmed: Callable[[], str], attempts: int = 8) -> tuple[str, Rating]:
    """The identity (confirmed by ``ask_confirmed``) and the model's rating; ConfigError on a mismatch.

    A mismatch is an answer of another maker (or none: an HTTP server), an answer outside the family given
    twice identically with the maker spelled right (another model of this maker answers consistently; an
    instrument never misspells its maker, and line noise rarely garbles two copies alike), or one after which
    the link fails. Garbled copies of this maker's identity are asked again, up to ``attempts``.
    """
    seen: list[str] = []
    timeout: TransportTimeout | None = None
    for _ in range(attempts):
        try:
            reply = ask().strip()
        except ProtocolError:  # a garbled copy (non-ASCII): ask again
            continue
        except TransportTimeout as exc:
            if not seen:
                raise  # no answer at all: the link or the instrument is down
            timeout = exc  # a reply that lost its terminator on a noisy link: ask again
            continue
        except TransportError:
            if not seen:
                raise
            check_identity(name, driver, family, seen[0])  # answered once, then closed the link
            raise
        if family.match(reply) is not None:
            identity = ask_confirmed()
            if family.match(identity.strip()) is not None:
                return identity, check_identity(name, driver, family, identity)
            continue  # the confirmed copy still carries line noise: ask again
        if (reply in seen and family.maker_exact(reply)) or not family.resembles(reply):
            # another model of this maker twice, or an answer nothing like this maker's (another maker, HTTP)
            check_identity(name, driver, family, reply)
        seen.append(reply)
    if timeout is not None and not seen:
        raise timeout  # nothing ever answered
    raise ProtocolError(f"{name}: no two identical *IDN? replies in {attempts} attempts (a noisy link?)")


def check_identity(name: str, driver: str, family: Family, identity: str) -> Rating:
    """The model's rating, or ConfigError naming the expected family and what answered."""
    rating = family.match(identity.strip())
    if rating is None:
        shown = identity.strip()[:80] or "an empty reply"
        raise ConfigError(f"{name}: driver {driver} expects {family.description}, "
                          f"but the instrument answered *IDN? with {shown!r}")
    return rating
