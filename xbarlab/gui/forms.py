"""Parameter forms generated from an experiment's ``params_spec``, validated as you type."""

from __future__ import annotations

from typing import Any

from PyQt5.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLabel, QLineEdit, QWidget

from xbarlab.experiments.base import Experiment, Param, resolve_params


class ParamForm(QWidget):
    """One editor per parameter; ``values()`` returns (params, problems) checked like a campaign step."""

    def __init__(self, cls: type[Experiment], overrides: dict[str, Any] | None = None,
                 only: tuple[str, ...] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cls = cls
        self.hidden = dict(overrides or {})
        self.editors: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for p in cls.params_spec:
            if only is not None and p.name not in only:
                continue
            value = self.hidden.pop(p.name, p.default)
            editor = self._editor(p, value)
            editor.setToolTip(p.help or p.name)
            label = f"{p.name} [{p.units}]" if p.units else p.name
            layout.addRow(label, editor)
            self.editors[p.name] = editor
        self.error = QLabel("")
        self.error.setStyleSheet("color: #b00020;")
        self.error.setWordWrap(True)
        layout.addRow(self.error)

    @staticmethod
    def _editor(p: Param, value: Any) -> QWidget:
        if p.type is bool:
            box = QCheckBox()
            box.setChecked(bool(value))
            return box
        if p.choices:
            combo = QComboBox()
            combo.addItems([str(c) for c in p.choices])
            combo.setCurrentText(str(value))
            return combo
        edit = QLineEdit(_text(value))
        return edit

    def set_value(self, name: str, value: Any) -> None:
        editor = self.editors.get(name)
        if isinstance(editor, QCheckBox):
            editor.setChecked(bool(value))
        elif isinstance(editor, QComboBox):
            editor.setCurrentText(str(value))
        elif isinstance(editor, QLineEdit):
            editor.setText(_text(value))
        else:
            self.hidden[name] = value

    def values(self) -> tuple[dict[str, Any], list[str]]:
        """(params, problems): every problem names the parameter and what is wrong."""
        given: dict[str, Any] = dict(self.hidden)
        problems: list[str] = []
        specs = {p.name: p for p in self.cls.params_spec}
        for name, editor in self.editors.items():
            p = specs[name]
            if isinstance(editor, QCheckBox):
                given[name] = editor.isChecked()
                continue
            text = editor.currentText() if isinstance(editor, QComboBox) else editor.text().strip()
            try:
                given[name] = _parse(p, text)
            except ValueError:
                problems.append(f"{name}: {text!r} is not a valid {p.type.__name__}")
        values, more = resolve_params(self.cls.params_spec, given, where=self.cls.kind)
        problems += more
        self.error.setText("\n".join(problems))
        return values, problems


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def _parse(p: Param, text: str) -> Any:
    if p.type is int:
        return int(text)
    if p.type is float:
        return float(text)
    if p.type is list:
        return [float(t) if any(c in t for c in ".eE") else int(t) for t in text.replace(",", " ").split()]
    return text
