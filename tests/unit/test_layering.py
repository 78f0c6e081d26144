"""The package's import graph obeys the layering of the design, down to its sub-folders, and has no loops.

**Layers**, top to bottom: interfaces -> service -> graphs -> agents -> tools | memory -> store -> core. A
module may import its own layer or any layer below it, never one above; `tools` and `memory` are
siblings and do not import each other; `core` imports nothing of ours; nothing imports `interfaces`;
`evals` may import the product (not `interfaces`), the product never imports `evals`, with one declared
exception (`LAYER_EXCEPTIONS`: `aiops eval <suite>`).

**Sub-folders.** Inside a top-level package the units are its sub-packages (`tools/proxmox/`,
`interfaces/telegram/`), its shared modules (the package's own top-level modules: `tools/result.py`,
`interfaces/render.py`), and its `UPPER` modules (the few that wire the sub-packages together: the
toolset registry, the `aiops` command, the `aiops serve` app; each a unit of its own). A sub-package
may import its package's shared modules and nothing else of its package unless `SUBFOLDER_EDGES`
names the edge with its reason; a shared module may import a sub-package only the same way; an `UPPER`
module may import anything in its package, and only another `UPPER` module of the package imports it.
So toolsets are independent of each other, and so are adapters.

**No loops**, at two scales: no import cycle between modules, and none between units (sub-packages,
shared modules, upper modules): two sub-packages that import each other are a loop even when no
single module cycle exists.

**Every import counts**, wherever it is written (module level, inside a function, under
`TYPE_CHECKING`), and so does a dynamic one: `importlib.import_module` / `__import__` with a literal
is an edge; with anything else the module must be in `DYNAMIC_IMPORTS`, which names the module-level
literal table its names come from (each entry of the table is an edge) or says why it is not ours.
Importing `a.b.c` also runs the `__init__` of `a` and `a.b`, so those count as imported too (except
the importer's own packages, which are already running).

**Function-level imports** of our packages are the exception: each (importer, imported) pair is in
`FUNCTION_LEVEL` with its reason (start-up cost of a command, an optional dependency, a heavy stack
one path needs, a file another change is restructuring). A new one that is not listed fails, and so
does a listed one that no longer exists, so the list only shrinks. A lazy import is still a
dependency: it is in the graph above like any other.

A failure names every offending edge as `importer -> imported (file:line)`.
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

# (importing module, imported top-level package) -> why this one edge crosses the layers.
LAYER_EXCEPTIONS: dict[tuple[str, str], str] = {
    ("interfaces.cli", "evals"): "`aiops eval <suite>` runs an offline eval suite: the one command that loads "
                                 "`evals`, only when it runs, through the literal table EVAL_SUITES",
}

# Modules that wire their package's sub-packages together: each is a unit of its own, may import anything
# in its package, and is imported inside its package only by another of these.
UPPER: dict[str, str] = {
    "interfaces.cli": "the `aiops` command: each command starts its adapter (HTTP, Telegram, notify)",
    "interfaces.api.app": "the `aiops serve` process: mounts the console, runs the outbox and the Telegram bot",
    "tools.registry": "the toolset table: the one module that names every toolset",
    "tools.catalog": "the action catalog, collected from every toolset through the registry",
    "tools.executor": "dispatches an action to its toolset through the registry",
}

# (importing unit, imported unit) -> why, for the edges between sub-packages of one package (and from a
# package's shared modules, named by the package, into one of its sub-packages). Nothing else crosses.
SUBFOLDER_EDGES: dict[tuple[str, str], str] = {
    # tools: metrics and logs are the shared evidence sources; analysis is the algorithms over their
    # types (tools/metric_types.py, tools/log_types.py); the other toolsets know none of each other.
    ("tools.metrics", "tools.analysis"): "the metric read tools rank components with the anomaly detector",
    ("tools.logs", "tools.analysis"): "the log read tools summarise (redacted) templates",
    ("tools.proxmox", "tools.metrics"): "PVE's RRD history is served as an in-memory MetricsSource",
    ("tools.proxmox", "tools.analysis"): "the guest's RRD series are ranked by the anomaly detector",
    ("tools.replay", "tools.metrics"): "a recording replays its metrics as an in-memory MetricsSource",
    ("tools.replay", "tools.logs"): "a recording replays its logs as an in-memory LogSource",
    # interfaces: the adapters know none of each other but these
    ("interfaces.console", "interfaces.api"): "the console's pages go through the API's own functions "
                                              "(decide, change, auth, request schemas)",
    ("interfaces.api", "interfaces.notify"): "/health reports the outbox's spill file",
    ("interfaces.notify", "interfaces.telegram"): "the Telegram channel draws the bot's incident cards",
    # agents: the prompt texts
    ("agents", "agents.prompts"): "the agents' prompt texts (a data folder)",
}

# Modules whose dynamic imports are not literals: module -> (the module-level literal table the names
# come from, or "" when they are not ours; why).
DYNAMIC_IMPORTS: dict[str, tuple[str, str]] = {
    "tools.registry": ("TOOLSETS", "the toolset table: adding a toolset is one line there"),
    "interfaces.cli": ("EVAL_SUITES", "`aiops eval <suite>`: a suite's stack loads only when it runs"),
    "evals.suites.nezha_baselines": ("", "RCAEval's published methods (third-party, the `baselines` extra)"),
}

# Known cycles that someone else is removing, each with who and why. A cycle is excused only if its
# modules are exactly these; an entry that no longer matches anything warns, so it gets deleted.
PENDING_CYCLES: dict[frozenset[str], str] = {}


# ---------------------------------------------------------------------------------------------------
# Function-level imports of our packages: (importer, imported) -> why it is not at the top of the file.
CLI_START = ("`aiops` start-up: each command loads its own stack (runner and LangGraph, the web app, aiogram, "
             "Milvus, the service client's httpx); `aiops --help` and `aiops incidents` stay light, and the "
             "tests start the CLI as a subprocess many times")
EVAL_START = ("eval start-up: `aiops eval <suite> --help`, a bad argument and the suite's unit tests do not load "
              "LangChain/LangGraph; the agent graph loads when a case runs")
TOOLSET_FACE = ("the registry imports every toolset to list them: a toolset's LangChain tools and the numpy "
                "anomaly detector load when a toolbox asks for them")
AIOGRAM = ("aiogram loads only when the Telegram channel is enabled: an outbox with e-mail, Slack or PagerDuty "
           "alone (and `aiops notify`) does not import it")
SERVE_START = ("`aiops serve` wiring: the app module is imported by the CLI and the tests; each part (worker, "
               "outbox, bot, chat, intake processes, uvicorn) loads when the settings turn it on")
SELF_HEALING = ("the self-healing switch (HTTP, console, Telegram): service.autonomy (agents.self_healing) loads the action catalog and "
                "every toolset (~1,100 modules, ~1.4 s); an intake process and the other routes never need it")

FUNCTION_LEVEL: dict[tuple[str, str], str] = {
    ("agents.policy", "tools.catalog"): "`aiops` start-up imports agents.policy (PolicyError); the catalog "
                                        "loads every toolset",
    **dict.fromkeys([("interfaces.cli", m) for m in (
        "agents.approval", "service.autonomy", "core.llm", "graphs.chat", "interfaces.api.app",
        "interfaces.notify.outbox", "interfaces.service_client", "interfaces.telegram.bot",
        "interfaces.telegram.ops", "memory.cli", "memory.incidents", "service.runner", "service.toolbox_factory",
        "service.watch", "service.worker", "store.registry", "tools.replay.recording")], CLI_START),
    **dict.fromkeys([("evals.suites.alerts", "agents.toolbox"), ("evals.suites.alerts", "core.llm"),
                     ("evals.suites.alerts", "graphs.incident"), ("evals.suites.fixes", "agents.toolbox"),
                     ("evals.suites.fixes", "core.llm"), ("evals.suites.fixes", "service.runner"),
                     ("evals.suites.nezha", "agents.diagnosis"), ("evals.suites.nezha", "agents.toolbox"),
                     ("evals.suites.nezha", "core.llm"), ("evals.suites.nezha", "graphs.incident")], EVAL_START),
    **dict.fromkeys([("tools.logs.toolset", "tools.logs.tools"), ("tools.metrics.toolset", "tools.metrics.tools"),
                     ("tools.proxmox.toolset", "tools.proxmox.evidence")], TOOLSET_FACE),
    **dict.fromkeys([("interfaces.notify.channels", "interfaces.telegram.cards"),
                     ("interfaces.notify.channels", "interfaces.telegram.client"),
                     ("interfaces.notify.channels", "interfaces.telegram.photos")], AIOGRAM),
    **dict.fromkeys([("interfaces.api.app", m) for m in (
        "core.llm", "graphs.chat", "interfaces.api.intake_processes", "interfaces.notify.outbox",
        "interfaces.telegram.bot", "interfaces.telegram.ops", "service.runner", "service.toolbox_factory",
        "service.watch", "service.worker")], SERVE_START),
    **dict.fromkeys([("interfaces.api.routes", "service.autonomy"),
                     ("interfaces.console.routes", "service.autonomy"),
                     ("interfaces.telegram.handlers", "service.autonomy")], SELF_HEALING),
}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    where: str
    kind: str = "module"  # "module" (module level or TYPE_CHECKING), "function" or "dynamic"

    def __str__(self) -> str:
        lazy = "" if self.kind == "module" else f", {self.kind}-level"
        return f"{self.src} -> {self.dst} ({self.where}{lazy})"


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


def _scoped(tree: ast.AST) -> Iterator[tuple[ast.AST, bool]]:
    """Every node, and whether it sits inside a function (a def, async def or lambda, at any depth)."""
    todo: list[tuple[ast.AST, bool]] = [(tree, False)]
    while todo:
        node, inside = todo.pop()
        yield node, inside
        inner = inside or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        todo.extend((child, inner) for child in ast.iter_child_nodes(node))


_DYNAMIC = {"import_module", "__import__", "run_module"}


def _is_dynamic_import(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    return (isinstance(f, ast.Name) and f.id in _DYNAMIC) or (isinstance(f, ast.Attribute) and f.attr in _DYNAMIC)


def _table(tree: ast.Module, name: str) -> list[str]:
    """The string literals of the module-level assignment to `name` (a tuple, list, set or dict)."""
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, ast.AnnAssign) and node.value is not None else []
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            value = node.value
            assert value is not None
            return [c.value for c in ast.walk(value) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
    raise AssertionError(f"no module-level table {name}")


@dataclass
class Graph:
    edges: list[Edge]
    unexplained: list[str]  # dynamic imports of a non-literal that DYNAMIC_IMPORTS does not explain
    dynamic_seen: set[str]  # modules with a non-literal dynamic import
    lazy: dict[tuple[str, str], list[str]]  # function-level imports: (importer, module named) -> where


def _read_graph() -> Graph:
    mods = modules()
    edges: set[Edge] = set()
    unexplained: list[str] = []
    dynamic_seen: set[str] = set()
    lazy: dict[tuple[str, str], list[str]] = {}

    def add(name: str, targets: Iterator[str] | list[str], where: str, kind: str) -> None:
        for target in targets:
            for dst in _with_parents(target, name):
                if dst != name and dst in mods:
                    edges.add(Edge(name, dst, where, kind))

    for name, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, inside in _scoped(tree):
            where = f"{path.relative_to(REPO)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Import | ast.ImportFrom):
                targets = list(_targets(node, name, mods))
                add(name, targets, where, "function" if inside else "module")
                for target in targets if inside else []:
                    if target != name:
                        lazy.setdefault((name, target), []).append(where)
            elif _is_dynamic_import(node):
                assert isinstance(node, ast.Call)
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    hit = _resolve(arg.value, mods)
                    add(name, [hit] if hit else [], where, "dynamic")
                    continue
                dynamic_seen.add(name)
                if name not in DYNAMIC_IMPORTS:
                    unexplained.append(f"{name} ({where}): {ast.unparse(node)}")
                    continue
                table = DYNAMIC_IMPORTS[name][0]
                if table:
                    ours = [s for s in _table(tree, table) if s.split(".")[0] in PACKAGES and "." in s]
                    missing = [s for s in ours if s not in mods]
                    assert not missing, f"{name}.{table} names modules that do not exist: {missing}"
                    add(name, ours, where, "dynamic")
    return Graph(sorted(edges, key=lambda e: (e.src, e.dst, e.where)), unexplained, dynamic_seen, lazy)


_GRAPH: Graph | None = None


def graph() -> Graph:
    global _GRAPH
    if _GRAPH is None:
        _GRAPH = _read_graph()
    return _GRAPH


def import_edges() -> list[Edge]:
    return graph().edges


def layer_violations(edges: list[Edge]) -> list[Edge]:
    bad = []
    for e in edges:
        src, dst = e.src.split(".")[0], e.dst.split(".")[0]
        if src != dst and dst not in ALLOWED[src] and (e.src, dst) not in LAYER_EXCEPTIONS:
            bad.append(e)
    return bad


def unit(module: str, packages: set[str]) -> str:
    """The module's unit: an UPPER module itself, else its sub-package (`tools.proxmox`), else its
    top-level package, which stands for the package's shared modules (`tools` for `tools.result`)."""
    if module in UPPER:
        return module
    parts = module.split(".")
    if len(parts) > 1 and ".".join(parts[:2]) in packages:
        return ".".join(parts[:2])
    return parts[0]


