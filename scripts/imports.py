"""The import graph of components/ and lab/: modules, cycles, imports against the layers, largest modules.

    python scripts/imports.py            the report
    python scripts/imports.py --edges    the report, then every import edge between our modules

Pure standard library: it reads the source with `ast` and imports none of what it reports on, so it
runs on a checkout without the venv. tests/unit/test_import_graph.py holds the rules (no runtime
cycle, no pulumi in the pure core) over the same graph.

An import is an edge to the most specific module it names: `from components.policy import model`
points at components.policy.model, `from .model import Policy` at the model module, and
`from components.policy import evaluate` at the package. The parent packages Python also runs on
the way are not counted as edges: every module would otherwise sit in a circle with its own package.
Each edge has a kind, because the three run at different times:

    module       at module level (also inside a try or an if): runs when the module is imported
    function     inside a def: runs when that function is first called (a lazy import)
    typing       under `if TYPE_CHECKING:`: never runs, only the type checker follows it
"""

from __future__ import annotations

import argparse
import ast
import fnmatch
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = ("components", "lab")
SKIP_DIRS = {"tests", "__pycache__"}  # lab/tests is test code, not a module of the lab
KINDS = ("module", "function", "typing")
RUNTIME = ("module", "function")  # the kinds that execute
OVERSIZE = 400  # the house standard: a module holds one idea, ~400 lines at most

# The layers, lowest first. A module may import from its own layer and the ones below it; an import
# the other way is reported. The order says what may be reused without dragging in what:
#   core      pure planning and models (policy engine, manifest planner, volume forecast, kubeadm's
#             ClusterConfiguration edit, drift comparison, the typed settings model, insight-agent
#             plan, the decoders of Helm's records): no pulumi, no network, no SSH, so it is
#             unit-tested and run by the CLIs alone
#   node      the program shipped to a master as a zipapp: the stdlib and the core, nothing else
#             (a master has python3 and no venv)
#   io        what reads the world outside the process: the Pulumi config (settings/__init__.py, where config
#             is read in one place), the Kubernetes API, the fact reader over SSH
#   pulumi    ComponentResources and dynamic providers: the wiring that turns plans into resources
#   cli       entry points (argument parsing, printing): the top, nothing imports them
# The lab is a separate program that tests the one above; it sits on top and components/ must
# never import it:
#   lab-node  the supervisor and controller stand-ins, copied to a lab host and run there alone
#   lab-base  the lab's model and helpers (config, processes, API client, PKI, manifests, plugins)
#   lab-ops   bringing the lab up and down, its stack, workloads and audit checks
#   lab-cli   `python -m lab`
LAYERS = ("core", "node", "io", "pulumi", "cli", "lab-node", "lab-base", "lab-ops", "lab-cli")

# First matching pattern wins (fnmatch on the dotted module name). A module no rule names falls to
# "core" on purpose: a new module that imports pulumi then fails the pure-core test until it is
# given its layer here.
LAYER_RULES: tuple[tuple[str, str], ...] = (
    ("components.__main__", "cli"),
    ("components.cli", "cli"),
    ("components.*.cli", "cli"),
    ("components.*.__main__", "cli"),
    ("components.settings.reference", "cli"),  # generates docs/configuration.md from the model
    ("components.manifest.node", "node"),
    ("components.manifest.node.*", "node"),
    ("components.manifest.preflight", "node"),
    ("components.settings", "io"),
    ("components.remote.kubeapi", "io"),
    ("components.drift.facts", "io"),
    ("components.apiserver", "pulumi"),
    ("components.audit_logging", "pulumi"),
    ("components.insight_agent.component", "pulumi"),
    ("components.remote.node_program", "pulumi"),
    ("components.policy_file", "pulumi"),
    ("components.preflight", "pulumi"),
    ("components.remote.ssh", "pulumi"),  # the SSH client and the RemoteFile dynamic provider, in one module
    ("components.drift.observe", "pulumi"),
    ("components.drift.props", "pulumi"),
    ("components.kubeadm.persistence", "pulumi"),
    ("components.insight_agent.check", "pulumi"),  # the FluentBit check after `up`: a dynamic resource
    ("components.fleet.engine", "pulumi"),  # the fleet's one user of the Automation API
    ("components", "core"),
    ("components.*", "core"),
    ("lab.supervisor", "lab-node"),
    ("lab.supervisor.*", "lab-node"),
    ("lab.controllers", "lab-node"),
    ("lab.config", "lab-base"),
    ("lab.system", "lab-base"),
    ("lab.kube", "lab-base"),
    ("lab.pki", "lab-base"),
    ("lab.manifests", "lab-base"),
    ("lab.plugins", "lab-base"),
    ("lab", "lab-base"),
    ("lab.__main__", "lab-cli"),
    ("lab.*", "lab-ops"),
)

