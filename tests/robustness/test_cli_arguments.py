"""CLI arguments: every usage error of every command is one stderr line naming the option,
exit status 2, no traceback, nothing written."""

from __future__ import annotations

import pytest

from rechash import __version__

from .robust_helpers import assert_refused, cli, cli_process, snapshot

# (argv, what the error line must name); {out} is an existing output directory, {model} a model
CASES = [
    ([], "rechash: Missing command"),
    (["data"], "rechash data: Missing command"),
    (["nosuch"], "No such command 'nosuch'"),
    (["--bogus"], "--bogus: no such option"),
    (["fit"], "rechash fit: TRAIN: missing argument"),
    (["fit", "{model}"], "rechash fit: --out: missing option"),
    (["fit", "{model}", "--out", "{out}", "--bits", "abc"], "--bits: "),
    (["fit", "{model}", "--out", "{out}", "--lr", "fast"], "--lr: "),
    (["fit", "{model}", "--out", "{out}", "--epochs"], "--epochs"),
    (["fit", "{model}", "extra", "--out", "{out}"], "unexpected extra argument"),
    (["fit", "{model}", "--out", "{out}", "--bist", "64"], "--bist: no such option (did you mean"),
    # option ranges are checked before any data is read (the TRAIN path does not even exist)
    (["fit", "missing.txt", "--out", "{out}", "--bits", "8"], "--bits: expected a multiple of 8 from 16 to 256"),
    (["fit", "missing.txt", "--out", "{out}", "--bits", "1024"], "--bits: expected a multiple of 8"),
    (["fit", "missing.txt", "--out", "{out}", "--bits", "60"], "--bits: expected a multiple of 8"),
    (["fit", "missing.txt", "--out", "{out}", "--tau", "0"], "--tau: expected > 0"),
    (["fit", "missing.txt", "--out", "{out}", "--epochs", "-1"], "--epochs: expected > 0"),
    (["fit", "missing.txt", "--out", "{out}", "--batch-size", "0"], "--batch-size: expected > 0"),
    (["fit", "missing.txt", "--out", "{out}", "--lr", "nan"], "--lr: expected a finite number"),
    (["fit", "missing.txt", "--out", "{out}", "--patience", "0"], "--patience: expected > 0"),
    (["fit", "missing.txt", "--out", "{out}", "--max-seconds", "-1"], "--max-seconds: expected > 0"),
    (["fit", "missing.txt", "--out", "{out}", "--lr-schedule", "step"], "--lr-schedule: expected plateau or"),
    (["fit", "missing.txt", "--out", "{out}", "--teacher", "gfcf"], "--teacher: expected auto or none"),
    (["candidates", "{model}"], "rechash candidates: --out: missing option"),
    (["candidates", "{model}", "--out", "{out}", "--k", "1.5"], "--k: "),
    (["candidates", "{model}", "--out", "{out}", "--shard-size", "x"], "--shard-size: "),
    (["candidates", "{model}", "--out", "{out}", "--threads", "-"], "--threads"),
    (["export", "{model}"], "rechash export: --out: missing option"),
    (["compare"], "rechash compare: TRAIN: missing argument"),
    (["demo", "--bits", "sixty-four"], "rechash demo: --bits: "),
    (["data", "stats"], "rechash data stats: PATH: missing argument"),
    (["data", "split", "synthetic"], "rechash data split: --out: missing option"),
    (["data", "split", "synthetic", "--out", "{out}", "--seed", "0.5"], "--seed: "),
    (["data", "split", "synthetic", "--out", "{out}", "--nope"], "--nope: no such option"),
]


@pytest.mark.parametrize("argv, needle", CASES, ids=[" ".join(a) or "bare" for a, _ in CASES])
def test_usage_error_is_one_line(argv, needle, tiny_dir, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "kept.txt").write_text("an earlier output")
    before = snapshot(tmp_path, tiny_dir)
    status, stdout, err = cli([a.format(out=out, model=tiny_dir) for a in argv], capsys)
    assert_refused(status, err, needle, before, snapshot(tmp_path, tiny_dir))


def test_version(capsys) -> None:
    status, out, err = cli(["--version"], capsys)
    assert status == 0 and out == f"rechash {__version__}\n" and err == ""


def test_usage_error_in_a_process() -> None:
    proc = cli_process(["fit", "x", "--out", "y", "--bits", "abc"])
    out, err = proc.communicate(timeout=120)
    assert_refused(proc.returncode, err, "rechash fit: --bits: ")
    assert out == ""