def _packages() -> set[str]:
    mods = modules()
    return {m for m in mods if _is_package(m, mods)}


def subfolder_violations(edges: list[Edge], packages: set[str]) -> list[Edge]:
    """Edges between two units of one package that the rules do not allow."""
    bad = []
    for e in edges:
        src, dst = unit(e.src, packages), unit(e.dst, packages)
        if src == dst or src.split(".")[0] != dst.split(".")[0]:
            continue
        if src in UPPER and dst not in UPPER:
            continue  # an upper module wires its package's sub-packages
        if dst == dst.split(".")[0]:
            continue  # the package's shared modules are everyone's in the package
        if dst in UPPER:
            if src not in UPPER:
                bad.append(e)
            continue
        if (src, dst) not in SUBFOLDER_EDGES:
            bad.append(e)
    return bad


def unit_edges(edges: list[Edge], packages: set[str]) -> list[Edge]:
    """The graph between units (one edge per module edge that crosses two units)."""
    out = []
    for e in edges:
        src, dst = unit(e.src, packages), unit(e.dst, packages)
        if src != dst:
            out.append(Edge(src, dst, f"{e.src} -> {e.dst} at {e.where}", e.kind))
    return out


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


# ---------------------------------------------------------------------------------------------------
def _listing(edges: list[Edge]) -> str:
    return "\n".join(f"  {e}" for e in edges)


