"""The import graph keeps the layer order of docs/architecture.md, is acyclic, and defers no imports.

Parses every module of the package with ``ast`` (nothing is imported), so a new module or a new
import that breaks the order fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xbarlab"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

#: optional third-party packages a function may import late (the feature needs them; the rest works without)
OPTIONAL = {"PyQt5", "pyqtgraph", "sklearn", "dask", "distributed", "click", "pandas", "xarray", "lupa", "matplotlib"}

#: (importer, imported) edges allowed against the order, each with its reason
ALLOWED_EDGES: dict[tuple[str, str], str] = {}  # none: drivers implement the bench Protocols structurally


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layers() -> list[tuple[str, list[str]]]:
    """The layer table of docs/architecture.md: ``| layer | module prefixes |`` rows, top layer first."""
    section = ARCHITECTURE.read_text().split("<!-- layers -->")[1]
    rows = re.findall(r"^\|\s*(\d+)\s*\|[^|]*\|\s*([^|]+?)\s*\|", section, flags=re.M)
    return [(num, [m.strip(" `") for m in prefixes.split(",")]) for num, prefixes in rows]


def layer_of(module: str, table: list[tuple[str, list[str]]]) -> int:
    best, found = -1, None
    for index, (_, prefixes) in enumerate(table):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    if found is None:
        raise AssertionError(f"{module}: in no layer of docs/architecture.md")
    return len(table) - found  # higher number: higher layer


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str, source: str | None = None) -> tuple[set[str], list[tuple[int, str]]]:
    """(xbarlab modules imported at module level, [(line, name) of imports inside functions]) of ``module``
    (its file, or ``source``)."""
    path = MODULES.get(module, PACKAGE / "sim" / "example.py")
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    top: set[str] = set()
    deferred: list[tuple[int, str]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = _resolve(module, node, path.name == "__init__.py")
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]

    def visit(node: ast.AST, in_function: bool, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in targets(child):
                    if type_only:
                        continue
                    if in_function:
                        deferred.append((child.lineno, name))
                    elif name.split(".")[0] == "xbarlab":
                        top.add(name)
                continue
            checking = isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)),
                  type_only or checking)

    visit(tree, False, False)
    return {t for t in top if t in MODULES or t == "xbarlab"}, deferred


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_is_in_a_layer():
    table = layers()
    assert len(table) >= 8, "the layer table of docs/architecture.md was not found"
    for module in MODULES:
        layer_of(module, table)


def test_no_import_goes_up_a_layer():
    table = layers()
    bad = []
    for module, (top, _) in GRAPH.items():
        for target in top:
            if layer_of(target, table) > layer_of(module, table) and (module, target) not in ALLOWED_EDGES:
                bad.append(f"{module} imports {target} (layer {layer_of(target, table)} above "
                           f"{layer_of(module, table)})")
    assert not bad, "\n".join(sorted(bad))


def test_drivers_and_simulator_do_not_know_each_other():
    bad = [f"{m} imports {t}" for m, (top, _) in GRAPH.items() for t in top
           if (m.startswith("xbarlab.drivers") and t.startswith("xbarlab.sim"))
           or (m.startswith("xbarlab.sim") and t.startswith(("xbarlab.drivers", "xbarlab.instruments")))]
    assert not bad, "\n".join(bad)


def third_party(module: str) -> set[str]:
    """Top-level names of the packages ``module`` imports at module level."""
    tree = ast.parse(MODULES[module].read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module.split(".")[0])
    return names


#: xbarlab modules of an optional feature that load their optional packages inside their functions
OPTIONAL_FEATURES = {"xbarlab.logbook.frames": "the data extra: pandas and xarray views of a log"}


def needs_optional(module: str, seen: set[str] | None = None) -> bool:
    """Whether importing ``module`` (an xbarlab module) needs an optional package, directly or through the
    xbarlab modules it imports at module level."""
    seen = set() if seen is None else seen
    if module in OPTIONAL_FEATURES:
        return True
    if module in seen:
        return False
    seen.add(module)
    return bool(third_party(module) & OPTIONAL) or any(needs_optional(t, seen) for t in GRAPH[module][0]
                                                       if t in MODULES)


def test_no_deferred_xbarlab_imports_except_optional_features():
    """An xbarlab module is imported at the top, unless it needs an optional package (the GUI, the Dask sweeps)."""
    bad = []
    for module, (_, deferred) in GRAPH.items():
        for line, name in deferred:
            if name.split(".")[0] == "xbarlab" and name in MODULES and not needs_optional(name):
                bad.append(f"{MODULES[module].relative_to(ROOT)}:{line}: import of {name} inside a function")
    assert not bad, "imports belong at the top of the module (only optional features may load late):\n" + "\n".join(bad)


def test_module_graph_is_acyclic():
    edges = {m: {t for t in top if t in MODULES and t != m} for m, (top, _) in GRAPH.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(edges[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t):] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                walk(t)
        stack.pop()
        state[m] = 2

    for m in sorted(edges):
        if m not in state:
            walk(m)


def test_the_checks_can_fail():
    """A module in the simulator importing the run engine, and importing a session inside a function, is seen."""
    table = layers()
    source = ("from typing import TYPE_CHECKING\nfrom xbarlab.runs.engine import Engine\nif TYPE_CHECKING:\n"
              "    from xbarlab.cli import main\n\ndef f():\n    from xbarlab.session import LabSession\n")
    top, deferred = imports("xbarlab.sim.example", source)
    assert top == {"xbarlab.runs.engine"}  # the TYPE_CHECKING import is not a run-time edge
    assert deferred == [(7, "xbarlab.session")]
    assert layer_of("xbarlab.runs.engine", table) > layer_of("xbarlab.sim.example", table)  # would be flagged
