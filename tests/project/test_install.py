"""A light install: ``import rechash`` is cheap, numba caches outside the package, and
pyproject.toml declares every third-party package rechash imports."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import rechash
from rechash import _numba_cache

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rechash"

# import name -> distribution name, where they differ
DIST_OF = {
    "sklearn": "scikit-learn",
    "faiss": "faiss-cpu",
    "yaml": "pyyaml",
    "PIL": "pillow",
    "dateutil": "python-dateutil",
    "cv2": "opencv-python",
    "attr": "attrs",
}

HEAVY = ("torch", "numba", "implicit", "sklearn", "annoy", "matplotlib", "pandas")


def _run(code: str, env: dict[str, str] | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
        cwd=ROOT,
        timeout=300,
    )
    return out.stdout.strip()


# --- import rechash is light -------------------------------------------------------------


def test_import_rechash_imports_no_heavy_package() -> None:
    loaded = json.loads(
        _run(f"import sys, json, rechash; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))")
    )
    assert loaded == []


def test_every_public_name_resolves_lazily() -> None:
    assert len(set(rechash.__all__)) == len(rechash.__all__)
    assert set(rechash.__all__) <= set(dir(rechash))
    for name in rechash.__all__:
        namespace: dict = {}
        exec(f"from rechash import {name}", namespace)  # noqa: S102 - the statement under test
        assert namespace[name] is getattr(rechash, name), name
    with pytest.raises(AttributeError):
        rechash.no_such_name  # noqa: B018


def test_public_names_are_not_shadowed_by_submodules() -> None:
    """A public name that were also a submodule's name would become that submodule as soon
    as the submodule is imported: there is none."""
    clashes = {
        name
        for name in rechash.__all__
        if (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists()
    }
    assert not clashes
    for name in set(rechash.__all__) - clashes - {"__version__"}:
        assert not isinstance(getattr(rechash, name), type(sys)), name


# --- numba's cache directory -------------------------------------------------------------


@pytest.fixture
def cache_env(monkeypatch, tmp_path):
    """A clean environment for _numba_cache.configure(), restored afterwards (numba's
    already loaded config included)."""
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")  # empty counts as unset, as for numba
    for var in ("RECHASH_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = sys.modules.get("numba.core.config")
    if config is not None:
        monkeypatch.setattr(config, "CACHE_DIR", config.CACHE_DIR)
    return tmp_path


def test_numba_cache_dir_set_by_the_user_is_left_alone(cache_env, monkeypatch) -> None:
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache_env / "mine"))
    monkeypatch.setenv("RECHASH_CACHE_DIR", str(cache_env / "rechash"))
    assert _numba_cache.configure() is None
    assert os.environ["NUMBA_CACHE_DIR"] == str(cache_env / "mine")
    assert not (cache_env / "rechash").exists()


def test_numba_cache_dir_defaults_under_the_user_cache(cache_env) -> None:
    expected = cache_env / "home" / ".cache" / "rechash" / "numba"
    assert _numba_cache.configure() == str(expected)
    assert os.environ["NUMBA_CACHE_DIR"] == str(expected)
    assert expected.is_dir()
    config = sys.modules.get("numba.core.config")
    if config is not None:
        assert config.CACHE_DIR == str(expected)


def test_numba_cache_dir_follows_xdg_and_rechash_cache_dir(cache_env, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    assert _numba_cache.default_cache_dir() == str(cache_env / "home" / ".cache" / "rechash" / "numba")
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache_env / "xdg"))
    assert _numba_cache.configure() == str(cache_env / "xdg" / "rechash" / "numba")
    monkeypatch.setenv("NUMBA_CACHE_DIR", "")
    monkeypatch.setenv("RECHASH_CACHE_DIR", str(cache_env / "explicit"))
    assert _numba_cache.configure() == str(cache_env / "explicit")
    assert os.environ["NUMBA_CACHE_DIR"] == str(cache_env / "explicit")


def test_unwritable_cache_dir_falls_back_to_a_private_temp_dir(cache_env, monkeypatch) -> None:
    import tempfile

    blocker = cache_env / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RECHASH_CACHE_DIR", str(blocker / "numba"))  # cannot be created
    monkeypatch.setattr(tempfile, "tempdir", str(cache_env / "tmp"))
    (cache_env / "tmp").mkdir()
    path = _numba_cache.configure()
    assert path is not None and Path(path).parent == cache_env / "tmp"
    assert Path(path).name.startswith("rechash-numba-")
    assert os.environ["NUMBA_CACHE_DIR"] == path
    if hasattr(os, "getuid"):
        assert Path(path).stat().st_uid == os.getuid()


def test_numba_kernels_cache_into_the_user_cache_not_the_package(tmp_path) -> None:
    env = {"NUMBA_CACHE_DIR": "", "RECHASH_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    code = (
        "import numpy as np\n"
        "from rechash.data._kernels import parse_int_lines\n"
        "print(parse_int_lines._cache._cache_path)\n"
        "print(parse_int_lines(np.frombuffer(b'1 2\\n3 4\\n', np.uint8))[2])\n"
    )
    cache_path, n = _run(code, env).splitlines()
    assert n == "4"
    assert Path(cache_path).is_relative_to(tmp_path / "cache")
    assert list((tmp_path / "cache").rglob("*parse_int_lines*.nbi"))


def test_numba_imported_first_still_gets_the_cache_dir(tmp_path) -> None:
    env = {"NUMBA_CACHE_DIR": "", "RECHASH_CACHE_DIR": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    out = _run("import numba.core.config as c, rechash; print(c.CACHE_DIR)", env)
    assert out == str(tmp_path / "cache")


# --- pyproject.toml declares what rechash imports ----------------------------------------


def _norm(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


def _req_name(req: str) -> str:
    return _norm(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", req).group(1))


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_req_name(r) for r in project["dependencies"]}
    raw = project.get("optional-dependencies", {})

    def extra(name: str, seen: frozenset = frozenset()) -> set[str]:
        out: set[str] = set()
        for req in raw[name]:
            m = re.match(r"\s*rechash\[([^\]]*)\]", req)
            if m:
                for sub in m.group(1).split(","):
                    if sub.strip() not in seen:
                        out |= extra(sub.strip(), seen | {name})
            else:
                out.add(_req_name(req))
        return out

    return core, {name: extra(name) for name in raw}


def _imports() -> tuple[dict[str, set[str]], dict[str, set[str]], list[tuple[str, str, str]]]:
    """(module-scope imports, all imports, require(module, extra) calls), top-level names of
    third-party modules -> files."""
    module_scope: dict[str, set[str]] = {}
    anywhere: dict[str, set[str]] = {}
    required: list[tuple[str, str, str]] = []
    skip = set(sys.stdlib_module_names) | {"rechash", "__future__"}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(), filename=rel)
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "require"
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args[:2])
            ):
                required.append((node.args[0].value, node.args[1].value, rel))
            for name in names:
                top = name.split(".")[0]
                if top in skip:
                    continue
                anywhere.setdefault(top, set()).add(rel)
                if id(node) in top_level:  # module scope, not inside a function or a try
                    module_scope.setdefault(top, set()).add(rel)
    return module_scope, anywhere, required


def test_pyproject_declares_every_imported_package() -> None:
    core, extras = _declared()
    every = core.union(*extras.values())
    module_scope, anywhere, required = _imports()
    assert "numpy" in anywhere and "torch" in anywhere  # the scan sees the package
    undeclared = {m: sorted(f) for m, f in anywhere.items() if _norm(DIST_OF.get(m, m)) not in every}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
    not_core = {m: sorted(f) for m, f in module_scope.items() if _norm(DIST_OF.get(m, m)) not in core}
    assert not not_core, f"imported at module scope but not a core dependency: {not_core}"
    for module, extra, where in required:
        assert extra in extras, f"{where}: require({module!r}, {extra!r}): no extra {extra!r}"
        dist = _norm(DIST_OF.get(module.split(".")[0], module.split(".")[0]))
        assert dist in extras[extra] | core, f"{where}: extra {extra!r} does not install {dist}"


def test_default_stack_is_core_and_extras_stay_extras() -> None:
    core, extras = _declared()
    assert {"implicit", "scikit-learn", "threadpoolctl", "torch", "numba"} <= core
    assert not {"annoy", "matplotlib", "faiss-cpu", "pyspark"} & core
    assert {"annoy", "matplotlib", "faiss-cpu"} <= extras["all"]
    assert set().union(*(v for k, v in extras.items() if k != "dev")) <= extras["dev"]


def test_torch_is_a_range_and_the_constraints_pin_the_cpu_wheel() -> None:
    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch = [d for d in deps if _req_name(d) == "torch"]
    assert torch and "==" not in torch[0] and ">=" in torch[0]
    pins = [ln.strip() for ln in (ROOT / "constraints.txt").read_text().splitlines() if not ln.startswith("#")]
    assert "torch==2.13.0" in pins
    assert "-c constraints.txt" in (ROOT / ".ci" / "run").read_text()
