"""Exception hierarchy shared by every layer of xbarlab."""

from __future__ import annotations

import math
from typing import Any


class XbarlabError(Exception):
    """Base class of every error raised on purpose by xbarlab."""


class ConfigError(XbarlabError):
    """A station, campaign or experiment configuration is invalid.

    The message names the file, the key and what was expected.
    """


class CapabilityError(ConfigError):
    """The bench lacks an optional capability a step needs ("this board cannot …"); nothing was sent."""


def problem_listing(head: str, problems: list[str]) -> str:
    """``head: problem`` on one line for a single problem, else ``head:`` and one indented line per problem."""
    if len(problems) == 1:
        return f"{head}: {problems[0]}"
    return f"{head}:\n" + "\n".join(f"  - {p}" for p in problems)


class SafetyLimitError(XbarlabError):
    """A request would drive an instrument outside its configured safe limits.

    Raised before any byte reaches the instrument; nothing was sent.
    """

    def __init__(self, instrument: str, limit: str, value: float, allowed: str) -> None:
        self.instrument = instrument
        self.limit = limit
        self.value = value
        self.allowed = allowed
        shown = f"{value:g}"
        if math.isfinite(value) and float(shown) != value:
            shown = repr(float(value))  # e.g. 9.999999999999999e-09 s, not "1e-08", beside a 1e-08 s limit
        super().__init__(
            f"{instrument}: {limit} = {shown} is outside the safe limit {allowed}; nothing was sent"
        )


class SafetyAccessError(XbarlabError, AttributeError):
    """A name that is not a checked operation or a read-only query of the safety layer was asked for
    (a raw command, transport, driver, private member) or an attribute was assigned. Nothing was sent."""


class TransportError(XbarlabError):
    """The link to an instrument failed (closed port, unreachable address)."""


class TransportTimeout(TransportError):
    """An instrument did not answer within the transport timeout."""


class InstrumentError(XbarlabError):
    """The instrument reported an error (from its error queue or an error reply)."""

    def __init__(self, instrument: str, code: int, message: str) -> None:
        self.instrument = instrument
        self.code = code
        self.message = message
        super().__init__(f"{instrument}: error {code}: {message}")


class AdcSaturated(InstrumentError):
    """ADC samples were clipped at the TIA full scale: the reading is not a valid measurement.

    ``currents`` (A) and ``saturated`` (bool mask, same shape) hold the whole reading, or None when the
    raiser has none, so a caller can still use the unclipped samples deliberately. Drivers raise a
    subclass; code that handles clipping catches this type, never compares error codes.
    """

    def __init__(self, instrument: str, code: int, message: str, currents: Any = None, saturated: Any = None) -> None:
        super().__init__(instrument, code, message)
        self.currents = currents
        self.saturated = saturated


class ProtocolError(XbarlabError):
    """A reply could not be understood: bad framing, CRC mismatch, wrong sequence number."""


class LogbookError(ConfigError):
    """A log file is missing, damaged, not an xbarlab logbook, or would be overwritten."""


class ReplayDivergence(XbarlabError):
    """Offline replay met a command the recorded transcript does not hold at that point."""