PULUMI = "pulumi"


@dataclass(frozen=True)
class Edge:
    """One import: `src` imports `dst` (one of our modules, or the top-level name of a package)."""

    src: str
    dst: str
    kind: str
    line: int
    local: bool


def layer_of(module: str) -> str:
    """The module's layer by the first rule that matches."""
    for pattern, layer in LAYER_RULES:
        if fnmatch.fnmatchcase(module, pattern):
            return layer
    return "core"


def discover(repo: Path = REPO) -> dict[str, Path]:
    """Every module under the roots: dotted name -> file."""
    modules: dict[str, Path] = {}
    for root in ROOTS:
        for path in sorted((repo / root).rglob("*.py")):
            rel = path.relative_to(repo)
            if SKIP_DIRS.intersection(rel.parts[:-1]):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    """Every import below `node` with the kind its context gives it."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, kind
        elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            yield from _walk(child, "typing" if kind == "typing" else "function")
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for stmt in child.body:
                yield from _walk_stmt(stmt, "typing")
            for stmt in child.orelse:
                yield from _walk_stmt(stmt, kind)
        else:
            yield from _walk(child, kind)


def _walk_stmt(stmt: ast.stmt, kind: str) -> Iterator[tuple[ast.Import | ast.ImportFrom, str]]:
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        yield stmt, kind
    else:
        wrapper = ast.Module(body=[stmt], type_ignores=[])
        yield from _walk(wrapper, kind)


def _longest_local(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _targets(
    node: ast.Import | ast.ImportFrom, module: str, is_package: bool, modules: dict[str, Path]
) -> Iterator[str]:
    """The dotted names one import statement points at (before the local/external split)."""
    if isinstance(node, ast.Import):
        for alias in node.names:
            yield alias.name
        return
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        yield sub if sub in modules else target


def edges_of(module: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """The imports of one module."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: dict[tuple[str, str], Edge] = {}
    for node, kind in _walk(tree, "module"):
        for name in _targets(node, module, is_package, modules):
            local = _longest_local(name, modules)
            dst = local or name.split(".")[0]
            if dst == module:
                continue
            key = (dst, kind)
            if key not in out:
                out[key] = Edge(module, dst, kind, node.lineno, local is not None)
    return sorted(out.values(), key=lambda e: (e.line, e.dst))


def graph(repo: Path = REPO) -> tuple[dict[str, Path], list[Edge]]:
    """All modules and all their import edges."""
    modules = discover(repo)
    return modules, [e for name, path in modules.items() for e in edges_of(name, path, modules)]


