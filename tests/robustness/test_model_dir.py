"""Model directory tampering and output paths: a damaged, forged or incomplete model
directory, and an unusable output path for fit/export, fail with one line (exit 2) and
change nothing; a kill -9 while saving leaves the previous model intact."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rechash.errors import ModelError, RechashError

from .robust_helpers import assert_refused, cli, snapshot


def _config(model: Path) -> dict:
    return json.loads((model / "config.json").read_text())


def _set(model: Path, edit) -> None:
    cfg = _config(model)
    edit(cfg)
    (model / "config.json").write_text(json.dumps(cfg))


def _recheck(model: Path, name: str) -> None:
    """Record ``name``'s current size and checksum in config.json (a forged directory)."""
    f = model / name
    _set(
        model,
        lambda c: c["files"].__setitem__(
            name, {"bytes": f.stat().st_size, "sha256": hashlib.sha256(f.read_bytes()).hexdigest()}
        ),
    )


def _seen_shape(model: Path, shape: tuple[int, int]) -> None:
    np.savez(
        model / "seen.npz",
        indptr=np.zeros(shape[0] + 1, np.int64),
        indices=np.zeros(0, np.int32),
        shape=np.array(shape, np.int64),
    )
    _recheck(model, "seen.npz")


def _flip(f: Path) -> None:
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(bytes(data))


def _set_key(key: str, value):
    return lambda m: _set(m, lambda c: c.__setitem__(key, value))


def _set_entry(section: str, key: str, value):
    return lambda m: _set(m, lambda c: c[section].__setitem__(key, value))


TAMPER = {
    "seen deleted": (lambda m: (m / "seen.npz").unlink(), "seen.npz: missing model file"),
    "seen bytes flipped": (lambda m: _flip(m / "seen.npz"), "seen.npz: checksum mismatch"),
    "seen emptied, checksum forged": (lambda m: _seen_shape(m, (0, 0)), "seen.npz: corrupted seen-items matrix"),
    "seen of the wrong shape": (lambda m: _seen_shape(m, (300, 199)), "seen.npz: corrupted seen-items matrix (shape"),
    "seen unrecorded": (
        lambda m: _set(m, lambda c: c["files"].pop("seen.npz")),
        "seen.npz: not recorded in config.json",
    ),
    "params deleted": (lambda m: (m / "params.npz").unlink(), "params.npz: missing model file"),
    "config truncated": (lambda m: (m / "config.json").write_text('{"kind": "Twin'), "config.json: corrupted JSON"),
    "config a list": (lambda m: (m / "config.json").write_text("[1, 2]"), "config.json: not a TwinTowerHasher"),
    "bits a string": (_set_key("bits", "16"), "config.json: bits must be a positive integer"),
    "bits not a multiple of 8": (_set_key("bits", 12), "config.json: bits must be a multiple of 8"),
    "unknown key": (_set_key("evil", 1), "config.json: unknown key 'evil'"),
    "unknown tower option": (_set_entry("towers", "layers", 9), "towers: unknown entry 'layers'"),
    "unknown training option": (_set_entry("training", "warp", 1), "training: unknown entry 'warp'"),
    "tower option of the wrong type": (_set_entry("towers", "hidden", "wide"), "towers: hidden"),
    "huge n_users": (_set_key("n_users", 10**12), "user_ids.parquet: 300 ids, the configuration says 1000000000000"),
    "file path traversal": (
        _set_entry("files", "../../etc/passwd", {"bytes": 1, "sha256": "0"}),
        "files: unknown entry '../../etc/passwd'",
    ),
    "history forged": (_set_key("history", [{"epoch": 1, "shell": "rm"}]), "config.json: history must be"),
}


@pytest.mark.parametrize("case", list(TAMPER))
def test_tampered_model_is_refused(case, model_copy, tmp_path, capsys) -> None:
    tamper, needle = TAMPER[case]
    tamper(model_copy)
    out = tmp_path / "c.parquet"
    out.write_bytes(b"an earlier output")
    before = snapshot(tmp_path)
    status, _, err = cli(["candidates", model_copy, "--out", out, "--no-progress"], capsys)
    assert_refused(status, err, needle, before, snapshot(tmp_path))


def test_model_without_seen_needs_keep_seen(model_copy, tmp_path, capsys) -> None:
    (model_copy / "seen.npz").unlink()
    _set(model_copy, lambda c: c["files"].pop("seen.npz"))
    before = snapshot(tmp_path)
    status, _, err = cli(["candidates", model_copy, "--out", tmp_path / "c.parquet", "--no-progress"], capsys)
    assert_refused(status, err, "stores no training items (seen.npz)", before, snapshot(tmp_path))
    status, out, err = cli(
        ["candidates", model_copy, "--out", tmp_path / "c.parquet", "--no-progress", "--keep-seen"], capsys
    )
    assert status == 0 and "wrote 30,000 candidates for 300 users" in out, err


