"""The package's layering, read from the import statements of every module (top-level and inside functions).

Data flows one way: cell -> theory -> init -> export | harness -> report -> cli, with the finite network beside the
theory as its independent check (it never imports the theory, so theory-vs-simulation tests compare two
independent code paths). ``errors``, ``serialize`` and ``backend`` are leaves every stage may use.
"""

import ast
from pathlib import Path

import networkx as nx
import pytest

import symmft

ROOT = Path(symmft.__file__).parent

#: Stage of each subpackage (or top-level module): a module may import its own stage and lower ones only.
LEVEL = {"errors": 0, "serialize": 0, "extras": 0, "backend": 0, "cache": 0, "progress": 0, "cells": 0, "cell": 1, "theory": 2, "network": 2,
         "init": 3, "export": 4, "harness": 4, "report": 5, "cli": 6, "__main__": 7, "__init__": 7}
#: Same-level stages that must not import each other.
INDEPENDENT = [("network", "theory"), ("theory", "network"), ("export", "harness"), ("harness", "export")]


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield "symmft." + ".".join(parts), path


def _imports(name: str, path: Path) -> set[str]:
    """Every symmft module ``path`` imports (``from symmft.a import b`` counts ``symmft.a`` and, where ``b`` is a
    module, ``symmft.a.b``)."""
    known = {m for m, _ in _modules()}
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("symmft")}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import (the layering test reads absolute ones)"
            if node.module and node.module.startswith("symmft"):
                out.add(node.module)
                out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    out.discard(name)
    return {m for m in out if m in known}


def _stage(module: str) -> str:
    return module.split(".")[1] if module != "symmft" else "__init__"


GRAPH = nx.DiGraph((m, i) for m, p in _modules() for i in _imports(m, p))


@pytest.mark.parametrize("module,path", list(_modules()), ids=[m for m, _ in _modules()])
def test_module_imports_only_its_own_and_lower_stages(module, path):
    stage = _stage(module)
    for imported in _imports(module, path):
        other = _stage(imported)
        if module == "symmft" or other == stage:
            continue
        assert LEVEL[other] <= LEVEL[stage], f"{module} (stage {stage}) imports the higher stage {imported}"
        assert (stage, other) not in INDEPENDENT, f"{module} imports {imported}: {stage} stays independent of {other}"


def test_every_stage_is_in_the_table():
    assert {_stage(m) for m, _ in _modules()} <= set(LEVEL)


def test_no_import_cycles_between_modules():
    # The package facade (symmft/__init__, lazy re-exports) and subpackage facades are edges of convenience only.
    graph = GRAPH.copy()
    graph.remove_nodes_from([n for n in list(graph) if n == "symmft" or (ROOT / Path(*n.split(".")[1:]) / "__init__.py").exists()])
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles}"


def test_the_finite_network_never_loads_the_theory():
    reachable = nx.descendants(GRAPH, "symmft.network.simulate") | nx.descendants(GRAPH, "symmft.network.spectrum")
    assert not {m for m in reachable if _stage(m) == "theory"}


def test_pyproject_lists_every_package():
    # the wheel is built from the explicit list (symmft.cells maps to the top-level cells/): a new stage package
    # missing from it would be missing from every user's install
    import tomllib

    listed = set(tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {"symmft." + ".".join(p.parent.relative_to(ROOT).parts) if p.parent != ROOT else "symmft"
            for p in ROOT.rglob("__init__.py") if "__pycache__" not in p.parts}
    assert tree | {"symmft.cells"} == listed


@pytest.mark.parametrize("module", ["symmft.init.rule", "symmft.export.spec", "symmft.export.torch"])
def test_reading_and_exporting_a_rule_does_not_load_the_theory(module):
    import subprocess
    import sys

    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith('symmft.theory')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"{module} loads {loaded}"