def _sccs(nodes: Iterable[str], adjacency: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with a cycle in them (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(nodes):
        if start in index:
            continue
        work = [(start, iter(sorted(adjacency.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(adjacency.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in adjacency.get(node, ()):
                    found.append(sorted(group))
    return sorted(found)


@dataclass(frozen=True)
class Cycle:
    """A circle of imports: its members and one shortest round trip through them, edge by edge."""

    members: tuple[str, ...]
    path: tuple[Edge, ...]
    kinds: tuple[str, ...]  # the edge kinds that were allowed when it was found

    def render(self) -> str:
        """`a -> b -(function, line 9)-> a`, with every edge that is not module level annotated."""
        text = self.path[0].src
        for edge in self.path:
            text += " -> " if edge.kind == "module" else f" -({edge.kind}, line {edge.line})-> "
            text += edge.dst
        return text


def _round_trip(members: list[str], edges: list[Edge]) -> tuple[Edge, ...]:
    """A shortest cycle through the first member, breadth first inside the group."""
    inside = set(members)
    out: dict[str, list[Edge]] = {}
    for e in edges:
        if e.src in inside and e.dst in inside:
            out.setdefault(e.src, []).append(e)
    start = members[0]
    frontier: list[tuple[str, tuple[Edge, ...]]] = [(start, ())]
    seen = {start}
    while frontier:
        nxt: list[tuple[str, tuple[Edge, ...]]] = []
        for node, path in frontier:
            for e in sorted(out.get(node, ()), key=lambda e: (e.dst, KINDS.index(e.kind))):
                if e.dst == start:
                    return (*path, e)
                if e.dst not in seen:
                    seen.add(e.dst)
                    nxt.append((e.dst, (*path, e)))
        frontier = nxt
    return ()


def cycles(modules: dict[str, Path], edges: list[Edge], kinds: tuple[str, ...]) -> list[Cycle]:
    """The import circles among our modules when only edges of `kinds` count."""
    used = [e for e in edges if e.local and e.kind in kinds]
    adjacency: dict[str, set[str]] = {}
    for e in used:
        adjacency.setdefault(e.src, set()).add(e.dst)
    return [Cycle(tuple(g), _round_trip(g, used), kinds) for g in _sccs(modules, adjacency)]


def cycles_by_kind(modules: dict[str, Path], edges: list[Edge]) -> dict[str, list[Cycle]]:
    """Cycles at module level; those that also need a function-level import; those that need a typing one."""
    module_level = cycles(modules, edges, ("module",))
    runtime = cycles(modules, edges, RUNTIME)
    every = cycles(modules, edges, KINDS)
    known = {c.members for c in module_level}
    lazy = [c for c in runtime if c.members not in known]
    known |= {c.members for c in runtime}
    return {"module": module_level, "function": lazy, "typing": [c for c in every if c.members not in known]}


def upward(edges: list[Edge]) -> list[Edge]:
    """Imports from a lower layer to a higher one."""
    return [e for e in edges if e.local and LAYERS.index(layer_of(e.src)) < LAYERS.index(layer_of(e.dst))]


def core_pulumi(modules: dict[str, Path], edges: list[Edge]) -> list[tuple[str, tuple[Edge, ...]]]:
    """Core modules that load pulumi: directly (module level or in a function), or through the
    module-level imports of what they import. Each with the chain of imports that gets there."""
    by_src: dict[str, list[Edge]] = {}
    for e in edges:
        by_src.setdefault(e.src, []).append(e)
    found = []
    for module in sorted(m for m in modules if layer_of(m) == "core"):
        # Breadth first: the first hop may be lazy (a core function must not import pulumi either),
        # later hops are module level (what importing that module runs).
        frontier: list[tuple[str, tuple[Edge, ...]]] = [(module, ())]
        seen = {module}
        chain: tuple[Edge, ...] | None = None
        while frontier and chain is None:
            nxt = []
            for node, path in frontier:
                kinds = RUNTIME if not path else ("module",)
                for e in by_src.get(node, ()):
                    if e.kind not in kinds:
                        continue
                    if e.dst == PULUMI or (e.local and layer_of(e.dst) == "pulumi"):
                        chain = (*path, e)
                        break
                    if e.local and e.dst not in seen:
                        seen.add(e.dst)
                        nxt.append((e.dst, (*path, e)))
                if chain is not None:
                    break
            frontier = nxt
        if chain is not None:
            found.append((module, chain))
    return found


def largest(modules: dict[str, Path], repo: Path = REPO, count: int = 10) -> list[tuple[int, str]]:
    """The longest modules: (lines, path)."""
    sizes = [(len(p.read_text(encoding="utf-8").splitlines()), str(p.relative_to(repo))) for p in modules.values()]
    return sorted(sizes, key=lambda s: (-s[0], s[1]))[:count]


def report(repo: Path = REPO, show_edges: bool = False) -> str:
    """The whole report as text."""
    modules, edges = graph(repo)
    local = [e for e in edges if e.local]
    lines = [f"import graph of {', '.join(r + '/' for r in ROOTS)} (scripts/imports.py)"]
    per_root = ", ".join(f"{r} {sum(1 for m in modules if m.split('.')[0] == r)}" for r in ROOTS)
    lines.append(f"modules: {len(modules)} ({per_root})")
    counts = ", ".join(f"{sum(1 for e in local if e.kind == k)} {k}" for k in KINDS)
    lines.append(f"imports between them: {len(local)} ({counts})")
    titles = {
        "module": "import cycles at module level",
        "function": "import cycles through a function-level (lazy) import",
        "typing": "import cycles through a TYPE_CHECKING import only",
    }
    for kind, found in cycles_by_kind(modules, edges).items():
        lines.append(f"{titles[kind]}: {len(found)}")
        lines.extend(f"  {c.render()}" for c in found)
    lines.append("layers, lowest first: " + " < ".join(LAYERS))
    up = upward(edges)
    lines.append(f"imports from a lower layer to a higher one: {len(up)}")
    lines.extend(
        f"  {layer_of(e.src)} {e.src}:{e.line} -> {layer_of(e.dst)} {e.dst}"
        + ("" if e.kind == "module" else f" ({e.kind})")
        for e in up
    )
    pure = core_pulumi(modules, edges)
    lines.append(f"core modules that load pulumi: {len(pure)}")
    lines.extend(f"  {m}: " + " -> ".join(f"{e.dst} ({e.kind}, line {e.line})" for e in chain) for m, chain in pure)
    lines.append("largest modules (lines):")
    lines.extend(f"  {n:5d} {p}" + (f"  (over {OVERSIZE})" if n > OVERSIZE else "") for n, p in largest(modules, repo))
    if show_edges:
        lines.append("edges (src:line -> dst, kind):")
        lines.extend(f"  {e.src}:{e.line} -> {e.dst} {e.kind}" for e in local)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edges", action="store_true", help="also list every import edge between our modules")
    args = parser.parse_args(argv)
    print(report(show_edges=args.edges))
    return 0


if __name__ == "__main__":
    sys.exit(main())
