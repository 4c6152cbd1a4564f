"""The package layout: every module imports, the import graph (module-level and lazy imports
alike, read from the source) has no circle, and the rooms keep their walls: the library imports
neither the command line nor the batch job (nor argparse or Ray), and the batch job takes only
the shared option groups from the command line."""
from __future__ import annotations

import ast
import importlib
import os
import pkgutil

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("sogs_core", "sogs_cli", "ray_jobs")
#: modules that need a GPU-only package to import (they are chosen at run time, never required)
GPU_ONLY = {"sogs_core.order.chain_triton": "triton", "sogs_core.order.plas_cuda": "cupy",
            "sogs_core.quantize.palette.triton_search": "triton", "sogs_core.render.raster_tiles": "triton"}


def _modules() -> dict[str, str]:
    """Dotted module name -> source path, for every module of the three packages."""
    found = {}
    for pkg in PACKAGES:
        for base, _, names in os.walk(os.path.join(ROOT, pkg)):
            for name in names:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(base, name), ROOT)[:-3].replace(os.sep, ".")
                    found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(base, name)
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of ours it imports anywhere in its source (a `from A import B` where
    A.B is a module counts as importing A.B; a package's own name counts as its __init__)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.endswith("__init__.py")
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    parts = parts[: len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for t in targets:
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != mod:
                    graph[mod].add(t)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_library_stays_out_of_the_shells():
    for mod, deps in import_graph().items():
        if mod.startswith("sogs_core"):
            assert not {d for d in deps if d.startswith(("sogs_cli", "ray_jobs"))}, mod
        if mod.startswith("ray_jobs"):
            assert {d for d in deps if d.startswith("sogs_cli")} <= {"sogs_cli.options"}, mod
    for mod, path in _modules().items():
        if mod.startswith("sogs_core"):
            with open(path) as f:
                tree = ast.parse(f.read())
            names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
            assert not names & {"argparse", "ray"}, mod


@pytest.mark.parametrize("module", sorted(m for m in _modules() if not m.endswith("__main__")))
def test_every_module_imports(module):
    needs = GPU_ONLY.get(module)
    if needs is not None and importlib.util.find_spec(needs) is None:
        pytest.skip(f"needs {needs}")
    importlib.import_module(module)


def test_walk_agrees_with_pkgutil():
    """The source walk sees the modules Python's own package walk sees."""
    seen = set()
    for pkg in PACKAGES:
        m = importlib.import_module(pkg)
        seen |= {pkg} | {i.name for i in pkgutil.walk_packages(m.__path__, pkg + ".", onerror=lambda _: None)
                         if i.name not in GPU_ONLY}
    assert seen <= set(_modules())
