"""The data layer's imports flow one way: loaders on top, no cycles, no private names across modules.

Every import counts, inside functions too (only ``if TYPE_CHECKING:`` blocks are skipped).
"""

from __future__ import annotations

import ast
from pathlib import Path

import rechash.data

DATA = Path(rechash.data.__file__).parent
PKG = "rechash.data"


def _imports(path: Path) -> list[tuple[str, str]]:
    """``(module, name)`` of every ``rechash.data`` import in a file (name "" for ``import m``)."""
    out: list[tuple[str, str]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, "") for a in child.names if a.name.startswith(PKG + "."))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: from . import x / from .x import y
                    base = PKG + ("." + base if base else "")
                if base == PKG:  # from rechash.data import loaders
                    out.extend((f"{PKG}.{a.name}", "") for a in child.names if (DATA / f"{a.name}.py").is_file())
                elif base.startswith(PKG + "."):
                    out.extend((base, a.name) for a in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return out


def _graph() -> dict[str, dict[str, list[str]]]:
    return {
        f"{PKG}.{p.stem}": {m: [n for mm, n in imps if mm == m] for m in {mm for mm, _ in imps}}
        for p in sorted(DATA.glob("*.py"))
        if p.stem != "__init__"
        for imps in [_imports(p)]
    }


def test_loaders_is_the_top_of_the_data_layer():
    importers = [m for m, deps in _graph().items() if f"{PKG}.loaders" in deps]
    assert importers == []


def test_no_private_names_imported_across_data_modules():
    private = {
        (m, dep, n) for m, deps in _graph().items() for dep, names in deps.items() for n in names if n.startswith("_")
    }
    assert private == set()


def test_no_import_cycles_in_the_data_layer():
    graph = {m: {d for d in deps if d in _graph()} for m, deps in _graph().items()}
    done: set[str] = set()

    def visit(m: str, path: tuple[str, ...]) -> None:
        assert m not in path, f"import cycle: {' -> '.join(path[path.index(m) :] + (m,))}"
        if m in done:
            return
        for dep in sorted(graph[m]):
            visit(dep, path + (m,))
        done.add(m)

    for m in sorted(graph):
        visit(m, ())


def test_public_names_kept_where_they_were():
    from rechash.data import files, loaders, splits, tables, writers

    assert rechash.data.save is loaders.save is writers.save
    assert loaders.detect_format is files.detect_format and loaders.read_frame is files.read_frame
    assert loaders.FORMATS is files.FORMATS and splits.SPLIT_NAMES is files.SPLIT_NAMES
    assert loaders.TIMESTAMP_UNITS is tables.TIMESTAMP_UNITS and loaders.ALIASES is tables.ALIASES
    assert loaders.ROLES is tables.ROLES
