"""The floors hold, read from the code's own imports (every `import`, at the
top of a module or inside a function): `core` imports no app of this project;
each app imports only its own floor and the floors below (two apps on one
floor, one way only); and no module of
the project imports itself around a circle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The floor of each package (DESIGN.md's shape, STYLE.md's floors).
FLOORS = {
    "core": 0,
    "tenants": 1,
    "audit": 2,
    "accounts": 3,
    "licenses": 3,
    "webhooks": 3,
    "analytics": 4,
    "billing": 4,
    "coditect": 5,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in FLOORS:
        for path in (ROOT / package).rglob("*.py"):
            relative = path.relative_to(ROOT).parts
            if "tests" in relative or "migrations" in relative:
                continue
            found[_module_name(path)] = path
    return found


def _imports(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports (a `from package import name` that
    names a submodule counts as importing that submodule)."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
    return targets


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {module: _imports(path, module, modules) for module, path in modules.items()}


def _package(module: str) -> str:
    return module.split(".")[0]


def test_the_scan_sees_the_project():
    graph = _graph()
    assert {"core.errors", "tenants.scope", "licenses.leases", "coditect.settings"} <= set(graph)
    assert "tenants.scope" in graph["licenses.leases"]


def test_core_imports_no_app_of_this_project():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        if _package(module) == "core"
        for target in targets
        if _package(target) != "core"
    )
    assert offenders == []


def test_no_app_imports_an_app_above_it():
    offenders = sorted(
        f"{module} imports {target}"
        for module, targets in _graph().items()
        for target in targets
        if FLOORS[_package(target)] > FLOORS[_package(module)]
    )
    assert offenders == []


def test_apps_on_one_floor_import_each_other_one_way_only():
    between = {
        (_package(module), _package(target))
        for module, targets in _graph().items()
        for target in targets
        if _package(target) != _package(module) and FLOORS[_package(target)] == FLOORS[_package(module)]
    }
    assert sorted(pair for pair in between if pair[::-1] in between) == []


def test_there_is_no_import_circle():
    graph = _graph()
    circles, done, path = [], set(), []
    on_path: dict[str, int] = {}

    def visit(module: str) -> None:
        on_path[module] = len(path)
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if target in on_path:
                circles.append(" -> ".join([*path[on_path[target] :], target]))
            elif target not in done:
                visit(target)
        path.pop()
        del on_path[module]
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module)
    assert circles == []
