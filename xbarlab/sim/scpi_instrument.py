"""Base of the emulated SCPI instruments: message execution, error queue, IEEE 488.2 status model.

A program message is split into units; each unit is resolved against the model's
:class:`~xbarlab.sim.scpi_tree.CommandTree`. The first unit that fails puts its error in the
queue and the rest of the message is discarded (2400 manual, "-420 Query UNTERMINATED": "When
the SourceMeter detects an error in a program message unit, it discards all further program
message units until the end of the string"). Replies of the queries of one message are joined
with ``;`` on one line.

Status: the Standard Event Status Register (``*ESR?``: OPC 0, QYE 2, DDE 3, EXE 4, CME 5,
PON 7) with its enable register (``*ESE``), the Status Byte (``*STB?``: MSB 0, EAV 2, QSB 3,
ESB 5, MSS 6, OSB 7) with ``*SRE``, and the SCPI event registers ``:STAT:MEAS``, ``:STAT:OPER``,
``:STAT:QUES`` (event, enable, condition; ``:STAT:PRES`` clears the enables, ``*CLS`` the events
and the error queue). Errors set ESR bits by class: -1xx CME, -2xx and +8xx EXE, -3xx and other
device errors DDE, -4xx QYE.
"""

from __future__ import annotations

import logging
from typing import Any

from xbarlab.sim.emulator import LineEmulator
from xbarlab.sim.faults import FaultPlan
from xbarlab.sim.scpi_tree import (
    Call,
    CommandTree,
    Int,
    Node,
    ScpiError,
    parse_unit,
    split_units,
    take_channel_list,
)

log = logging.getLogger(__name__)

ESR_OPC, ESR_QYE, ESR_DDE, ESR_EXE, ESR_CME, ESR_PON = 1, 4, 8, 16, 32, 128
STB_MSB, STB_EAV, STB_QSB, STB_ESB, STB_MSS, STB_OSB = 1, 4, 8, 32, 64, 128


