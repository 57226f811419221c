"""Fault injection for emulated instruments.

Faults act at the byte level of an emulator's output (what the driver receives) or
on its state, so drivers and the layers above see exactly what real hardware would
show them: a missing reply, a corrupted or truncated frame, an instrument that
reset itself, a cell that dies mid-run.

A fault plan behaves like a real intermittent fault: every plan draws from its own
random stream (OS entropy mixed with ``seed``), so a retry, a reopened session or a
resumed campaign does not meet the same fault at the same point again. ``entropy``
records the stream (``FaultPlan(seed=..., entropy=plan.entropy)`` repeats it exactly,
for a test that must); replay never needs it, since it answers from the recorded transcript.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FaultPlan:
    """Switches for one emulator. Probabilities are per reply or per byte; counts are one-shot.

    * ``timeout_probability`` / ``timeout_next``: swallow a reply (the driver times out).
    * ``corrupt_probability`` / ``corrupt_next``: flip one bit of a reply.
    * ``drop_probability`` / ``drop_next``: drop one byte of a reply.
    * ``corrupt_byte_probability`` / ``drop_byte_probability``: line noise: each byte of a reply
      independently has one bit flipped / is lost (the final terminator byte excepted).
    * ``reset_next``: the instrument resets to its power-on state before the next command
      (outputs off, settings lost), as after a power glitch; ``reset_after``: before the command
      after the next ``reset_after`` ones (-1: never).
    """

    timeout_probability: float = 0.0
    corrupt_probability: float = 0.0
    drop_probability: float = 0.0
    corrupt_byte_probability: float = 0.0
    drop_byte_probability: float = 0.0
    timeout_next: int = 0
    corrupt_next: int = 0
    drop_next: int = 0
    reset_next: int = 0
    reset_after: int = -1
    seed: int = 0
    entropy: int | None = None  # None: fresh OS entropy (recorded here once drawn)
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.entropy is None:
            self.entropy = int(np.random.SeedSequence().entropy)  # type: ignore[arg-type]
        self._rng = np.random.default_rng(np.random.SeedSequence(self.entropy, spawn_key=(int(self.seed),)))

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
        if self.reset_after >= 0:
            self.reset_after -= 1
            return self.reset_after == -1
        return False

    def _line_noise(self, reply: bytes) -> bytes:
        body = len(reply) - 1  # the terminator byte is kept, so line protocols still see a line
        if body <= 0:
            return reply
        data = bytearray(reply)
        if self.corrupt_byte_probability > 0:
            for pos in np.flatnonzero(self._rng.random(body) < self.corrupt_byte_probability):
                data[pos] ^= 1 << int(self._rng.integers(0, 8))
        if self.drop_byte_probability > 0:
            keep = np.ones(len(data), dtype=bool)
            keep[:body] = self._rng.random(body) >= self.drop_byte_probability
            data = bytearray(np.frombuffer(bytes(data), dtype=np.uint8)[keep].tobytes())
        return bytes(data)

    def mangle_reply(self, reply: bytes) -> bytes:
        """Apply reply faults; return the bytes the driver will actually receive."""
        if not reply or not (self.timeout_next or self.corrupt_next or self.drop_next or self.timeout_probability
                             or self.corrupt_probability or self.drop_probability
                             or self.corrupt_byte_probability or self.drop_byte_probability):
            return reply  # no fault armed (the usual case): nothing drawn, as below
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
        if self.corrupt_byte_probability > 0 or self.drop_byte_probability > 0:
            reply = self._line_noise(reply)
        return reply
