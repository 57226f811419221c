"""Transports: the only way drivers reach an instrument.

Drivers never touch sockets or files; they call a transport. Two kinds exist:

* :class:`MessageTransport` — line-oriented command/reply links (SCPI, TSP) over a
  pyvisa resource (:class:`VisaTransport`).
* :class:`ByteTransport` — raw byte streams (the crossbar board's framed binary
  protocol) over a pyserial port (:class:`SerialTransport`).

Wrappers with the same interface record every exchange for the logbook and answer
from a recorded transcript during offline replay (see ``xbarlab.logbook``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from xbarlab.errors import TransportError, TransportTimeout


class MessageTransport(ABC):
    """A command/reply link that exchanges text messages terminated by newline."""

    #: identity of the far end (VISA resource name, URL), for logs and errors
    address: str = ""

    @abstractmethod
    def write(self, message: str) -> None:
        """Send one command line (termination added by the transport)."""

    @abstractmethod
    def read(self) -> str:
        """Read one reply line (termination stripped). Raises TransportTimeout."""

    def query(self, message: str) -> str:
        """Send a command and read its one-line reply."""
        self.write(message)
        return self.read()

    def read_bytes(self, count: int) -> bytes:
        """Read exactly ``count`` raw bytes (binary blocks such as ``#18...``)."""
        raise NotImplementedError(f"{type(self).__name__} does not support binary reads")

    def clear(self) -> None:  # noqa: B027 - optional hook
        """Discard anything pending in the input buffer (device clear where supported)."""

    @abstractmethod
    def close(self) -> None:
        """Release the link."""


class ByteTransport(ABC):
    """A raw byte-stream link (serial port, serial-over-socket)."""

    address: str = ""

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Send bytes."""

    @abstractmethod
    def read(self, count: int) -> bytes:
        """Read exactly ``count`` bytes. Raises TransportTimeout if fewer arrive in time."""

    def reset_input(self) -> None:  # noqa: B027 - optional hook
        """Discard unread input (used after a protocol error to resynchronise)."""

    @abstractmethod
    def close(self) -> None:
        """Release the link."""


class VisaTransport(MessageTransport):
    """A :class:`MessageTransport` over an open pyvisa message-based resource."""

    def __init__(self, resource: Any) -> None:
        self._resource = resource
        self.address = str(getattr(resource, "resource_name", ""))
        try:
            resource.read_termination = "\n"
            resource.write_termination = "\n"
        except AttributeError:  # pragma: no cover - exotic resources
            pass

    def write(self, message: str) -> None:
        import pyvisa

        try:
            self._resource.write(message)
        except (pyvisa.errors.VisaIOError, OSError) as exc:
            raise TransportError(f"{self.address}: write failed: {exc}") from exc

    def read(self) -> str:
        import pyvisa

        try:
            return self._resource.read()
        except OSError as exc:
            raise TransportError(f"{self.address}: read failed: {exc}") from exc
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise TransportTimeout(f"{self.address}: no reply within the timeout") from exc
            raise TransportError(f"{self.address}: read failed: {exc}") from exc

    def read_bytes(self, count: int) -> bytes:
        import pyvisa

        try:
            return bytes(self._resource.read_bytes(count))
        except pyvisa.errors.VisaIOError as exc:
            if exc.error_code == pyvisa.constants.StatusCode.error_timeout:
                raise TransportTimeout(f"{self.address}: no reply within the timeout") from exc
            raise TransportError(f"{self.address}: read failed: {exc}") from exc

    def clear(self) -> None:
        try:
            self._resource.clear()
        except Exception:  # noqa: BLE001 - not every session type supports clear
            pass

    def close(self) -> None:
        self._resource.close()


class SerialTransport(ByteTransport):
    """A :class:`ByteTransport` over an open pyserial port (any URL pyserial accepts)."""

    def __init__(self, port: Any) -> None:
        self._port = port
        self.address = str(getattr(port, "portstr", None) or getattr(port, "port", ""))

    def write(self, data: bytes) -> None:
        import serial

        try:
            self._port.write(data)
        except serial.SerialException as exc:
            raise TransportError(f"{self.address}: write failed: {exc}") from exc

    def read(self, count: int) -> bytes:
        import serial

        try:
            data = self._port.read(count)
        except serial.SerialException as exc:
            raise TransportError(f"{self.address}: read failed: {exc}") from exc
        if len(data) < count:
            raise TransportTimeout(
                f"{self.address}: expected {count} bytes, got {len(data)} before the timeout"
            )
        return bytes(data)

    def reset_input(self) -> None:
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._port.close()
