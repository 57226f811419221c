"""Fault injection for emulated instruments.

Faults act at the byte level of an emulator's output (what the driver receives) or
on its state, so drivers and the layers above see exactly what real hardware would
show them: a missing reply, a corrupted or truncated frame, an instrument that
reset itself, a cell that dies mid-run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FaultPlan:
    """Switches for one emulator. Probabilities are per reply; counts are one-shot.

    * ``timeout_probability`` / ``timeout_next``: swallow a reply (the driver times out).
    * ``corrupt_probability`` / ``corrupt_next``: flip one bit of a reply.
    * ``drop_probability`` / ``drop_next``: drop one byte of a reply.
    * ``reset_next``: the instrument resets to its power-on state before the next command
      (outputs off, settings lost), as after a power glitch.
    """

    timeout_probability: float = 0.0
    corrupt_probability: float = 0.0
    drop_probability: float = 0.0
    timeout_next: int = 0
    corrupt_next: int = 0
    drop_next: int = 0
    reset_next: int = 0
    seed: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def _take(self, counter: str, probability: float) -> bool:
        remaining = getattr(self, counter)
        if remaining > 0:
            setattr(self, counter, remaining - 1)
            return True
        return probability > 0 and bool(self._rng.random() < probability)

    def take_reset(self) -> bool:
        """Whether the instrument should reset before handling the next command."""
        if self.reset_next > 0:
            self.reset_next -= 1
            return True
        return False

    def mangle_reply(self, reply: bytes) -> bytes:
        """Apply reply faults; return the bytes the driver will actually receive."""
        if not reply:
            return reply
        if self._take("timeout_next", self.timeout_probability):
            return b""
        if self._take("corrupt_next", self.corrupt_probability):
            data = bytearray(reply)
            # never corrupt the final terminator byte, so line protocols still see a line
            pos = int(self._rng.integers(0, max(1, len(data) - 1)))
            data[pos] ^= 1 << int(self._rng.integers(0, 8))
            reply = bytes(data)
        if self._take("drop_next", self.drop_probability):
            pos = int(self._rng.integers(0, max(1, len(reply) - 1)))
            reply = reply[:pos] + reply[pos + 1 :]
        return reply
