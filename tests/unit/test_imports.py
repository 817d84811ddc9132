"""The import graph of ``lime_spark``: no cycles, and pyspark only under ``lime_spark/spark/``.

Every module under ``lime_spark/`` (whatever exists when the test runs) is read
with :mod:`ast`; every ``import`` and ``from ... import`` in it counts, at module
level or inside a function (a function-level import hides a cycle from Python
until the function runs, not from this test), relative imports resolved
against the module's package.

What counts as an edge from module ``m``:

* ``import a.b.c`` and ``from a.b.c import x``: ``m -> a.b.c`` (the deepest
  lime_spark module named); ``from a.b import c`` where ``a.b.c`` is a module:
  ``m -> a.b.c``, otherwise ``m -> a.b`` (a name read from the package
  ``__init__``).
* Python runs every enclosing package's ``__init__`` before the module itself,
  so ``m -> a.b`` (the package) is added too, for every package the import
  goes through, except the packages that contain ``m``.  Those have already
  started importing when ``m`` runs (that is how ``m`` got imported), so
  passing through them again runs nothing: an ``__init__`` that re-exports its
  submodules (``lime_spark/__init__.py``, ``lime_spark/spark/__init__.py``,
  ``lime_spark/models/__init__.py``) is not a cycle with them.  A submodule
  that reads a *name* from its own half-initialised package (``from . import
  Classifier``, ``from .. import ImageExplainer``) is an edge to that
  ``__init__`` and so a cycle with the re-export: import from the defining
  module instead.

``if TYPE_CHECKING:`` blocks would be counted as well; keep them free of
cycles too, or teach this test about them.

The same walk checks convention 2: only ``lime_spark/spark/`` imports pyspark
(or py4j, its JVM bridge), at any level, so the core stays usable without it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "lime_spark"
ROOT = Path(__file__).resolve().parents[2] / PACKAGE
SPARK_PACKAGE = f"{PACKAGE}.spark"
SPARK_ONLY = ("pyspark", "py4j")    # the JVM bridge comes with pyspark and needs it


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package beats a same-named .py,
    as it does for Python)."""
    found = {}
    for path in sorted(ROOT.rglob("*.py")):
        if "__pycache__" in path.parts or (path.with_suffix("") / "__init__.py").is_file():
            continue
        found[_module_name(path)] = path
    return found


def _package_of(name: str, path: Path) -> str:
    """The package a module's relative imports start from."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str, path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import statement in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    type_only = {id(inner) for node in ast.walk(tree) if _is_type_checking_block(node)
                 for inner in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package_of(name, path).split(".")
                if node.level > 1:
                    base = base[:-(node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target, [alias.name for alias in node.names]))
    return found


def _is_type_checking_block(node: ast.AST) -> bool:
    """``if TYPE_CHECKING:``: imports for type checkers only, never run."""
    if not isinstance(node, ast.If):
        return False
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _ancestors(name: str) -> list[str]:
    """``a.b.c`` -> ``["a", "a.b"]``."""
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def _edges(name: str, path: Path, modules: dict[str, Path]) -> dict[str, int]:
    """Module -> line of the first import making ``name`` depend on it (see the docstring)."""
    own_packages = set(_ancestors(name))
    edges: dict[str, int] = {}
    for line, target, names in _imports(name, path):
        if target != PACKAGE and not target.startswith(PACKAGE + "."):
            continue
        submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
        reached = list(submodules)
        if not names or len(submodules) < len(names):
            # ``import target`` or a name read from target: the deepest real module named
            module = target
            while module not in modules and "." in module:
                module = module.rpartition(".")[0]
            reached.append(module)
        for module in reached:
            for dep in [*_ancestors(module), module]:
                passing_through = dep != module
                if dep == name or passing_through and dep in own_packages:
                    continue
                edges.setdefault(dep, line)
    return edges


def _graph() -> dict[str, dict[str, int]]:
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def _tangles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components that hold a cycle (Tarjan), members sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph.get(node, {}):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in graph.get(node, {}):
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle per tangle, as a path that ends where it starts."""
    return [_cycle_in(component, graph) for component in _tangles(graph)]


