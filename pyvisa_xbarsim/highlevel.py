"""The VisaLibrary of the xbarlab simulated bench (message-based sessions only)."""

from __future__ import annotations

import itertools
from typing import Any

from pyvisa import constants, highlevel, rname
from pyvisa.constants import ResourceAttribute as RA
from pyvisa.constants import StatusCode
from pyvisa.util import LibraryPath

from xbarlab.sim import registry


class _Session:
    """One open resource: an emulator plus the VISA attributes pyvisa sets."""

    def __init__(self, name: str, emulator: Any, parsed: rname.ResourceName) -> None:
        self.name = name
        self.emulator = emulator
        self.attrs: dict[int, Any] = {
            RA.timeout_value: 2000,
            RA.termchar: ord("\n"),
            RA.termchar_enabled: constants.VI_TRUE,
            RA.send_end_enabled: constants.VI_TRUE,
            RA.suppress_end_enabled: constants.VI_FALSE,
            RA.resource_name: str(parsed),
            RA.interface_type: parsed.interface_type_const,
            RA.resource_class: parsed.resource_class,
        }


class XbarsimVisaLibrary(highlevel.VisaLibraryBase):
    """VISA library whose instruments are emulators on a simulated bench.

    The library path (the part before ``@xbarsim``) is the bench id. Emulators answer
    synchronously, so a read with nothing pending is a timeout at once; nothing sleeps.
    """

    @staticmethod
    def get_library_paths() -> tuple[LibraryPath, ...]:
        return (LibraryPath("unset"),)

    @staticmethod
    def get_debug_info() -> dict[str, str]:
        return {"name": "xbarlab simulated bench"}

    def _init(self) -> None:
        self.bench_id = str(self.library_path) if str(self.library_path) != "unset" else ""
        self.sessions: dict[int, Any] = {}
        self._ids = itertools.count(1)

    def _new(self, obj: Any) -> int:
        sid = next(self._ids)
        self.sessions[sid] = obj
        return sid

    # -- resource manager ------------------------------------------------------------------
    def open_default_resource_manager(self) -> tuple[Any, StatusCode]:
        return self._new("rm"), StatusCode.success

    def list_resources(self, session: Any, query: str = "?*::INSTR") -> tuple[str, ...]:
        return tuple(rname.filter(registry.names(self.bench_id), query))

    def open(self, session: Any, resource_name: str, access_mode: Any = constants.AccessModes.no_lock,
             open_timeout: int = constants.VI_TMO_IMMEDIATE) -> tuple[Any, StatusCode]:
        try:
            parsed = rname.parse_resource_name(resource_name)
        except rname.InvalidResourceName:
            return 0, self.handle_return_value(None, StatusCode.error_invalid_resource_name)
        emulator = None
        for name in registry.names(self.bench_id):
            if name == resource_name or _canonical(name) == str(parsed):
                emulator = registry.lookup(self.bench_id, name)
                break
        if emulator is None:
            return 0, self.handle_return_value(None, StatusCode.error_resource_not_found)
        return self._new(_Session(resource_name, emulator, parsed)), StatusCode.success

    def close(self, session: Any) -> StatusCode:
        self.sessions.pop(session, None)
        return StatusCode.success

    # -- I/O ---------------------------------------------------------------------------------
    def _session(self, session: Any) -> _Session | None:
        s = self.sessions.get(session)
        return s if isinstance(s, _Session) else None

    def write(self, session: Any, data: bytes) -> tuple[int, StatusCode]:
        s = self._session(session)
        if s is None:
            return 0, self.handle_return_value(session, StatusCode.error_invalid_object)
        s.emulator.feed(bytes(data))
        return len(data), StatusCode.success

    def read(self, session: Any, count: int) -> tuple[bytes, StatusCode]:
        s = self._session(session)
        if s is None:
            return b"", self.handle_return_value(session, StatusCode.error_invalid_object)
        emu = s.emulator
        pending = emu.pending_output()
        if pending == 0:
            return b"", self.handle_return_value(session, StatusCode.error_timeout)
        if s.attrs[RA.termchar_enabled]:
            peek = emu.read_output()
            end = peek.find(bytes([s.attrs[RA.termchar]]))
            if 0 <= end < count:
                data, rest = peek[: end + 1], peek[end + 1:]
                _unread(emu, rest)
                return data, StatusCode.success_termination_character_read
            data, rest = peek[:count], peek[count:]
            _unread(emu, rest)
            if len(data) < count:
                # reply without terminator (e.g. a dropped byte): the rest never comes
                return data, self.handle_return_value(session, StatusCode.error_timeout)
            return data, StatusCode.success_max_count_read
        data = emu.read_output(count)
        status = StatusCode.success_max_count_read if len(data) == count else StatusCode.success
        return data, status

    def clear(self, session: Any) -> StatusCode:
        s = self._session(session)
        if s is not None:
            s.emulator.clear()
        return StatusCode.success

    def flush(self, session: Any, mask: Any) -> StatusCode:
        return StatusCode.success

    # -- attributes --------------------------------------------------------------------------
    def get_attribute(self, session: Any, attribute: Any) -> tuple[Any, StatusCode]:
        s = self._session(session)
        if s is None:
            return None, self.handle_return_value(session, StatusCode.error_invalid_object)
        if attribute in s.attrs:
            return s.attrs[attribute], StatusCode.success
        return None, self.handle_return_value(session, StatusCode.error_nonsupported_attribute)

    def set_attribute(self, session: Any, attribute: Any, attribute_state: Any) -> StatusCode:
        s = self._session(session)
        if s is None:
            return self.handle_return_value(session, StatusCode.error_invalid_object)
        s.attrs[attribute] = attribute_state
        return StatusCode.success

    def disable_event(self, session: Any, event_type: Any, mechanism: Any) -> StatusCode:
        return StatusCode.success

    def discard_events(self, session: Any, event_type: Any, mechanism: Any) -> StatusCode:
        return StatusCode.success


def _canonical(name: str) -> str:
    try:
        return str(rname.parse_resource_name(name))
    except rname.InvalidResourceName:
        return name


def _unread(emulator: Any, data: bytes) -> None:
    """Put bytes back at the front of an emulator's output queue."""
    if data:
        with emulator._lock:
            emulator._outbuf[:0] = data
