"""`rechash data split`: a bad output path or option fails with one line (exit 2) and leaves
an earlier split untouched; a new split replaces every file of the old one; a kill -9
while writing leaves the earlier split intact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rechash.data import load_split

from .robust_helpers import ROOT, assert_refused, cli, snapshot


@pytest.fixture
def log(tmp_path) -> Path:
    """An adjacency log of 40 users with 10 items each."""
    path = tmp_path / "log.txt"
    path.write_text("".join(f"{u} " + " ".join(str((u * 7 + k) % 30) for k in range(10)) + "\n" for u in range(40)))
    return path


def _split(log: Path, out: Path, capsys, *options: str) -> tuple[int, str, str]:
    return cli(["data", "split", log, "--out", out, *options], capsys)


def _bad_output(kind: str, tmp_path: Path) -> tuple[Path, str]:
    if kind == "an existing file":
        (tmp_path / "taken.txt").write_text("x")
        return tmp_path / "taken.txt", "taken.txt: exists and is not a directory"
    if kind == "a path under a file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "split", "file is a file, not a directory"
    if kind == "a foreign directory":
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "train.txt").write_text("1 2\n")
        (tmp_path / "mine" / "notes.md").write_text("x")
        return tmp_path / "mine", "holds 'notes.md', which is not part of a rechash split"
    return Path("/sys/rechash-robustness/split"), "cannot write in /sys"


@pytest.mark.parametrize(
    "kind", ["an existing file", "a path under a file", "a foreign directory", "a read-only location"]
)
def test_unusable_output_is_refused(kind, log, tmp_path, capsys) -> None:
    out, needle = _bad_output(kind, tmp_path)
    before = snapshot(tmp_path)
    status, _, err = _split(log, out, capsys)
    assert_refused(status, err, needle, before, snapshot(tmp_path))


OPTIONS = {
    "ratios not numbers": (["--ratios", "abc"], "--ratios: expected numbers"),
    "ratios not summing to 1": (["--ratios", "0.5,0.6"], "summing to 1"),
    "unknown method": (["--method", "shuffle"], "--method: expected random, leave-last or time"),
    "leave-last without timestamps": (["--method", "leave-last"], "needs timestamps"),
    "unknown output format": (["--out-format", "xlsx"], "adjacency or parquet, got 'xlsx'"),
    "missing input": (["--format", "csv"], "nope.csv"),
}


@pytest.mark.parametrize("case", list(OPTIONS))
def test_bad_option_leaves_the_earlier_split(case, log, tmp_path, capsys) -> None:
    out = tmp_path / "split"
    assert _split(log, out, capsys)[0] == 0
    before = snapshot(tmp_path)
    options, needle = OPTIONS[case]
    source = tmp_path / "nope.csv" if case == "missing input" else log
    status, _, err = _split(source, out, capsys, *options)
    assert_refused(status, err, needle, before, snapshot(tmp_path))


def test_resplit_replaces_every_file(log, tmp_path, capsys) -> None:
    out = tmp_path / "split"
    assert _split(log, out, capsys, "--ratios", "0.8,0.1,0.1")[0] == 0
    assert (out / "valid.txt").exists()
    status, stdout, err = _split(log, out, capsys, "--ratios", "0.75,0.25")
    assert status == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["item_ids.parquet", "test.txt", "train.txt", "user_ids.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.txt", "split"]
    assert load_split(out).valid.nnz == 0


def test_kill_while_writing_keeps_the_earlier_split(log, tmp_path, capsys) -> None:
    out = tmp_path / "split"
    assert _split(log, out, capsys)[0] == 0
    before = snapshot(out)
    code = "import sys, rechash.cli.data; from rechash.cli import app; app(args=sys.argv[1:], prog_name='rechash')"
    proc = subprocess.run(
        [sys.executable, "-c", code, "data", "split", str(log), "--out", str(out), "--ratios", "0.5,0.5"],
        cwd=ROOT,
        env={**os.environ, "RECHASH_CRASH_AT": "dir:split"},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")][0].startswith(".split.")
    assert _split(log, out, capsys, "--ratios", "0.5,0.5")[0] == 0
    assert not (out / "valid.txt").exists() and load_split(out).train.nnz + load_split(out).test.nnz == 400
