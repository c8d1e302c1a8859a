"""No import circle through the store, the trainers or data parallelism: every ``import`` of
the package's modules is read from the source (function-level ones included, which a circle can
hide behind) and the module graph is searched for strongly connected components."""

import ast
from pathlib import Path

import batchlab

ROOT = Path(batchlab.__file__).parent
CHECKED = ("batchlab.store", "batchlab.training", "batchlab.distributed", "batchlab.commands", "batchlab.cli")


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _targets(module: str, node: ast.AST, is_package: bool, modules) -> list[str]:
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join(package + ([base] if base else []))
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    resolved = []
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name.startswith("batchlab") and name != module:
            resolved.append(name)
    return resolved


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for module, (path, is_package) in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
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


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circle_through_the_store_trainers_or_data_parallelism():
    circles = [c for c in cycles(import_graph()) if any(m.startswith(CHECKED) for m in c)]
    assert circles == []


def test_the_torchrun_entry_uses_no_private_name_of_another_package():
    source = (ROOT / "distributed" / "__main__.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        module = (node.module or "") if isinstance(node, ast.ImportFrom) else ""
        if module.startswith("batchlab.") and not module.startswith("batchlab.distributed"):
            assert not any(alias.name.startswith("_") for alias in node.names), module
            assert not any(part.startswith("_") for part in module.split(".")), module
