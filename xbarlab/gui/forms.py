"""Parameter forms generated from an experiment's ``params_spec``, validated as you type.

Each value is checked exactly as a campaign step is: the parameter's type and range
(``resolve_params``) and then the experiment's own ``check`` against the station's safety
limits. A field with a problem turns red, the problems are listed under the form naming the
parameter, and ``validity_changed(False)`` lets the run panel disable its Run button.
Quantities in V, A, S, s are shown and may be typed with SI prefixes ("5 µS", "100 ns", "0.2").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PyQt5.QtCore import pyqtSignal
from PyQt5.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QWidget,
)
from pyqtgraph.functions import siFormat

from xbarlab.experiments.base import Experiment, Param, resolve_params

SI_UNITS = ("V", "A", "S", "s", "Ω")
BAD_STYLE = "QLineEdit, QComboBox { background: #ffe0e0; border: 1px solid #c62828; }"
#: parameters that name a file, with the file dialog's filter
FILE_PARAMS = {"matrix": "Matrix files (*.npy *.npz)", "dataset": "Datasets (*.npz)"}


def human_name(p: Param) -> str:
    """A short human label for ``p`` from its help text (else its name), without units."""
    head = re.split(r";| \(", p.help or "", maxsplit=1)[0].strip()
    if not head or len(head) > 28 or any(c in head for c in ":'=|"):
        head = p.name.replace("_", " ")
    return head[0].upper() + head[1:]


def tooltip(p: Param) -> str:
    """The raw parameter name, its help, units and allowed range."""
    parts = [f"{p.name}" + (f" [{p.units}]" if p.units else "")]
    if p.help:
        parts.append(p.help)
    bounds = [f"min {p.min:g}" if p.min is not None else "", f"max {p.max:g}" if p.max is not None else ""]
    if any(bounds):
        parts.append(", ".join(b for b in bounds if b))
    if p.choices:
        parts.append("one of " + ", ".join(map(str, p.choices)))
    return "\n".join(parts)


class ParamForm(QWidget):
    """One editor per parameter; ``values()`` returns (params, problems) checked like a campaign step.

    ``station_config``: returns the station's configuration (limits) or None; with it every
    value is also checked by the experiment's ``check`` against the station's safety limits.
    """

    validity_changed = pyqtSignal(bool)

    def __init__(self, cls: type[Experiment], overrides: dict[str, Any] | None = None,
                 only: tuple[str, ...] | None = None, parent: QWidget | None = None,
                 station_config: Callable[[], Any] | None = None) -> None:
        super().__init__(parent)
        self.cls = cls
        self.station_config = station_config
        self.hidden = dict(overrides or {})
        self.editors: dict[str, QWidget] = {}
        self.specs = {p.name: p for p in cls.params_spec}
        self.valid = True
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setRowWrapPolicy(QFormLayout.WrapLongRows)
        for p in cls.params_spec:
            if only is not None and p.name not in only:
                continue
            value = self.hidden.pop(p.name, p.default)
            editor = self._editor(p, value)
            editor.setToolTip(tooltip(p))
            label = QLabel(human_name(p) + (f" [{p.units}]" if p.units and p.units not in SI_UNITS else ""))
            label.setToolTip(tooltip(p))
            field: QWidget = editor
            if p.name in FILE_PARAMS and isinstance(editor, QLineEdit):
                field = self._with_browse(p, editor)
            layout.addRow(label, field)
            self.editors[p.name] = editor
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        layout.addRow(self.error)

    def _editor(self, p: Param, value: Any) -> QWidget:
        if p.type is bool:
            box = QCheckBox()
            box.setChecked(bool(value))
            box.toggled.connect(self.check)
            return box
        if p.choices:
            combo = QComboBox()
            combo.addItems([str(c) for c in p.choices])
            combo.setCurrentText(str(value))
            combo.currentTextChanged.connect(self.check)
            return combo
        edit = QLineEdit(_text(p, value))
        edit.textChanged.connect(self.check)
        return edit

    def _with_browse(self, p: Param, edit: QLineEdit) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        button = QPushButton("…")
        button.setToolTip(f"choose the {p.name} file")
        button.setMaximumWidth(28)

        def browse() -> None:
            start = edit.text() if Path(edit.text()).exists() else ""
            path, _ = QFileDialog.getOpenFileName(self, f"{human_name(p)} file", start, FILE_PARAMS[p.name])
            if path:
                edit.setText(path)

        button.clicked.connect(browse)
        row.addWidget(button)
        edit.browse_button = button  # type: ignore[attr-defined]
        return box

    def set_value(self, name: str, value: Any) -> None:
        editor = self.editors.get(name)
        if isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            editor.setCurrentText(str(value))
        elif isinstance(editor, QLineEdit):
            editor.setText(_text(self.specs[name], value))
        else:
            self.hidden[name] = value
            self.check()

    def check(self) -> bool:
        """Validate now (on every edit): mark bad fields, list the problems; True if runnable."""
        self.values()
        return self.valid

    def values(self) -> tuple[dict[str, Any], list[str]]:
        """(params, problems): every problem names the parameter and what is wrong."""
        given: dict[str, Any] = dict(self.hidden)
        problems: list[str] = []
        bad: set[str] = set()
        for name, editor in self.editors.items():
            p = self.specs[name]
            if isinstance(editor, QCheckBox):
                given[name] = editor.isChecked()
                continue
            text = editor.currentText() if isinstance(editor, QComboBox) else editor.text().strip()
            try:
                given[name] = _parse(p, text)
            except ValueError:
                problems.append(f"{name}: {text!r} is not a valid {_kind(p)}")
                bad.add(name)
        where = self.cls.kind
        values, more = resolve_params(self.cls.params_spec, given, where=where)
        problems += more
        if not problems and self.station_config is not None:
            config = self.station_config()
            if config is not None:
                try:
                    problems += self.cls.check(values, config, where)
                except (KeyError, AttributeError, TypeError, ValueError) as exc:  # a station without that part
                    problems.append(f"{where}: cannot check against the station: {exc}")
        for problem in problems:
            bad |= {n for n in self.editors if re.search(rf"\b{re.escape(where)}\.{re.escape(n)}\b", problem)}
        for name, editor in self.editors.items():
            editor.setStyleSheet(BAD_STYLE if name in bad else "")
        self.error.setText("\n".join(problems))
        valid = not problems
        if valid != self.valid:
            self.valid = valid
            self.validity_changed.emit(valid)
        return values, problems


def _kind(p: Param) -> str:
    if p.type is float and p.units:
        return f"quantity in {p.units}"
    return {int: "integer", float: "number", list: "list of numbers"}.get(p.type, p.type.__name__)


def _text(p: Param, value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        if p.units in SI_UNITS and value != 0:
            return siFormat(value, precision=4, suffix=p.units)
        return f"{value:g}"
    return "" if value is None else str(value)


def _parse(p: Param, text: str) -> Any:
    if p.type is int:
        return int(text)
    if p.type is float:
        return parse_quantity(text, p.units)
    if p.type is list:
        return [float(t) if any(c in t for c in ".eE") else int(t) for t in text.replace(",", " ").split()]
    return text


PREFIXES = {"": 1.0, "p": 1e-12, "n": 1e-9, "u": 1e-6, "µ": 1e-6, "μ": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6,
            "G": 1e9}
_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def parse_quantity(text: str, units: str = "") -> float:
    """A number, optionally with an SI prefix and the unit: "0.2", "200 mV", "5 µS", "5u", "100 ns".

    Strict: anything else (an unknown prefix, another unit) is a ValueError, never a guess."""
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    if units not in SI_UNITS:
        raise ValueError(text)
    prefixes = "".join(k for k in PREFIXES if k)
    m = re.fullmatch(rf"({_NUMBER})\s*([{prefixes}]?)\s*{re.escape(units)}?", text)
    if m is None or (not m.group(2) and not text.endswith(units)):
        raise ValueError(text)
    factor = PREFIXES[m.group(2)]
    return float(m.group(1)) / round(1 / factor) if factor < 1 else float(m.group(1)) * factor  # 5/1e6 == 5e-6