def test_the_graph_is_read() -> None:
    """The parser sees the imports we know exist (a broken walker would make the other tests vacuous)."""
    edges = {(e.src, e.dst, e.kind) for e in import_edges()}
    assert ("agents.diagnosis", "agents.toolbox", "module") in edges
    assert ("tools.proxmox.tools", "tools.result", "module") in edges
    assert ("interfaces.cli", "service.runner", "function") in edges
    assert ("tools.registry", "tools.metrics.toolset", "dynamic") in edges  # the TOOLSETS table
    assert ("interfaces.cli", "evals.suites.nezha", "dynamic") in edges  # the EVAL_SUITES table
    assert ("agents.policy", "tools.catalog") in graph().lazy


def test_layers_point_downward() -> None:
    bad = layer_violations(import_edges())
    assert not bad, "imports against the layering (interfaces -> service -> graphs -> agents -> tools | memory " \
                    "-> store -> core):\n" + _listing(bad)


def test_sub_folders_import_only_what_their_rules_allow() -> None:
    """Toolsets know none of each other, adapters none of each other, but for the edges SUBFOLDER_EDGES
    names; only UPPER modules wire a package's sub-packages together."""
    bad = subfolder_violations(import_edges(), _packages())
    assert not bad, "imports between sub-folders that the rules do not allow (add the edge to SUBFOLDER_EDGES " \
                    "with its reason only if it is right; else move the shared piece down):\n" + _listing(bad)


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


