"""No import circles inside the ``syncd`` package.

The import graph is read from the source with :mod:`ast` (nothing is imported): an edge for every
``import`` and ``from ... import`` of a ``syncd`` module, wherever it is: at the top of a module,
inside a function (a deferred import still ties the two modules together) or under
``if TYPE_CHECKING:`` (a module that needs another's types depends on it just the same; the
``api`` ⇄ ``service`` circle of issue 21 ran through one). A circle is a strongly connected
component of more than one module; each one found is reported with the imports that make it up.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import syncd

PACKAGE = Path(syncd.__file__).resolve().parent

#: import edges known to close a circle, being removed elsewhere (importer, imported). An entry
#: whose import is gone fails the test too, so that it is deleted here.
KNOWN: set[tuple[str, str]] = set()


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The ``syncd`` modules that module ``name`` (at ``path``) imports."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if submodule in known:
                    found.add(submodule)  # `from syncd.testing import memory`: the module
                elif source in known:
                    found.add(source)
    found.discard(name)
    return found


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    found = modules(root)
    names = set(found)
    return {name: imports_of(name, path, names) for name, path in found.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    result: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(sorted(component))
    return sorted(result)


def describe(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "circle: " + ", ".join(edges)


def test_the_syncd_package_has_no_import_circles() -> None:
    graph = import_graph()
    stale = sorted(f"{a} -> {b}" for a, b in KNOWN if b not in graph.get(a, set()))
    assert not stale, f"no longer imported, delete from KNOWN: {stale}"
    for importer, imported in KNOWN:
        graph[importer].discard(imported)
    found = [describe(component, graph) for component in circles(graph)]
    assert not found, "\n".join(found)


def test_the_checker_finds_a_circle_through_a_deferred_import(tmp_path: Path) -> None:
    """The checker itself: circles made by an import inside a function and by one under
    ``if TYPE_CHECKING:`` are found; relative imports and submodules resolve."""
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import thing\n")
    (package / "b.py").write_text("def thing():\n    from pkg import a\n    return a\n")
    (package / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.d import x\n"
    )
    (package / "d.py").write_text("from . import c\n")
    (package / "sub" / "e.py").write_text("from ..sub import f\n")
    (package / "sub" / "f.py").write_text("import pkg.sub.e\n")
    graph = import_graph(package)
    assert graph["pkg.c"] == {"pkg.d"} and graph["pkg.d"] == {"pkg.c"}
    assert graph["pkg.sub.e"] == {"pkg.sub.f"} and graph["pkg.sub.f"] == {"pkg.sub.e"}
    assert circles(graph) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"], ["pkg.sub.e", "pkg.sub.f"]]
    (package / "b.py").write_text("def thing():\n    return 1\n")
    assert circles(import_graph(package)) == [["pkg.c", "pkg.d"], ["pkg.sub.e", "pkg.sub.f"]]


def test_connector_code_still_imports_the_typed_failures_from_syncd_connector() -> None:
    import syncd.connector
    import syncd.failures

    for name in syncd.failures.__all__:
        assert getattr(syncd.connector, name) is getattr(syncd.failures, name)
        assert name in syncd.connector.__all__
