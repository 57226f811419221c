"""`xbarlab sim serve`: the simulated instruments on loopback TCP sockets.

Each SMU emulator listens as a raw socket (newline-terminated SCPI/TSP, like an
instrument's port 5025), reachable from any VISA client as
``TCPIP0::127.0.0.1::<port>::SOCKET`` (pyvisa-py). The board listens as a raw byte
socket, reachable from pyserial as ``socket://127.0.0.1:<port>``. Only loopback
addresses are accepted. The emulators are the same objects the in-process transports
use; each request and its reply are one atomic exchange with the emulator.

State is per connection: an SMU connection hands the instrument complete lines only, and
keeps its own partial line (bounded by the instrument's input buffer; a longer line is
dropped and queued as SCPI error -363, "Input buffer overrun"). The board, a serial device,
serves one client at a time; a partial frame left by a client that went away is dropped
before the next client is served.

One thread accepts connections; each connection gets a thread of its own that blocks in
``recv`` (TCP_NODELAY), feeds the emulator and sends its reply with one call, so a request
costs the server one wake-up and no polling.
"""

from __future__ import annotations

import ipaddress
import selectors
import socket
import threading
from collections.abc import Callable
from typing import Any

from xbarlab.sim.emulator import LineEmulator, StreamEmulator


def _check_loopback(host: str) -> None:
    try:
        addrs = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from None
    for a in addrs:
        if not ipaddress.ip_address(a).is_loopback:
            raise ValueError(f"refusing to serve on {host!r} ({a}): the simulated bench listens on loopback only")


class BenchServer:
    """Serve every distinct emulator of a bench on consecutive loopback ports (0 = ephemeral)."""

    def __init__(self, bench: Any, host: str = "127.0.0.1", base_port: int = 0) -> None:
        _check_loopback(host)
        self.host = host
        self._sel = selectors.DefaultSelector()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ports: dict[str, int] = {}
        self.addresses: dict[str, str] = {}
        served: dict[int, tuple[socket.socket, list[str]]] = {}
        board = getattr(bench, "board", None)
        for offset, (name, emu) in enumerate(bench.emulators.items()):
            if id(emu) in served:
                served[id(emu)][1].append(name)
                port = served[id(emu)][0].getsockname()[1]
            else:
                lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                lsock.bind((host, 0 if base_port == 0 else base_port + len(served)))
                lsock.listen()
                lsock.setblocking(False)
                self._sel.register(lsock, selectors.EVENT_READ, ("listen", emu))
                served[id(emu)] = (lsock, [name])
                port = lsock.getsockname()[1]
            del offset
            self.ports[name] = port
            if emu is board:
                self.addresses[name] = f"socket://{host}:{port}"
            else:
                self.addresses[name] = f"TCPIP0::{host}::{port}::SOCKET"
        self._listeners = [s for s, _ in served.values()]
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._conns_lock = threading.Lock()
        self._owners: dict[int, threading.Lock] = {}  # id(byte-stream emulator) -> its connection lock

    def _accept(self, lsock: socket.socket, emu: StreamEmulator) -> None:
        try:
            conn, _ = lsock.accept()
        except (BlockingIOError, InterruptedError):
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.setblocking(True)
        thread = threading.Thread(target=self._serve_conn, args=(conn, emu), daemon=True,
                                  name=f"xbarlab-sim-conn-{conn.getsockname()[1]}")
        with self._conns_lock:
            if self._stop.is_set():
                conn.close()
                return
            self._conns[conn] = thread
        thread.start()

    def _serve_conn(self, conn: socket.socket, emu: StreamEmulator) -> None:
        """One client, until it closes or the server stops. Nothing it leaves half-sent reaches the next client."""
        try:
            if isinstance(emu, LineEmulator):
                self._serve_lines(conn, emu)
            else:
                with self._owner(emu):  # a byte-stream instrument (serial port) has one host at a time
                    try:
                        self._serve_bytes(conn, emu)
                    finally:
                        emu.discard_input()  # a partial frame of this client
        except OSError:
            pass
        finally:
            with self._conns_lock:
                self._conns.pop(conn, None)
            conn.close()

    def _owner(self, emu: StreamEmulator) -> threading.Lock:
        with self._conns_lock:
            return self._owners.setdefault(id(emu), threading.Lock())

    @staticmethod
    def _serve_bytes(conn: socket.socket, emu: StreamEmulator) -> None:
        recv, send, exchange = conn.recv, conn.sendall, emu.exchange
        while True:
            data = recv(65536)
            if not data:
                return
            out = exchange(data)
            if out:
                send(out)

    @staticmethod
    def _serve_lines(conn: socket.socket, emu: LineEmulator) -> None:
        """Complete lines only go to the instrument; this connection's partial line stays here, bounded
        by the instrument's input buffer (a longer line is dropped and reported as an input overrun)."""
        recv, send, exchange = conn.recv, conn.sendall, emu.exchange
        partial = bytearray()
        discarding = False
        while True:
            data = recv(65536)
            if not data:
                return
            if discarding:
                cut = data.find(b"\n")
                if cut < 0:
                    continue
                data, discarding = data[cut + 1 :], False
            partial += data
            cut = partial.rfind(b"\n")
            if cut >= 0:
                out = exchange(bytes(partial[: cut + 1]))
                del partial[: cut + 1]
                if out:
                    send(out)
            if len(partial) > emu.max_input:
                partial.clear()
                discarding = True
                emu.report_input_overrun()

    def serve_forever(self) -> None:
        """Accept clients until :meth:`stop` (each connection is served by its own thread)."""
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.1):
                self._accept(key.fileobj, key.data[1])  # type: ignore[arg-type]

    def start(self) -> BenchServer:
        self._thread = threading.Thread(target=self.serve_forever, name="xbarlab-sim-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for key in list(self._sel.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        self._sel.close()
        with self._conns_lock:
            conns = list(self._conns.items())
        for conn, _ in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in recv
            except OSError:
                pass
        for _, thread in conns:
            if thread is not threading.current_thread():
                thread.join(timeout=2)

    def __enter__(self) -> BenchServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_bench(bench: Any, host: str = "127.0.0.1", base_port: int = 5025,
                announce: Callable[[str], None] = print) -> None:
    """Serve until Ctrl-C, announcing each instrument's address."""
    server = BenchServer(bench, host=host, base_port=base_port)
    announce(f"simulated bench on {host} (Ctrl-C to stop):")
    for name, address in server.addresses.items():
        announce(f"  {name:<8} {address}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        announce("stopped")
    finally:
        server.stop()
