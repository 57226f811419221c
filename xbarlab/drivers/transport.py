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

import socket
import struct
import sys
import time
from abc import ABC, abstractmethod
from typing import Any

from xbarlab.errors import TransportError, TransportTimeout

#: bytes asked of a socket per receive: a whole board-protocol frame at most
_RECV_SIZE = 65536 + 18


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
            # every byte decodes: a corrupted (non-ASCII) reply reaches the driver's validation and
            # the transcript as it arrived, instead of a UnicodeDecodeError from inside pyvisa
            resource.encoding = "latin-1"
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


def _is_socket_port(port: Any) -> bool:
    """Whether ``port`` is a pyserial ``socket://`` port (on Linux, where SO_RCVTIMEO takes a timeval)."""
    return sys.platform.startswith("linux") and type(port).__module__ == "serial.urlhandler.protocol_socket"


def _timeval(seconds: float | None) -> bytes:
    """A ``struct timeval`` for SO_RCVTIMEO/SO_SNDTIMEO (0 = wait forever)."""
    if seconds is None:
        return struct.pack("ll", 0, 0)
    whole = int(seconds)
    return struct.pack("ll", whole, max(int(round((seconds - whole) * 1e6)), 0 if whole else 1))


class SerialTransport(ByteTransport):
    """A :class:`ByteTransport` over an open pyserial port (any URL pyserial accepts).

    On a pyserial ``socket://`` port the transport talks to the port's TCP socket itself:
    TCP_NODELAY, one blocking ``recv`` per wait with the port's timeout as the socket's receive
    timeout (instead of a select + recv pair per read), and whatever has arrived is kept, so
    reading a frame's header and then its body costs one system call.
    """

    def __init__(self, port: Any) -> None:
        self._port = port
        self.address = str(getattr(port, "portstr", None) or getattr(port, "port", ""))
        self._rx = bytearray()  # bytes received ahead of the reads asking for them
        self._socket_port = _is_socket_port(port)
        self._sock: socket.socket | None = None  # the port's socket, once configured below
        self._sock_timeouts: tuple[Any, Any] | None = None

    def _socket(self) -> socket.socket | None:
        """The port's TCP socket in blocking mode with the port's timeouts, or None (go through pyserial)."""
        if not self._socket_port or not self._port.is_open:
            return None
        sock = getattr(self._port, "_socket", None)
        timeouts = (self._port.timeout, self._port.write_timeout)
        if sock is not self._sock or timeouts != self._sock_timeouts:
            self._sock = None
            if not isinstance(sock, socket.socket) or timeouts[0] == 0 or timeouts[1] == 0:
                return None  # non-blocking reads or writes: pyserial does those
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.setblocking(True)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(timeouts[0]))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(timeouts[1]))
            except OSError:
                return None
            self._sock, self._sock_timeouts = sock, timeouts
        return sock

    def write(self, data: bytes) -> None:
        import serial

        sock = self._socket()
        try:
            if sock is None:
                self._port.write(data)
            else:
                sock.sendall(data)
        except BlockingIOError as exc:  # SO_SNDTIMEO expired
            raise TransportError(f"{self.address}: write timed out") from exc
        except (serial.SerialException, OSError) as exc:
            raise TransportError(f"{self.address}: write failed: {exc}") from exc

    def read(self, count: int) -> bytes:
        rx = self._rx
        have = len(rx)
        if have >= count:  # already arrived
            if have == count:
                data = bytes(rx)
                rx.clear()
            else:
                data = bytes(rx[:count])
                del rx[:count]
            return data
        sock = self._socket()
        if sock is None:
            return self._read_port(count)
        timeout = self._port.timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                chunk = sock.recv(max(count - have, _RECV_SIZE))
            except BlockingIOError:  # SO_RCVTIMEO expired
                chunk = None
            except OSError as exc:
                raise TransportError(f"{self.address}: read failed: {exc}") from exc
            if chunk == b"":
                raise TransportError(f"{self.address}: read failed: socket disconnected")
            if chunk is not None:
                if not have and len(chunk) == count:
                    return chunk
                rx += chunk
                have = len(rx)
                if have >= count:
                    return self.read(count)
            if chunk is None or (deadline is not None and time.monotonic() >= deadline):
                rx.clear()  # a short read is consumed, as pyserial's would be
                raise TransportTimeout(f"{self.address}: expected {count} bytes, got {have} before the timeout")

    def _read_port(self, count: int) -> bytes:
        import serial

        rx = self._rx
        try:
            data = self._port.read(count - len(rx))
        except serial.SerialException as exc:
            raise TransportError(f"{self.address}: read failed: {exc}") from exc
        if rx:
            data = bytes(rx) + data
            rx.clear()
        if len(data) < count:
            raise TransportTimeout(
                f"{self.address}: expected {count} bytes, got {len(data)} before the timeout"
            )
        return bytes(data)

    def reset_input(self) -> None:
        self._rx.clear()
        self._port.reset_input_buffer()

    def close(self) -> None:
        self._rx.clear()
        self._port.close()
