"""The package's import graph: no circle anywhere, no private name used across packages.

Every ``import`` of every module of ``src/batchlab`` is read from the source — function-level
ones and ``if TYPE_CHECKING:`` ones included, which a circle can hide behind — and the
module-level graph is searched for strongly connected components. An import of a package is an
import of its ``__init__``: ``from batchlab.data import idx`` imports ``batchlab.data`` (whose
``__init__`` runs first and may import the importer back) as well as ``batchlab.data.idx``.

A name or module that starts with one underscore is private to the package that holds it: a
module of another package (its parent and its subpackages included) may not import it, reach
it as an attribute of an imported module, or import a private module at all.
"""

import ast
import functools
from pathlib import Path

import batchlab

ROOT = Path(batchlab.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the package: dotted name → (file, whether it is a package's ``__init__``)."""
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _package_of(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def _imported_paths(module: str, node: ast.AST, is_package: bool) -> list[tuple[str, str]]:
    """(the module named by the statement, the full dotted path of each imported name)."""
    if isinstance(node, ast.Import):
        return [(alias.name, alias.name) for alias in node.names]
    base = node.module or ""
    if node.level:
        package = _package_of(module, is_package).split(".")
        package = package[: len(package) - (node.level - 1)]
        base = ".".join(package + ([base] if base else []))
    return [(base, f"{base}.{alias.name}") for alias in node.names]


def _known(name: str, modules) -> str:
    """The longest prefix of ``name`` that is a module of the package ('' when none is)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name


def _targets(module: str, node: ast.AST, is_package: bool, modules) -> set[str]:
    """The package's modules one import statement imports."""
    targets = set()
    for base, full in _imported_paths(module, node, is_package):
        if isinstance(node, ast.ImportFrom):
            targets.add(_known(base, modules))  # ``from P import x`` runs P (a package's __init__)
        targets.add(_known(full, modules))
    return {target for target in targets if target.startswith("batchlab") and target != module}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, (path, is_package) in modules.items():
        edges = set()
        for node in ast.walk(_tree(path)):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.update(_targets(module, node, is_package, modules))
        graph[module] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def _is_private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def _owner(path: str, modules) -> str | None:
    """The package a dotted path's first private part is private to (None: all parts public)."""
    parts = path.split(".")
    for i, part in enumerate(parts):
        if _is_private(part):
            holder = ".".join(parts[:i])
            if holder in modules and not modules[holder][1]:  # a private name of a plain module
                return holder.rpartition(".")[0]
            return holder  # a private module or subpackage, or a private name of a package's __init__
    return None


def private_uses() -> list[str]:
    """Each use of a private name or module of another package: 'importer: what it uses'."""
    modules = _modules()
    found = []
    for module, (path, is_package) in sorted(modules.items()):
        package = _package_of(module, is_package)
        tree = _tree(path)
        bound: dict[str, str] = {}  # local name → the package's module it is bound to
        used: list[str] = []
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias, (_, full) in zip(node.names, _imported_paths(module, node, is_package)):
                    if not full.startswith("batchlab"):
                        continue
                    used.append(full)
                    if full in modules and (alias.asname or isinstance(node, ast.ImportFrom)):
                        bound[alias.asname or alias.name] = full
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
                used.append(f"{bound[node.value.id]}.{node.attr}")
        for path_used in used:
            owner = _owner(path_used, modules)
            if owner is not None and owner != package:
                found.append(f"{module}: {path_used}")
    return found


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_an_import_of_a_package_is_an_import_of_its_init():
    modules = {"batchlab.p": (None, True), "batchlab.p.a": (None, False), "batchlab.p.b": (None, False)}
    statement = ast.parse("from batchlab.p import b").body[0]
    assert _targets("batchlab.p.a", statement, False, modules) == {"batchlab.p", "batchlab.p.b"}
    relative = ast.parse("from . import b").body[0]
    assert _targets("batchlab.p.a", relative, False, modules) == {"batchlab.p", "batchlab.p.b"}
    function_level = ast.parse("def f():\n    import batchlab.p.b\n")
    assert {t for n in ast.walk(function_level) if isinstance(n, ast.Import)
            for t in _targets("batchlab.p.a", n, False, modules)} == {"batchlab.p.b"}


def test_no_import_circle_in_the_package():
    assert cycles(import_graph()) == []


def test_the_private_name_finder_tells_own_from_foreign():
    modules = {"batchlab.a": (None, True), "batchlab.a.x": (None, False), "batchlab.a._y": (None, False),
               "batchlab.b": (None, True)}
    assert _owner("batchlab.a.x._helper", modules) == "batchlab.a"
    assert _owner("batchlab.a._y.helper", modules) == "batchlab.a"
    assert _owner("batchlab.a._SHARED", modules) == "batchlab.a"
    assert _owner("batchlab.a.x.helper", modules) is None
    assert _owner("batchlab.a.x.__version__", modules) is None


def test_no_private_name_is_used_across_packages():
    assert private_uses() == []