class ScpiInstrumentEmulator(LineEmulator):
    """An SCPI instrument: subclasses provide ``_nodes()`` and the settings' owner channels."""

    IDENTITY: str = ""
    ERROR_QUEUE_DEPTH = 10
    CHANNELS = 1

    def __init__(self, faults: FaultPlan | None = None) -> None:
        super().__init__(faults)
        self.errors: list[tuple[int, str]] = []
        self.esr = ESR_PON
        self.ese = self.sre = 0
        self.status = {name: {"event": 0, "enable": 0, "cond": 0} for name in ("MEAS", "OPER", "QUES")}
        self.tree = CommandTree(self._common_nodes() + self._nodes())

    # -- to be provided by the model ------------------------------------------------------------
    def _nodes(self) -> list[Node]:  # pragma: no cover - per model
        raise NotImplementedError

    def settings(self, channel: int) -> dict[str, Any]:  # pragma: no cover - per model
        raise NotImplementedError

    def reset_settings(self) -> None:  # pragma: no cover - per model
        """``*RST``: settings to their defaults, outputs off (status and error queue untouched)."""
        raise NotImplementedError

    # -- error queue and status ------------------------------------------------------------------
    def push_error(self, code: int, message: str) -> None:
        if len(self.errors) >= self.ERROR_QUEUE_DEPTH:
            self.errors[-1] = (-350, "Queue overflow")
        else:
            self.errors.append((code, message))
        if -199 <= code <= -100:
            self.esr |= ESR_CME
        elif -299 <= code <= -200 or 800 <= code <= 899:
            self.esr |= ESR_EXE
        elif -499 <= code <= -400:
            self.esr |= ESR_QYE
        else:
            self.esr |= ESR_DDE

    def input_overrun(self) -> None:
        """A line longer than the input buffer was dropped (SCPI-99 device-specific error -363)."""
        self.push_error(-363, "Input buffer overrun")

    def next_error(self) -> str:
        if not self.errors:
            return '0,"No error"'
        code, msg = self.errors.pop(0)
        return f'{code:+d},"{msg}"' if code > 0 else f'{code},"{msg}"'

    def status_byte(self) -> int:
        stb = 0
        meas, oper, ques = (self.status[k] for k in ("MEAS", "OPER", "QUES"))
        if meas["event"] & meas["enable"]:
            stb |= STB_MSB
        if self.errors:
            stb |= STB_EAV
        if ques["event"] & ques["enable"]:
            stb |= STB_QSB
        if self.esr & self.ese:
            stb |= STB_ESB
        if oper["event"] & oper["enable"]:
            stb |= STB_OSB
        if stb & self.sre & ~STB_MSS:
            stb |= STB_MSS
        return stb

    def set_condition(self, register: str, bit: int, on: bool) -> None:
        """Set/clear a condition bit; a rising condition latches the event bit."""
        reg = self.status[register]
        if on:
            reg["event"] |= bit
            reg["cond"] |= bit
        else:
            reg["cond"] &= ~bit

    def clear_status(self) -> None:
        """``*CLS``: error queue and event registers cleared."""
        self.errors.clear()
        self.esr = 0
        for reg in self.status.values():
            reg["event"] = 0

    # -- execution -------------------------------------------------------------------------------
    def handle_line(self, line: str) -> bytes | None:
        replies: list[str] = []
        context: list[str] = []
        for text in split_units(line):
            if not text:
                continue  # empty unit (a trailing ';', as many drivers send)
            try:
                unit = parse_unit(text, context)
                reply = self._execute(unit.header, unit.query, unit.args)
            except ScpiError as err:
                self.push_error(err.code, err.message)
                break
            except Exception as exc:  # noqa: BLE001 - an emulator fault must not take the link down
                log.error("emulator fault on %r: %s", text, exc, exc_info=True)
                self.push_error(-300, "Device-specific error")
                break
            if reply is not None:
                replies.append(reply)
        return ";".join(replies).encode() if replies else None

    def _execute(self, header: str, query: bool, args: str) -> str | None:
        node, suffixes, suffix_channel = self.tree.resolve(header)
        rest, chans = take_channel_list(args)
        if chans:
            channel = chans[0]
            if any(not 1 <= n <= self.CHANNELS for n in chans):
                raise ScpiError(-222, "Data out of range")
        else:
            channel = 1 if suffix_channel is None else suffix_channel
            if not 1 <= channel <= self.CHANNELS:
                raise ScpiError(-114, "Header suffix out of range")
        call = Call(channel - 1, rest, node, suffixes)
        if query:
            if node.query is not None:
                return node.query(call)
            if node.key is None or not node.queryable or node.param is None:
                raise ScpiError(-113, "Undefined header")
            if rest.strip():
                special = node.param.special(rest)
                if special is None:
                    raise ScpiError(-108, "Parameter not allowed")
                return node.param.format(special)
            store = self.settings(call.channel)
            return node.param.format(store.get(self._key(node, call), store.get(node.key)))
        if node.action is not None:
            node.action(call)
            return None
        if node.key is None or not node.settable or node.param is None:
            raise ScpiError(-113, "Undefined header")
        if not rest.strip():
            raise ScpiError(-109, "Missing parameter")
        value = node.param.parse(rest)
        store = self.settings(call.channel)
        key = self._key(node, call)
        old = store.get(key)
        store[key] = value
        if node.on_set is not None:
            try:
                node.on_set(call, value)
            except ScpiError:
                store[key] = old
                raise
        return None

    @staticmethod
    def _key(node: Node, call: Call) -> str:
        """A setting's storage key; a node with another numeric suffix (``USER3``) keeps one per suffix."""
        assert node.key is not None
        if not call.suffixes:
            return node.key
        return node.key + "".join(f"_{n}" for n in call.suffixes.values())

    def _common_nodes(self) -> list[Node]:
        """IEEE 488.2 common commands and the SCPI STATus/SYSTem:ERRor subsystem."""

        def rst(call: Call) -> None:
            self.reset_settings()

        def opc(call: Call) -> None:
            self.esr |= ESR_OPC  # every operation is complete when its message has executed

        def esr(call: Call) -> str:
            value, self.esr = self.esr, 0
            return str(value)

        def set_reg(attr: str):
            def f(call: Call) -> None:
                setattr(self, attr, int(Int(0, 255).parse(call.args)))
            return f

        def preset(call: Call) -> None:
            for reg in self.status.values():
                reg["enable"] = 0

        def queue_clear(call: Call) -> None:
            self.errors.clear()

        def all_errors(call: Call) -> str:
            out = [self.next_error()]
            while self.errors:
                out.append(self.next_error())
            return ",".join(out)

        nodes = [
            Node("*IDN", query=lambda c: self.IDENTITY, settable=False),
            Node("*RST", action=rst, queryable=False),
            Node("*CLS", action=lambda c: self.clear_status(), queryable=False),
            Node("*OPC", action=opc, query=lambda c: "1"),
            Node("*WAI", action=lambda c: None, queryable=False),
            Node("*ESR", query=esr, settable=False),
            Node("*ESE", action=set_reg("ese"), query=lambda c: str(self.ese)),
            Node("*SRE", action=set_reg("sre"), query=lambda c: str(self.sre)),
            Node("*STB", query=lambda c: str(self.status_byte()), settable=False),
            Node("*TST", query=lambda c: "0", settable=False),
            Node(":SYSTem:ERRor[:NEXT]", query=lambda c: self.next_error(), settable=False),
            Node(":SYSTem:ERRor:COUNt", query=lambda c: str(len(self.errors)), settable=False),
            Node(":SYSTem:ERRor:ALL", query=all_errors, settable=False),
            Node(":STATus:PRESet", action=preset, queryable=False),
            Node(":STATus:QUEue[:NEXT]", query=lambda c: self.next_error(), settable=False),
            Node(":STATus:QUEue:CLEar", action=queue_clear, queryable=False),
        ]
        for reg in ("MEASurement", "OPERation", "QUEStionable"):
            nodes += self._register_nodes(reg)
        return nodes

    def _register_nodes(self, long_name: str) -> list[Node]:
        short = "".join(ch for ch in long_name if ch.isupper())

        def event(call: Call) -> str:
            r = self.status[short]
            value, r["event"] = r["event"], 0
            return str(value)

        def enable(call: Call) -> None:
            self.status[short]["enable"] = int(Int(0, 65535).parse(call.args))

        return [
            Node(f":STATus:{long_name}[:EVENt]", query=event, settable=False),
            Node(f":STATus:{long_name}:ENABle", action=enable, query=lambda c: str(self.status[short]["enable"])),
            Node(f":STATus:{long_name}:CONDition", query=lambda c: str(self.status[short]["cond"]), settable=False),
        ]