def test_no_loops_between_sub_folders() -> None:
    """Two sub-packages (or a sub-package and its package's shared modules) that import each other are
    one loop, even when no single module cycle exists: it breaks as soon as someone hoists an import."""
    edges = unit_edges(import_edges(), _packages())
    found = cycles(edges)
    lines = []
    for comp in found:
        members = set(comp)
        lines.append("  loop: " + ", ".join(comp))
        lines += [f"    {e.src} -> {e.dst}: {e.where}" for e in edges if e.src in members and e.dst in members]
    assert not found, "loops between sub-folders (move the shared piece down to where both can import it):\n" + \
        "\n".join(lines)


def test_dynamic_imports_are_literal_or_declared() -> None:
    g = graph()
    assert not g.unexplained, "dynamic imports of a name the test cannot read (import a literal, or name the " \
                              "module-level table in DYNAMIC_IMPORTS with the reason):\n  " + "\n  ".join(g.unexplained)
    stale = sorted(set(DYNAMIC_IMPORTS) - g.dynamic_seen)
    assert not stale, f"DYNAMIC_IMPORTS entries with no dynamic import left, delete them: {stale}"


def test_every_function_level_import_has_its_reason() -> None:
    """A function-level import of our packages is listed in FUNCTION_LEVEL with why it is not at the top of
    its file; hoist it otherwise. A listed one that is gone fails too, so the list only shrinks."""
    lazy = graph().lazy
    new = sorted(set(lazy) - set(FUNCTION_LEVEL))
    assert not new, "function-level imports with no reason: hoist them, or list them in FUNCTION_LEVEL with " \
                    "why they must stay inside the function:\n" + \
        "\n".join(f"  {src} -> {dst} ({', '.join(sorted(set(lazy[src, dst])))})" for src, dst in new)
    gone = sorted(set(FUNCTION_LEVEL) - set(lazy))
    assert not gone, "FUNCTION_LEVEL entries that are no longer function-level imports, delete them:\n" + \
        "\n".join(f"  {src} -> {dst}" for src, dst in gone)


