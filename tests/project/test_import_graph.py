"""The import graph flows one way (DESIGN.md), imports inside functions included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "rechash"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """rechash modules ``name`` imports anywhere (TYPE_CHECKING blocks excepted)."""
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names if a.name.startswith("rechash"))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                if base.startswith("rechash"):
                    for a in child.names:
                        full = f"{base}.{a.name}"
                        out.add(full if full in modules else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in out if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


#: packages bottom to top (README, Architecture): a module imports only from its own package
#: or from a lower layer; the foundation modules are importable by everyone
LAYERS = [
    {"rechash", "rechash.errors", "rechash.columns", "rechash.threads", "rechash._numba_cache", "rechash._moved"},
    {"rechash.io"},
    {"rechash.data"},
    {"rechash.codes", "rechash.rank"},
    {"rechash.index"},
    {"rechash.als", "rechash.rerank"},
    {"rechash.hasher"},
    {"rechash.models"},
    {"rechash.jobs"},
    {"rechash.evaluation"},
    {"rechash.cli"},
    {"rechash.__main__"},
]


def _package(module: str) -> str:
    parts = module.split(".")
    return module if len(parts) == 1 or module in LAYERS[0] | LAYERS[-1] else ".".join(parts[:2])


def _layer(module: str) -> int:
    package = _package(module)
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def test_every_module_has_a_layer() -> None:
    assert not [m for m in _graph() if not any(_package(m) in layer for layer in LAYERS)]


def test_packages_import_downwards() -> None:
    """No package imports a package above it or beside it (the data flow runs one way)."""
    bad = []
    for mod, deps in _graph().items():
        for dep in deps:
            same = _package(dep) == _package(mod)
            if not same and _layer(dep) != 0 and _layer(dep) >= _layer(mod):
                bad.append(f"{mod} -> {dep}")
    assert not bad, bad


def _private_imports() -> list[str]:
    """``from rechash.x import _name`` of a private name from another module, and private
    modules (``_kernels``) imported from outside their package."""
    out = []
    for name, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or node.level or not (node.module or "").startswith("rechash"):
                continue
            package = name.rpartition(".")[0] if path.name != "__init__.py" else name
            parts = node.module.split(".")
            private = next((i for i, part in enumerate(parts) if part.startswith("_")), None)
            owner = (
                ".".join(parts[:private]) if private is not None else None
            )  # rechash.data owns rechash.data._kernels
            if owner is not None and not (name == owner or name.startswith(owner + ".")):
                out.append(f"{name} imports private module {node.module}")
            out += [
                f"{name} imports {node.module}.{a.name}"
                for a in node.names
                if a.name.startswith("_")
                and not a.name.startswith("__")
                and not (
                    f"{node.module}.{a.name}".startswith(package + ".") and f"{node.module}.{a.name}" in _modules()
                )
            ]
    return out


def test_no_private_cross_module_imports() -> None:
    assert _private_imports() == []


def test_the_model_sits_above_its_persistence() -> None:
    graph = _graph()
    assert graph["rechash.hasher.persistence"] <= {m for m in graph if _layer(m) < _layer("rechash.hasher")}
    assert graph["rechash.models.persistence"] - {"rechash.models.base"} <= {
        m for m in graph if _layer(m) < _layer("rechash.models")
    }