def _cycle_in(component: list[str], graph: dict[str, dict[str, int]]) -> list[str]:
    """A shortest cycle through the first member of a strongly connected component."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for dep in sorted(graph[node]):
            if dep == start:
                path = [node]
                while path[-1] != start:
                    path.append(parents[path[-1]])
                return [*reversed(path), start]
            if dep in members and dep not in parents:
                parents[dep] = node
                queue.append(dep)
    return component


def _describe(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    """A cycle of a tangle step by step, then every other import among its modules."""
    cycle = _cycle_in(component, graph)
    steps = list(zip(cycle, cycle[1:]))
    others = [(a, b) for a in component for b in sorted(graph[a])
              if b in component and (a, b) not in steps]
    lines = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in steps]
    lines += [f"and {a} (line {graph[a][b]}) -> {b}" for a, b in others]
    return "\n    ".join(lines)


# --- the checker itself, on small graphs -------------------------------------------------------

def test_find_cycles_reports_each_cycle_once_as_a_path():
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3, "d": 4}, "d": {}, "e": {"e": 5}}
    cycles = _find_cycles(graph)
    assert sorted(map(tuple, cycles)) == [("a", "b", "c", "a"), ("e", "e")]
    assert _describe(["a", "b", "c"], graph).splitlines() == [
        "a (line 1) -> b", "    b (line 2) -> c", "    c (line 3) -> a"]
    assert _find_cycles({"a": {"b": 1}, "b": {}}) == []


def _write_package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_relative_imports_resolve_and_reexports_are_not_cycles(tmp_path, monkeypatch):
    root = tmp_path / PACKAGE
    _write_package(root, {
        "__init__.py": "from .a import f\n",
        "a.py": "def f():\n    from .sub.b import g\n",
        "sub/__init__.py": "from .b import g\nfrom .c import h\n",
        "sub/b.py": "from . import c\nfrom ..d import x\n",
        "sub/c.py": "import lime_spark.d\n",
        "d.py": "import os\n",
    })
    monkeypatch.setattr(f"{__name__}.ROOT", root)
    p = PACKAGE
    graph = _graph()
    assert graph[p] == {f"{p}.a": 1}
    assert graph[f"{p}.a"] == {f"{p}.sub": 2, f"{p}.sub.b": 2}    # sub's __init__ runs first
    assert graph[f"{p}.sub"] == {f"{p}.sub.b": 1, f"{p}.sub.c": 2}
    assert graph[f"{p}.sub.b"] == {f"{p}.sub.c": 1, f"{p}.d": 2}   # not its own package
    assert graph[f"{p}.sub.c"] == {f"{p}.d": 1}
    assert _find_cycles(graph) == []


def test_names_read_from_the_own_package_and_late_imports_make_cycles(tmp_path, monkeypatch):
    root = tmp_path / PACKAGE
    _write_package(root, {
        "__init__.py": "",
        "sub/__init__.py": "from .b import g\n",
        "sub/b.py": "def g():\n    from . import h\n",   # h is no module: sub's half-built __init__
        "top.py": "from .low import f\n",
        "low.py": "def f():\n    from .top import x\n",  # hidden from Python until f runs
        "spark/__init__.py": "import pyspark\n",
        "core.py": "def f():\n    from pyspark.sql import functions\n",
    })
    monkeypatch.setattr(f"{__name__}.ROOT", root)
    p = PACKAGE
    graph = _graph()
    assert graph[f"{p}.sub.b"] == {f"{p}.sub": 2}
    assert sorted(_find_cycles(graph)) == [[f"{p}.low", f"{p}.top", f"{p}.low"],
                                           [f"{p}.sub", f"{p}.sub.b", f"{p}.sub"]]
    assert _pyspark_outside_spark() == [f"{p}/core.py:2 imports pyspark.sql"]


# --- the package --------------------------------------------------------------------------------

def test_the_package_has_modules_to_check():
    modules = _modules()
    assert {PACKAGE, f"{PACKAGE}.cli", SPARK_PACKAGE} <= set(modules)


def test_no_import_cycles_between_lime_spark_modules():
    graph = _graph()
    tangles = _tangles(graph)
    if tangles:
        pytest.fail("import cycles in lime_spark (move the shared code down into a module both "
                    "can import):\n  " + "\n  ".join(_describe(t, graph) for t in tangles))


def _pyspark_outside_spark() -> list[str]:
    """``path:line imports module`` for every pyspark (or py4j) import outside lime_spark/spark/."""
    offenders = []
    for name, path in _modules().items():
        if name == SPARK_PACKAGE or name.startswith(SPARK_PACKAGE + "."):
            continue
        for line, target, _ in _imports(name, path):
            if target.split(".")[0] in SPARK_ONLY:
                where = path.relative_to(ROOT.parent).as_posix()
                offenders.append(f"{where}:{line} imports {target}")
    return offenders


def test_only_lime_spark_spark_imports_pyspark():
    offenders = _pyspark_outside_spark()
    assert not offenders, "only lime_spark/spark/ may import pyspark:\n" + "\n".join(offenders)