def test_every_declared_exception_is_still_used() -> None:
    """An allowed edge nobody takes any more is deleted, so the rules stay as tight as the code."""
    edges = import_edges()
    packages = _packages()
    taken = {(unit(e.src, packages), unit(e.dst, packages)) for e in edges}
    unused = [k for k in SUBFOLDER_EDGES if k not in taken]
    assert not unused, f"SUBFOLDER_EDGES entries no edge takes, delete them: {unused}"
    crossing = {(e.src, e.dst.split(".")[0]) for e in edges}
    unused = [k for k in LAYER_EXCEPTIONS if k not in crossing]
    assert not unused, f"LAYER_EXCEPTIONS entries no edge takes, delete them: {unused}"
    missing = [m for m in UPPER if m not in modules()]
    assert not missing, f"UPPER names modules that do not exist: {missing}"


def test_the_checks_catch_what_they_should() -> None:
    """A hand-made graph with an upward edge, a module cycle, a loop between sub-packages with no module
    cycle, an undeclared edge between two toolsets and an import of an upper module is reported as such."""
    edges = [Edge("core.models", "tools.result", "x:1"), Edge("tools.a", "tools.b", "x:2"),
             Edge("tools.b", "tools.a", "x:3"), Edge("agents.x", "tools.a", "x:4")]
    assert layer_violations(edges) == [edges[0]]
    assert cycles(edges) == [["tools.a", "tools.b"]]
    packages = {"tools", "tools.proxmox", "tools.routeros", "tools.metrics", "tools.analysis", "interfaces",
                "interfaces.telegram", "interfaces.notify"}
    loop = [Edge("interfaces.telegram.bot", "interfaces.notify.outbox", "x:5"),
            Edge("interfaces.notify.channels", "interfaces.telegram.cards", "x:6")]
    assert cycles(loop) == []
    assert cycles(unit_edges(loop, packages)) == [["interfaces.notify", "interfaces.telegram"]]
    assert subfolder_violations(loop, packages) == [loop[0]]
    sideways = [Edge("tools.proxmox.evidence", "tools.routeros.client", "x:7"),
                Edge("tools.analysis.metric_anomaly", "tools.metrics.prometheus", "x:8"),
                Edge("tools.proxmox.toolset", "tools.registry", "x:9"),
                Edge("tools.proxmox.toolset", "tools.result", "x:10"),
                Edge("tools.registry", "tools.proxmox.toolset", "x:11"),
                Edge("tools.metrics.tools", "tools.analysis.metric_anomaly", "x:12")]
    assert subfolder_violations(sideways, packages) == sideways[:3]


def test_a_toolset_is_named_only_by_its_folder_and_the_registry() -> None:
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
        assert not offenders, f"{pkg} is imported outside its folder and the registry:\n" + _listing(offenders)


def test_every_registered_toolset_is_a_folder_with_its_toolset_module() -> None:
    from tools.registry import TOOLSETS

    for module in TOOLSETS:
        assert module.startswith("tools.") and module.endswith(".toolset"), module
        assert (REPO / Path(*module.split(".")).with_suffix(".py")).exists(), module
