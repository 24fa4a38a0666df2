"""The offline candidate job through the CLI: contract columns, external ids, exclusion,
resume, export; its output reads with pandas/pyarrow alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rechash import columns as C
from rechash.cli import main
from rechash.codes.export import import_codes


@pytest.fixture(scope="module")
def model_dir(small_model, tmp_path_factory) -> Path:
    model, _ = small_model
    return model.save(tmp_path_factory.mktemp("m") / "model")


def test_candidates_file_follows_the_contract(model_dir, small_model, tmp_path) -> None:
    _, data = small_model
    out = tmp_path / "c.parquet"
    assert main(["candidates", str(model_dir), "--out", str(out), "--k", "7", "--no-progress"]) == 0
    frame = pd.read_parquet(out)
    assert list(frame.columns) == list(C.CANDIDATE_COLUMNS)
    assert len(frame) == data.n_users * 7
    assert (
        frame.groupby(C.USER_ID)[C.RANK].apply(list)
        == pd.Series([list(range(1, 8))] * data.n_users, index=pd.Index(data.user_ids.external_ids, name=C.USER_ID))
    ).all()
    train = set(zip(*[data.to_frame()[c] for c in (C.USER_ID, C.ITEM_ID)]))
    assert not train & set(zip(frame[C.USER_ID], frame[C.ITEM_ID]))


def test_exclude_files_and_user_lists(model_dir, small_model, tmp_path) -> None:
    _, data = small_model
    users = data.user_ids.external_ids[:5]
    (tmp_path / "users.txt").write_text("\n".join(map(str, users)))
    first = pd.read_parquet(_run(model_dir, tmp_path / "a.parquet", "--users", str(tmp_path / "users.txt")))
    extra = first.groupby(C.USER_ID).head(2)[[C.USER_ID, C.ITEM_ID]]
    save_path = tmp_path / "extra.csv"
    extra.to_csv(save_path, index=False)
    second = pd.read_parquet(
        _run(
            model_dir,
            tmp_path / "b.parquet",
            "--users",
            str(tmp_path / "users.txt"),
            "--exclude",
            str(save_path),
            "--format",
            "csv",
        )
    )
    assert sorted(second[C.USER_ID].unique()) == sorted(users)
    assert not set(zip(extra[C.USER_ID], extra[C.ITEM_ID])) & set(zip(second[C.USER_ID], second[C.ITEM_ID]))


def _run(model_dir: Path, out: Path, *args: str) -> Path:
    assert main(["candidates", str(model_dir), "--out", str(out), "--k", "5", "--no-progress", *args]) == 0
    return out


def test_sharded_output_reads_without_rechash(model_dir, tmp_path) -> None:
    out = _run(model_dir, tmp_path / "shards", "--shard-size", "64")
    code = (
        "import sys, pandas, pyarrow.dataset as ds\n"
        f"a = pandas.read_parquet({str(out)!r}); b = ds.dataset({str(out)!r}).to_table()\n"
        "assert len(a) == b.num_rows == 1500 and 'rechash' not in sys.modules\n"
        "print(sorted(a.columns))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sorted(C.CANDIDATE_COLUMNS))
    # rerunning resumes (nothing to do) and keeps identical shards
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _run(model_dir, out, "--shard-size", "64")
    assert before == {p.name: p.read_bytes() for p in out.iterdir()}
    # another k is another job: refused rather than mixed
    assert (
        main(["candidates", str(model_dir), "--out", str(out), "--k", "6", "--no-progress", "--shard-size", "64"]) == 2
    )


def test_bad_inputs_fail_with_the_path(model_dir, tmp_path, capsys) -> None:
    assert main(["candidates", str(tmp_path / "nope"), "--out", str(tmp_path / "x.parquet")]) == 2
    assert "nope" in capsys.readouterr().err
    bad_users = tmp_path / "users.txt"
    bad_users.write_text("1\nabc\n")
    assert main(["candidates", str(model_dir), "--out", str(tmp_path / "y.parquet"), "--users", str(bad_users)]) == 2
    assert "users.txt: row 2" in capsys.readouterr().err
    assert not (tmp_path / "y.parquet").exists()


def test_export_round_trip(model_dir, small_model, tmp_path) -> None:
    model, _ = small_model
    assert main(["export", str(model_dir), "--out", str(tmp_path / "exp"), "--faiss"]) == 0
    codes, ids = import_codes(tmp_path / "exp")
    assert np.array_equal(codes, model.encode_items()) and ids == model.item_ids
    faiss = pytest.importorskip("faiss")
    index = faiss.read_index_binary(str(tmp_path / "exp" / "items.faiss"))
    assert index.ntotal == len(codes) and index.code_size == codes.shape[1]