def test_saved_model_stores_the_training_items(tiny, tiny_dir) -> None:
    from rechash.hasher.twin_tower import TwinTowerHasher

    model, data = tiny
    seen = TwinTowerHasher.load(tiny_dir).seen_
    assert np.array_equal(seen.indptr, data.matrix.indptr) and np.array_equal(seen.indices, data.matrix.indices)
    assert "seen.npz" in _config(tiny_dir)["files"]


def _output(kind: str, tmp_path: Path) -> tuple[Path, str]:
    """An unusable output path of ``kind`` and what the error must name."""
    if kind == "an existing file":
        (tmp_path / "taken").write_text("x")
        return tmp_path / "taken", "taken: exists and is not a directory"
    if kind == "a path under a file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "model", "file is a file, not a directory"
    if kind == "a foreign directory":
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("x")
        return tmp_path / "mine", "holds 'notes.txt', which is not part of a"
    if kind == "a foreign config.json":
        (tmp_path / "hf").mkdir()
        (tmp_path / "hf" / "config.json").write_text('{"model_type": "bert"}')
        return tmp_path / "hf", "holds 'config.json'"
    return Path("/sys/rechash-robustness/model"), "cannot write in /sys"


OUTPUTS = [
    "an existing file",
    "a path under a file",
    "a foreign directory",
    "a foreign config.json",
    "a read-only location",
]


@pytest.mark.parametrize("kind", OUTPUTS)
@pytest.mark.parametrize("command", ["export", "save"])
def test_unusable_output_path_is_refused(command, kind, tiny, tiny_dir, tmp_path, capsys) -> None:
    target, needle = _output(kind, tmp_path)
    before = snapshot(tmp_path, tiny_dir)
    if command == "export":
        status, _, err = cli(["export", tiny_dir, "--out", target], capsys)
    else:  # what `rechash fit` calls before training (check_output_dir) and when saving
        from rechash.hasher.persistence import check_output_dir

        for call in (check_output_dir, tiny[0].save):
            with pytest.raises(RechashError) as info:
                call(target)
            status, err = 2, f"error: {info.value}\n"
    assert_refused(status, err, needle, before, snapshot(tmp_path, tiny_dir))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_fit_refuses_a_foreign_directory(tmp_path, capsys) -> None:
    (tmp_path / "train.txt").write_text("".join(f"{u} {u % 7} {(u + 3) % 11}\n" for u in range(40)))
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    before = snapshot(tmp_path)
    status, _, err = cli(
        [
            "fit",
            tmp_path / "train.txt",
            "--out",
            tmp_path / "out",
            "--teacher",
            "none",
            "--epochs",
            "1",
            "--bits",
            "16",
            "--no-progress",
        ],
        capsys,
    )
    assert_refused(status, err, "holds 'notes.txt'", before, snapshot(tmp_path))


def test_export_replaces_an_earlier_export(tiny_dir, tmp_path, capsys) -> None:
    out = tmp_path / "exp"
    for _ in range(2):
        status, stdout, err = cli(["export", tiny_dir, "--out", out], capsys)
        assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == [
        "item_codes.npy",
        "item_ids.parquet",
        "user_codes.npy",
        "user_ids.parquet",
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]


def test_index_header_cannot_name_files_outside(tmp_path) -> None:
    from rechash.index import build, load

    path = build(np.zeros((4, 2), np.uint8)).save(tmp_path / "index")
    header = json.loads((path / "index.json").read_text())
    for names in (["../../etc/passwd"], ["/etc/passwd"], [".hidden"], "words"):
        (path / "index.json").write_text(json.dumps({**header, "arrays": names}))
        with pytest.raises(ModelError, match="index.json: .*(not a plain file name|must be a list)") as info:
            load(path)
        assert "\n" not in str(info.value)


def test_kill_while_saving_keeps_the_previous_model(tiny_dir, model_copy, tmp_path) -> None:
    from rechash.hasher.twin_tower import TwinTowerHasher

    before = snapshot(model_copy)
    code = (
        "from rechash.hasher.twin_tower import TwinTowerHasher; "
        f"TwinTowerHasher.load({str(tiny_dir)!r}).save({str(model_copy)!r})"
    )
    env = {**os.environ, "RECHASH_CRASH_AT": "dir:model"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(model_copy) == before
    assert TwinTowerHasher.load(model_copy).seen_ is not None
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "model"]
    assert leftovers and all(n.startswith(".model.") and n.endswith(".tmp") for n in leftovers)
