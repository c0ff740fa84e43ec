"""The layout's promises, checked on the source: no import cycle among the project's modules, library code never
imports command-line code (a module that defines a top-level `main`), and the rooms of infra/ form layers: a module
imports only from its own room or from rooms below it (LAYERS), never climbs. Imports inside functions count too:
a function-local import hides a cycle from the reader, not from this test."""

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


# Bottom to top: a room may import from the rooms before it. The Lambda packages are the floor (they never import
# infra); the program, the offline commands and the tools sit on everything they assemble or check.
LAYERS = ("lambdas", "infra.core", "infra.slo", "infra.config", "infra.plan", "infra.artifacts", "infra.blocks",
          "infra.dashboard_defs", "infra.components", "infra.program", "infra.validation", "infra.offline",
          "infra.tools", "infra.__main__")


def _room(module: str) -> str:
    """The layer a module belongs to: its room of infra/ (or infra.program, infra.__main__), or lambdas."""
    parts = module.split(".")
    return parts[0] if parts[0] != "infra" or len(parts) == 1 else ".".join(parts[:2])


def _climbs(graph: dict[str, set[str]]) -> list[str]:
    rank = {room: i for i, room in enumerate(LAYERS)}
    return sorted(f"{m} ({_room(m)}) imports {t} ({_room(t)})" for m, deps in graph.items() for t in deps
                  if rank.get(_room(t), -1) > rank.get(_room(m), len(LAYERS)))


@pytest.mark.parametrize("room", [r.removeprefix("infra.") for r in LAYERS if r.startswith("infra.")
                                  and r not in ("infra.program", "infra.__main__")])
def test_each_room_of_infra_exists(room: str) -> None:
    assert (ROOT / "infra" / room / "__init__.py").exists()


def test_every_module_belongs_to_a_layer() -> None:
    """A new room must take its place in LAYERS (else no climb from or into it could be seen)."""
    assert sorted({_room(m) for m in MODULES} - set(LAYERS)) == ["infra"]  # infra/__init__.py: the package itself


def test_no_import_climbs_the_layers() -> None:
    assert _climbs(GRAPH) == []


def test_the_checker_finds_a_climb() -> None:
    """A made-up graph: core importing config climbs; config importing core does not."""
    assert _climbs({"infra.core.x": {"infra.config.y"}, "infra.config.y": {"infra.core.z"}}) == [
        "infra.core.x (infra.core) imports infra.config.y (infra.config)"]


def test_core_and_config_depend_on_no_component() -> None:
    """Data flows one way: config and the building blocks never reach up into the components or the commands."""
    low = [m for m in GRAPH if m.startswith(("infra.core", "infra.config", "infra.blocks"))]
    offenders = sorted(f"{m} imports {t}" for m in low for t in GRAPH[m]
                       if t.startswith(("infra.components", "infra.offline", "infra.tools", "infra.program")))
    assert offenders == []
