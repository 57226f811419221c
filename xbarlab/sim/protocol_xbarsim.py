"""pyserial URL handler for ``xbarsim://<bench-id>/<name>``: an in-process port to an emulator.

pyserial finds this module as ``xbarlab.sim.protocol_xbarsim`` because importing
:mod:`xbarlab.sim.registry` adds ``xbarlab.sim`` to ``serial.protocol_handler_packages``.
Writes feed the emulator, which answers synchronously; reads return what is pending and
never sleep: a missing reply is a short read, exactly what a timeout gives on hardware.
"""

from __future__ import annotations

from urllib.parse import urlparse

from serial.serialutil import PortNotOpenError, SerialBase, SerialException

from xbarlab.errors import TransportError
from xbarlab.sim import registry


class Serial(SerialBase):
    """A pyserial port backed by a registered emulator."""

    def open(self) -> None:
        if self._port is None:
            raise SerialException("port must be configured before it can be used")
        if self.is_open:
            raise SerialException("port is already open")
        url = urlparse(self.portstr)
        if url.scheme != "xbarsim" or not url.netloc or not url.path.strip("/"):
            raise SerialException(f"expected xbarsim://<bench-id>/<name>, got {self.portstr!r}")
        try:
            self._emulator = registry.lookup(url.netloc, url.path.strip("/"))
        except TransportError as exc:
            raise SerialException(str(exc)) from None
        self.is_open = True

    def _reconfigure_port(self) -> None:
        """Baud rate and framing are accepted (the emulator models transfer time itself)."""

    def close(self) -> None:
        self.is_open = False

    @property
    def in_waiting(self) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        return self._emulator.pending_output()

    def read(self, size: int = 1) -> bytes:
        if not self.is_open:
            raise PortNotOpenError()
        return self._emulator.read_output(size)

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise PortNotOpenError()
        data = bytes(data)
        self._emulator.feed(data)
        return len(data)

    def reset_input_buffer(self) -> None:
        if not self.is_open:
            raise PortNotOpenError()
        self._emulator.read_output()

    def reset_output_buffer(self) -> None:
        """Nothing is buffered on the way out."""
