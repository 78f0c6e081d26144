"""The package's import graph obeys the layering of the design, and has no cycles.

Layers, top to bottom: interfaces -> service -> graphs -> agents -> tools | memory -> store -> core. A module may import
its own layer or any layer below it, never one above; `tools` and `memory` are siblings and do not
import each other; `core` imports nothing of ours; nothing imports `interfaces`; `evals` may import
the product (not `interfaces`), the product never imports `evals`.

Every import counts, wherever it is written (module level, inside a function, under
`TYPE_CHECKING`): a lazy import is still a dependency, and a cycle through one is still a cycle
that breaks as soon as someone hoists it. Importing `a.b.c` also runs the `__init__` of `a` and
`a.b`, so those count as imported too (except the importer's own packages, which are already
running). A failure names every offending edge as `importer -> imported (file:line)`.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "store", "tools", "memory", "agents", "graphs", "service", "interfaces", "evals")

# What each top-level package may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "store": {"core"},
    "tools": {"core"},
    "memory": {"store", "core"},
    "agents": {"tools", "memory", "store", "core"},
    "graphs": {"agents", "tools", "memory", "store", "core"},
    "service": {"graphs", "agents", "tools", "memory", "store", "core"},
    "interfaces": {"service", "graphs", "agents", "tools", "memory", "store", "core"},
    "evals": {"service", "graphs", "agents", "tools", "memory", "store", "core"},
}

# Known cycles that someone else is removing, each with who and why. A cycle is excused only if its
# modules are exactly these; an entry that no longer matches anything warns, so it gets deleted.
PENDING_CYCLES: dict[frozenset[str], str] = {}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str

    def __str__(self) -> str:
        return f"{self.src} -> {self.dst} ({self.where})"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            out[_module_name(path)] = path
    return out


def _is_package(name: str, mods: dict[str, Path]) -> bool:
    return name in mods and mods[name].name == "__init__.py"


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    """The longest known module that `name` (a module, or a module's attribute) refers to."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def _targets(node: ast.Import | ast.ImportFrom, importer: str, mods: dict[str, Path]) -> Iterator[str]:
    if isinstance(node, ast.Import):
        for alias in node.names:
            if (hit := _resolve(alias.name, mods)) is not None:
                yield hit
        return
    base = node.module or ""
    if node.level:  # relative: from the importer's package
        pkg = importer if _is_package(importer, mods) else importer.rpartition(".")[0]
        for _ in range(node.level - 1):
            pkg = pkg.rpartition(".")[0]
        base = f"{pkg}.{base}" if base else pkg
    for alias in node.names:  # `from pkg import sub` imports the submodule pkg.sub when there is one
        full = f"{base}.{alias.name}"
        hit = full if full in mods else _resolve(base, mods)
        if hit is not None:
            yield hit


def _with_parents(target: str, importer: str) -> Iterator[str]:
    """`target` and the packages whose `__init__` importing it runs (not the importer's own)."""
    yield target
    own = {importer.rsplit(".", i)[0] for i in range(importer.count(".") + 1)}
    parts = target.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent not in own:
            yield parent


def import_edges() -> list[Edge]:
    mods = modules()
    edges: set[Edge] = set()
    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                for target in _targets(node, name, mods):
                    for dst in _with_parents(target, name):
                        if dst != name and dst in mods:
                            edges.add(Edge(name, dst, where))
    return sorted(edges, key=lambda e: (e.src, e.dst, e.where))


def layer_violations(edges: list[Edge]) -> list[Edge]:
    bad = []
    for e in edges:
        src, dst = e.src.split(".")[0], e.dst.split(".")[0]
        if src != dst and dst not in ALLOWED[src]:
            bad.append(e)
    return bad


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
        graph.setdefault(e.dst, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_the_graph_is_read() -> None:
    """The parser sees the imports we know exist (a broken walker would make the other tests vacuous)."""
    edges = {(e.src, e.dst) for e in import_edges()}
    assert ("agents.diagnosis", "agents.toolbox") in edges
    assert ("agents.diagnosis", "tools.analysis.metric_anomaly") in edges  # a function-level import
    assert ("tools.proxmox.tools", "tools.result") in edges


def test_layers_point_downward() -> None:
    bad = layer_violations(import_edges())
    assert not bad, "imports against the layering (interfaces -> graphs -> agents -> tools|memory -> core):\n" + \
        "\n".join(f"  {e}" for e in bad)


def test_no_import_cycles() -> None:
    edges = import_edges()
    all_found = cycles(edges)
    for pending, why in PENDING_CYCLES.items():
        if sorted(pending) not in all_found:
            warnings.warn(f"PENDING_CYCLES entry no longer needed, delete it: {sorted(pending)} ({why})",
                          stacklevel=1)
    found = [c for c in all_found if frozenset(c) not in PENDING_CYCLES]
    lines = []
    for comp in found:
        members = set(comp)
        lines.append("  cycle: " + ", ".join(comp))
        lines += [f"    {e}" for e in edges if e.src in members and e.dst in members]
    assert not found, "import cycles:\n" + "\n".join(lines)


def test_the_checks_catch_what_they_should() -> None:
    """A hand-made graph with one upward edge and one cycle is reported as such."""
    edges = [Edge("core.models", "tools.result", "x:1"), Edge("tools.a", "tools.b", "x:2"),
             Edge("tools.b", "tools.a", "x:3"), Edge("agents.x", "tools.a", "x:4")]
    assert layer_violations(edges) == [edges[0]]
    assert cycles(edges) == [["tools.a", "tools.b"]]


def test_a_toolset_is_named_only_by_its_folder_and_the_registry():
    """Issue 17: a toolset is a plugin. Adding one is its folder plus one line in tools/registry.py, so no
    other module of the product imports it: the executor, diagnosis, planning, verification and the
    self-healing policy reach it through the registry. (Metrics and logs are the shared evidence sources
    every layer reads by type, and are exempt.)"""
    from tools.registry import toolsets

    edges = import_edges()
    for ts in toolsets():
        if ts.shared_source:
            continue
        pkg = ts.__module__.rsplit(".", 1)[0]

        def inside(module: str, pkg: str = pkg) -> bool:
            return module == pkg or module.startswith(pkg + ".")

        offenders = [e for e in edges if inside(e.dst) and not inside(e.src) and e.src != "tools.registry"]
        assert not offenders, f"{pkg} is imported outside its folder and the registry:\n" + \
            "\n".join(f"  {e}" for e in offenders)


def test_every_registered_toolset_is_a_folder_with_its_toolset_module():
    from tools.registry import TOOLSETS

    for module in TOOLSETS:
        assert module.startswith("tools.") and module.endswith(".toolset"), module
        assert (REPO / Path(*module.split(".")).with_suffix(".py")).exists(), module
