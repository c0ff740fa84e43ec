"""The layout's promises, checked on the source: no import cycle among the project's modules, and library code never
imports command-line code (a module that defines a top-level `main`). Imports inside functions count too: a
function-local import hides a cycle from the reader, not from this test."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from infra.core.paths import ROOT

PACKAGES = ("infra", "lambdas")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))
            if "__pycache__" not in p.parts}


MODULES = _sources()


def _resolve(name: str) -> str | None:
    """The project module an import names (`a.b.c` may be the module a.b with attribute c)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, tree: ast.Module) -> set[str]:
    found: set[str] = set()
    is_package = MODULES[module].name == "__init__.py"
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        for n in names:
            target = _resolve(n)
            if target and target != module:
                found.add(target)
    return found


TREES = {m: ast.parse(p.read_text(encoding="utf-8")) for m, p in MODULES.items()}
GRAPH = {m: _imports(m, t) for m, t in TREES.items()}


def _is_cli(tree: ast.Module) -> bool:
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


CLI = {m for m, t in TREES.items() if _is_cli(t)}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _package_parents(module: str) -> set[str]:
    parts = module.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_the_project_has_no_import_cycle() -> None:
    # A package's __init__ importing its own submodules (validation's rule registry) is not a cycle of design.
    graph = {m: {t for t in deps if t not in _package_parents(m) and m not in _package_parents(t)}
             for m, deps in GRAPH.items()}
    assert _cycles(graph) == []


def test_library_code_never_imports_command_line_code() -> None:
    offenders = sorted(f"{m} imports {t}" for m, deps in GRAPH.items() if m not in CLI for t in deps if t in CLI)
    assert offenders == []


def test_the_checker_finds_a_cycle_and_a_cli_import() -> None:
    """The two checks above can fail: a made-up graph with a cycle and a library importing a CLI."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("import argparse\ndef main() -> int:\n    return 0\n")
    assert _is_cli(tree) and not _is_cli(ast.parse("def helper() -> None: ...\n"))


@pytest.mark.parametrize("room", ["core", "config", "blocks", "components", "slo", "artifacts", "validation",
                                  "offline", "tools", "dashboard_defs"])
def test_each_room_of_infra_exists(room: str) -> None:
    assert (ROOT / "infra" / room / "__init__.py").exists()


def test_core_and_config_depend_on_no_component() -> None:
    """Data flows one way: config and the building blocks never reach up into the components or the commands."""
    low = [m for m in GRAPH if m.startswith(("infra.core", "infra.config", "infra.blocks"))]
    offenders = sorted(f"{m} imports {t}" for m in low for t in GRAPH[m]
                       if t.startswith(("infra.components", "infra.offline", "infra.tools", "infra.program")))
    assert offenders == []
