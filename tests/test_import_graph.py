"""The import graph flows one way (DESIGN.md), imports inside functions included."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rechash"


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


def _reaches(graph, prefix: str) -> dict[str, set[str]]:
    return {m: {d for d in deps if d == prefix or d.startswith(prefix + ".")} for m, deps in graph.items()}


def test_layers() -> None:
    graph = _graph()
    # baselines: data, the contract, the ranking oracle; tuning on valid reads the metrics leaf module
    allowed_for_baselines = ("rechash.baselines", "rechash.data", "rechash.errors", "rechash.columns", "rechash.ranking",
                             "rechash.recommender", "rechash.threads", "rechash.evaluation.metrics")
    for mod, deps in graph.items():
        if mod.startswith("rechash.baselines"):
            bad = {d for d in deps if not d.startswith(allowed_for_baselines)}
            assert not bad, f"{mod} imports {bad}: baselines depend on data and the recommender contract only"
    assert not {d for d in graph["rechash.artifacts"] if d.startswith("rechash.model")}, "the model sits above its persistence"
    evaluation = {d for d in graph["rechash.model.trainer"] if d.startswith("rechash.evaluation")}
    assert evaluation <= {"rechash.evaluation.metrics"}, f"the trainer imports only metrics, got {evaluation}"
    assert not {d for d in graph["rechash.recommender"] if d.startswith(("rechash.recommend", "rechash.model", "rechash.index"))} - {"rechash.recommender"}
    for mod, deps in graph.items():
        if mod.startswith("rechash.data"):
            assert not {d for d in deps if not d.startswith(("rechash.data", "rechash.errors", "rechash.columns", "rechash.atomic", "rechash.threads"))}, mod
