"""The import rules of the house, over the graph scripts/imports.py reads from the source.

No import cycle that runs (module level or inside a function) among our modules, and no pulumi in
the pure core. The tool's own tests build small trees with each kind of import, so the checks on the
real tree are known to see what they look for.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("kube_audit_imports", REPO / "scripts" / "imports.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


imports = _load_tool()

# Runtime cycles tolerated, as the sorted members of the cycle: none. (node <-> preflight was the last;
# the readiness URL both need now lives in manifest/readiness.py.) An entry added here must name a
# cycle that exists: test_the_allow_list_holds_only_cycles_that_exist checks it.
ALLOWED_CYCLES: frozenset[tuple[str, ...]] = frozenset()


@pytest.fixture(scope="module")
def real_graph() -> tuple[dict[str, Path], list]:
    return imports.graph(REPO)


def runtime_cycles(modules: dict[str, Path], edges: list) -> list:
    return imports.cycles(modules, edges, imports.RUNTIME)


def test_no_runtime_import_cycle(real_graph) -> None:
    modules, edges = real_graph
    found = [c for c in runtime_cycles(modules, edges) if c.members not in ALLOWED_CYCLES]
    assert not found, "import cycles (break them; see scripts/imports.py):\n" + "\n".join(c.render() for c in found)


def test_the_allow_list_holds_only_cycles_that_exist(real_graph) -> None:
    modules, edges = real_graph
    present = {c.members for c in runtime_cycles(modules, edges)}
    assert present >= ALLOWED_CYCLES, f"broken, so remove from ALLOWED_CYCLES: {sorted(ALLOWED_CYCLES - present)}"


def test_the_pure_core_loads_no_pulumi(real_graph) -> None:
    modules, edges = real_graph
    found = imports.core_pulumi(modules, edges)
    assert not found, "core modules that load pulumi (move the pulumi part up, or give the module its layer):\n" + (
        "\n".join(f"{m}: " + " -> ".join(f"{e.dst}:{e.line}" for e in chain) for m, chain in found)
    )


def test_every_module_of_the_real_tree_parses_and_the_report_prints(real_graph) -> None:
    modules, _ = real_graph
    assert "components.policy.model" in modules and "lab.supervisor.host" in modules
    text = imports.report(REPO)
    assert f"modules: {len(modules)} " in text and "largest modules (lines):" in text


# -- the tool, on small trees ------------------------------------------------------------------


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "lab").mkdir(exist_ok=True)
    return root


def test_kinds_and_relative_imports_are_read(tmp_path: Path) -> None:
    repo = tree(
        tmp_path,
        {
            "components/__init__.py": "",
            "components/pkg/__init__.py": "from .a import x\n",
            "components/pkg/a.py": (
                "from typing import TYPE_CHECKING\n"
                "from . import b\n"
                "if TYPE_CHECKING:\n    from .c import C\n"
                "def f():\n    from components.pkg.c import y\n"
            ),
            "components/pkg/b.py": "import components.pkg.c\nimport pulumi.dynamic\n",
            "components/pkg/c.py": "from ..pkg import a\n",
        },
    )
    modules, edges = imports.graph(repo)
    got = {(e.src, e.dst, e.kind) for e in edges}
    assert got == {
        ("components.pkg", "components.pkg.a", "module"),
        ("components.pkg.a", "typing", "module"),
        ("components.pkg.a", "components.pkg.b", "module"),
        ("components.pkg.a", "components.pkg.c", "typing"),
        ("components.pkg.a", "components.pkg.c", "function"),
        ("components.pkg.b", "components.pkg.c", "module"),
        ("components.pkg.b", "pulumi", "module"),
        ("components.pkg.c", "components.pkg.a", "module"),
    }
    assert set(modules) == {"components", "components.pkg", "components.pkg.a", "components.pkg.b", "components.pkg.c"}


def test_cycles_are_told_apart_by_the_kind_that_closes_them(tmp_path: Path) -> None:
    repo = tree(
        tmp_path,
        {
            "components/m1.py": "import components.m2\n",
            "components/m2.py": "import components.m1\n",
            "components/l1.py": "import components.l2\n",
            "components/l2.py": "def f():\n    import components.l1\n",
            "components/t1.py": "import components.t2\n",
            "components/t2.py": "import typing\nif typing.TYPE_CHECKING:\n    import components.t1\n",
        },
    )
    modules, edges = imports.graph(repo)
    by_kind = imports.cycles_by_kind(modules, edges)
    assert [c.members for c in by_kind["module"]] == [("components.m1", "components.m2")]
    assert [c.members for c in by_kind["function"]] == [("components.l1", "components.l2")]
    assert [c.members for c in by_kind["typing"]] == [("components.t1", "components.t2")]
    assert by_kind["function"][0].render() == "components.l1 -> components.l2 -(function, line 2)-> components.l1"
    assert {c.members for c in runtime_cycles(modules, edges)} == {
        ("components.m1", "components.m2"),
        ("components.l1", "components.l2"),
    }


def test_pulumi_is_found_in_the_core_directly_lazily_and_through_a_module(tmp_path: Path) -> None:
    repo = tree(
        tmp_path,
        {
            "components/direct.py": "import pulumi\n",
            "components/lazy.py": "def f():\n    from pulumi import Output\n",
            "components/through.py": "from components import direct\n",
            "components/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pulumi\n",
            "components/wiring.py": "from components.apiserver import x\n",
            "components/apiserver.py": "x = 1\n",  # in the pulumi layer by name
            "components/cli.py": "import pulumi\n",  # the cli layer may
        },
    )
    modules, edges = imports.graph(repo)
    found = {m: [e.dst for e in chain] for m, chain in imports.core_pulumi(modules, edges)}
    assert found == {
        "components.direct": ["pulumi"],
        "components.lazy": ["pulumi"],
        "components.through": ["components.direct", "pulumi"],
        "components.wiring": ["components.apiserver"],
    }


def test_a_lower_layer_importing_a_higher_one_is_reported(tmp_path: Path) -> None:
    repo = tree(
        tmp_path,
        {
            "components/cli.py": "from components import planner\n",
            "components/planner.py": "from components import cli\n",
        },
    )
    _, edges = imports.graph(repo)
    assert [(e.src, e.dst) for e in imports.upward(edges)] == [("components.planner", "components.cli")]
