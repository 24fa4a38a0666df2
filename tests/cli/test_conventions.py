"""Conventions every command shares (rechash.cli.common): the column options of every command
that reads interactions, one ``--threads`` of every command that computes, ``-v``/``-q`` over
logging, help texts printed literally, plain ids in error messages, progress by user batch
and a ``--help`` that loads no heavy module."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rechash.cli import main

# a log whose columns no alias finds: every command needs the column options to read it
COLS = ["--user-col", "member", "--item-col", "sku", "--weight-col", "stars", "--timestamp-col", "when", "--sep", ";"]
FIT = [
    "--bits",
    "16",
    "--epochs",
    "1",
    "--teacher",
    "none",
    "--negatives",
    "16",
    "--batch-size",
    "256",
    "--no-progress",
]
READERS = ["fit", "compare", "demo", "candidates", "data stats", "data split"]
COMPUTERS = ["fit", "compare", "demo", "candidates", "export"]


def run(argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def write_log(frame: pd.DataFrame, path: Path) -> Path:
    frame.rename(columns={"user_id": "member", "item_id": "sku", "weight": "stars", "timestamp": "when"}).assign(
        when=lambda f: f["when"].astype("int64")
    ).to_csv(path, sep=";", index=False)
    return path


@pytest.fixture(scope="module")
def data():
    from rechash.data import synthetic

    return synthetic(n_users=120, n_items=80, seed=3)


@pytest.fixture(scope="module")
def log_csv(data, tmp_path_factory) -> Path:
    return write_log(data.to_frame(), tmp_path_factory.mktemp("log") / "log.csv")


@pytest.fixture(scope="module")
def model_dir(log_csv, tmp_path_factory) -> Path:
    """A model fitted by ``rechash fit`` on the custom-column log (one thread)."""
    out = tmp_path_factory.mktemp("fit") / "model"
    assert main(["fit", str(log_csv), "--out", str(out), *COLS, *FIT, "--threads", "1"]) == 0
    return out


def command(path: str):
    """The built (click) command ``path`` of the rechash app, e.g. ``"data stats"``."""
    import typer

    from rechash.cli import _register, app

    _register()
    cmd = typer.main.get_command(app)
    for name in path.split():
        cmd = cmd.commands[name]
    return cmd


def options(cmd) -> dict[str, object]:
    return {opt: p for p in cmd.params for opt in getattr(p, "opts", ())}


# ---- column options ----------------------------------------------------------------------------
@pytest.mark.parametrize("path", READERS)
def test_every_reader_has_the_column_options(path) -> None:
    from rechash.cli.common import InputOptions

    flags = {f.metadata["flag"] for f in InputOptions.__dataclass_fields__.values()}
    assert flags == {"--user-col", "--item-col", "--weight-col", "--timestamp-col", "--sep", "--timestamp-unit"}
    assert flags <= set(options(command(path)))


def test_fit_reads_custom_columns(model_dir, data, log_csv, tmp_path, capsys) -> None:
    from rechash.hasher.twin_tower import TwinTowerHasher

    model = TwinTowerHasher.load(model_dir)
    frame = data.to_frame()
    assert len(model.user_ids) == frame["user_id"].nunique() and len(model.item_ids) == frame["item_id"].nunique()
    # without them the loader's error names the option to pass
    status, _, err = run(["fit", log_csv, "--out", tmp_path / "m", *FIT], capsys)
    assert status == 2 and "--user-col" in err and not (tmp_path / "m").exists()


def test_data_stats_reads_custom_columns(log_csv, data, capsys) -> None:
    status, out, _ = run(["data", "stats", log_csv, "--json", *COLS], capsys)
    stats = json.loads(out)
    assert status == 0 and stats["users"] == data.to_frame()["user_id"].nunique() and stats["interactions"] == data.nnz
    assert "timestamps" in stats


def test_candidates_exclude_files_read_custom_columns(model_dir, data, tmp_path, capsys) -> None:
    users = data.user_ids.external_ids[:5]
    items = data.item_ids.external_ids
    banned = pd.DataFrame(
        {"user_id": np.repeat(users, 10), "item_id": np.tile(items[:10], 5), "weight": 1.0, "timestamp": 1.6e9}
    )
    ex = write_log(banned, tmp_path / "exclude.csv")
    out = tmp_path / "cands.parquet"
    args = ["candidates", model_dir, "--out", out, "--k", "5", "--exclude", ex, "--threads", "1", "--no-progress"]
    status, _, err = run(args, capsys)
    assert status == 2 and "--user-col" in err
    status, out_text, err = run(args + COLS, capsys)
    assert status == 0, err
    got = pd.read_parquet(out)
    pairs = set(zip(got["user_id"], got["item_id"]))
    assert not pairs & set(zip(banned["user_id"], banned["item_id"]))
    assert set(got["user_id"]) == set(data.user_ids.external_ids)


@pytest.fixture
def stub_pipeline(monkeypatch):
    """rechash.evaluation.pipeline/report replaced by stubs: ``run_compare`` records what the
    command handed it (and the thread setting it ran under), then stops the command."""
    from rechash.errors import RechashError
    from rechash.threads import current_threads

    seen: dict = {}

    def run_compare(train, valid, test, cfg, dataset=None, progress=None):
        seen.update(
            train=train,
            valid=valid,
            test=test,
            cfg=cfg,
            threads=current_threads(),
            level=logging.getLogger("rechash").getEffectiveLevel(),
            trainer_info=logging.getLogger("rechash.hasher.trainer").isEnabledFor(logging.INFO),
        )
        raise RechashError("stub pipeline reached")

    pipeline = types.ModuleType("rechash.evaluation.pipeline")
    pipeline.CompareConfig = lambda **kw: types.SimpleNamespace(**{"k": 20, **kw})
    pipeline.run_compare = run_compare
    report = types.ModuleType("rechash.evaluation.report")
    report.markdown_table = report.write_report = None
    monkeypatch.setitem(sys.modules, "rechash.evaluation.pipeline", pipeline)
    monkeypatch.setitem(sys.modules, "rechash.evaluation.report", report)
    return seen


def _split_dir(data, root: Path) -> Path:
    from rechash.data import split_random

    parts = split_random(data, (0.8, 0.1, 0.1), seed=0)
    root.mkdir()
    for name, part in zip(("train", "valid", "test"), parts):
        write_log(part.to_frame(), root / f"{name}.csv")
    return root


def test_compare_reads_custom_columns_and_takes_threads(stub_pipeline, data, tmp_path, capsys) -> None:
    from rechash.threads import available_cores, current_threads

    d = _split_dir(data, tmp_path / "split")
    args = [
        "compare",
        d / "train.csv",
        "--valid",
        d / "valid.csv",
        "--test",
        d / "test.csv",
        "--report",
        tmp_path / "r",
    ]
    status, _, err = run(args + COLS + ["--threads", "1"], capsys)
    assert status == 2 and "stub pipeline reached" in err
    cfg = stub_pipeline["cfg"]
    assert stub_pipeline["train"].n_users == data.to_frame()["user_id"].nunique() and stub_pipeline["test"].nnz > 0
    assert cfg.threads == 1 and stub_pipeline["threads"] == 1  # the towers take cfg.threads
    assert current_threads() == available_cores()  # the process is left as it was
    # the default: every core, the towers at the model's default (every core)
    status, _, err = run(args + COLS, capsys)
    assert stub_pipeline["cfg"].threads == available_cores() and "threads" not in stub_pipeline["cfg"].hasher_options


def test_demo_reads_custom_columns_and_takes_threads(stub_pipeline, data, tmp_path, capsys) -> None:
    d = _split_dir(data, tmp_path / "split")
    status, _, err = run(["demo", "--data", d, "--report", tmp_path / "r", "--threads", "1", *COLS], capsys)
    assert status == 2 and "stub pipeline reached" in err
    assert stub_pipeline["train"].n_users == data.to_frame()["user_id"].nunique() and stub_pipeline["cfg"].threads == 1
    assert stub_pipeline["threads"] == 1


# ---- threads -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path", COMPUTERS)
def test_every_computing_command_has_one_threads_option(path) -> None:
    from rechash.cli.common import THREADS_HELP

    opt = options(command(path))["--threads"]
    assert opt.default is None and opt.help == THREADS_HELP


@pytest.mark.parametrize("path", COMPUTERS)
def test_threads_below_one_is_a_usage_error(path, capsys) -> None:
    status, _, err = run([*path.split(), "--threads", "0"], capsys)
    assert status == 2 and "--threads" in err and err.count("\n") == 1


def test_export_takes_threads(model_dir, tmp_path, capsys) -> None:
    status, out, err = run(["export", model_dir, "--out", tmp_path / "exp", "--threads", "1"], capsys)
    assert status == 0, err
    assert (tmp_path / "exp" / "item_codes.npy").is_file() and "item_codes.npy" in out


# ---- logging -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "flags, level",
    [
        ([], logging.WARNING),
        (["-v"], logging.INFO),
        (["-vv"], logging.DEBUG),
        (["--verbose"], logging.INFO),
        (["-q"], logging.ERROR),
    ],
)
def test_verbosity_sets_the_log_level(flags, level, stub_pipeline, data, tmp_path, capsys) -> None:
    before = logging.getLogger("rechash").level
    d = _split_dir(data, tmp_path / "split")
    status, _, err = run([*flags, "demo", "--data", d, "--report", tmp_path / "r", *COLS], capsys)
    assert status == 2 and "stub pipeline reached" in err
    assert stub_pipeline["level"] == level and stub_pipeline["trainer_info"] == (level <= logging.INFO)
    assert logging.getLogger("rechash").level == before  # main() leaves the levels as it found them


def test_verbose_logs_the_epochs_and_quiet_silences(log_csv, tmp_path, capsys) -> None:
    status, _, err = run(["-v", "fit", log_csv, "--out", tmp_path / "a", *COLS, *FIT, "--threads", "1"], capsys)
    assert status == 0 and "epoch 1/1" in err
    status, _, err = run(["fit", log_csv, "--out", tmp_path / "b", *COLS, *FIT, "--threads", "1"], capsys)
    assert status == 0 and "epoch 1/1" not in err
    status, _, err = run(["-q", "fit", log_csv, "--out", tmp_path / "c", *COLS, *FIT[:-1], "--threads", "1"], capsys)
    assert status == 0 and err == ""  # no status line, no progress bar
    status, _, err = run(["-v", "-q", "data", "stats", log_csv], capsys)
    assert status == 2 and "--quiet" in err


def test_fit_bar_counts_the_epochs_trained(log_csv, tmp_path, capsys) -> None:
    import re

    fit = ["--bits", "16", "--teacher", "none", "--negatives", "16", "--batch-size", "256", "--threads", "1"]
    status, out, err = run(
        ["fit", log_csv, "--out", tmp_path / "m", *COLS, *fit, "--epochs", "6", "--patience", "1"], capsys
    )
    assert status == 0, err
    trained = int(re.search(r"(\d+) epochs? \(", out).group(1))
    assert [int(n) for n in re.findall(r"(\d+)/6 \[", err)][-1] == trained


# ---- help and messages ---------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["export", "candidates"])
def test_help_prints_square_brackets_literally(path, monkeypatch, capsys) -> None:
    import re

    monkeypatch.setenv("COLUMNS", "300")
    status, out, _ = run([*path.split(), "--help"], capsys)
    assert status == 0
    if path == "export":
        assert "rechash[faiss]" in out
    # every [word] of every help text of the command shows up as written
    cmd = command(path)
    texts = [cmd.help or ""] + [p.help or "" for p in cmd.params if getattr(p, "help", None)]
    for tag in {t for text in texts for t in re.findall(r"\[[a-z#/@][^\[\]]*\]", text.replace("\\[", "["))}:
        assert tag in out, tag


def test_unknown_user_error_prints_the_plain_id(model_dir, tmp_path, capsys) -> None:
    users = tmp_path / "users.txt"
    users.write_text("0\n99999\n")
    status, _, err = run(
        [
            "candidates",
            model_dir,
            "--out",
            tmp_path / "c.parquet",
            "--users",
            users,
            "--unknown",
            "error",
            "--no-progress",
        ],
        capsys,
    )
    assert status == 2 and "99999" in err and "np." not in err and err.count("\n") == 1


def test_numpy_scalar_reprs_print_plain() -> None:
    from rechash.cli.common import plain_values

    assert plain_values("user np.int64(99999) is unknown") == "user 99999 is unknown"
    assert plain_values("item np.str_('u1') and np.float32(1.5)") == "item 'u1' and 1.5"
    assert plain_values("ids [np.int64(1), np.int64(2)]") == "ids [1, 2]"
    assert plain_values("keep notnp.int64(3) as is") == "keep notnp.int64(3) as is"


# ---- progress, first run, startup --------------------------------------------------------------------
def test_sharded_progress_moves_by_user_batch(monkeypatch, tmp_path) -> None:
    import rechash.jobs.batch as B

    calls, ticks = [], []
    monkeypatch.setattr(B, "PROGRESS_BATCH", 3)

    def compute(users):
        calls.append(len(users))
        return pd.DataFrame({"user_id": users, "item_id": users * 10, "rank": 1, "score": 1.0, "hamming": 0})

    class Bar:
        def update(self, n):
            ticks.append(n)

    frame = B._compute_in_batches(compute, np.arange(10), Bar())
    assert calls == [3, 3, 3, 1] and ticks == calls
    assert frame["user_id"].tolist() == list(range(10)) and frame.index.tolist() == list(range(10))
    # the shard written from the batches is the shard of one call
    B.run_sharded(np.arange(10), compute, tmp_path / "a", params={}, shard_size=10, progress=False)
    monkeypatch.setattr(B, "PROGRESS_BATCH", 100)
    B.run_sharded(np.arange(10), compute, tmp_path / "b", params={}, shard_size=10, progress=False)
    assert pd.read_parquet(tmp_path / "a").equals(pd.read_parquet(tmp_path / "b"))


def test_cold_kernel_cache_is_detected(monkeypatch, tmp_path) -> None:
    from rechash.cli import common

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert common.kernels_cold("search")
    for rel in common.KERNELS["search"]:
        (d,) = common._cache_dirs(common._PACKAGE / rel)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{Path(rel).stem}.kernel-1.py311.nbi").write_bytes(b"")
    assert not common.kernels_cold("search") and common.kernels_cold("data", "search")


def test_help_loads_no_heavy_module() -> None:
    code = (
        "import sys; from rechash.cli import main\n"
        "for argv in (['--help'], ['fit', '--help'], ['candidates', '--help'], ['data', 'split', '--help']):\n"
        "    assert main(argv) == 0\n"
        "heavy = {'torch', 'numba', 'pandas', 'numpy', 'scipy', 'pyarrow', 'sklearn', 'implicit'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_fit_reports_the_user_code_refinement(log_csv, tmp_path, capsys) -> None:
    """With a teacher, `rechash fit` tries the refinement and says what validation decided,
    as config.json records it."""
    fit = [a for a in FIT if a not in ("--teacher", "none")]
    status, out, _ = run(["fit", log_csv, "--out", tmp_path / "m", *COLS, *fit, "--threads", "1"], capsys)
    refine = json.loads((tmp_path / "m" / "config.json").read_text())["training_run"]["refine"]
    assert status == 0 and set(refine["valid_recall"]) == {"none", "3.0", "4.0", "6.0"}
    t = refine["temperature"]
    assert (f"user codes refined at T {t:g}" if t is not None else "refinement tried and refused by validation") in out
