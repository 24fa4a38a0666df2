"""Named datasets (no network: file:// URLs and a failing fetcher) and the ``rechash data`` CLI."""

from __future__ import annotations

import hashlib
import urllib.error
import zipfile

import pytest

from rechash.cli import main
from rechash.data import datasets, load
from rechash.errors import DataError


@pytest.fixture
def tiny_dataset(tmp_path, monkeypatch):
    """A named dataset 'tiny' served from a local zip through a file:// URL."""
    archive = tmp_path / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("tiny/u.data", "1\t10\t5\t100\n2\t10\t3\t200\n2\t11\t4\t300\n")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    spec = datasets.NamedDataset("tiny", archive.as_uri(), f"md5:{md5}", "tiny/u.data", "movielens", "test")
    monkeypatch.setitem(datasets.DATASETS, "tiny", spec)
    monkeypatch.setenv("RECHASH_DATA", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return spec


def test_download_verifies_and_caches(tiny_dataset, tmp_path, monkeypatch):
    inter = load("tiny")
    assert (inter.n_users, inter.n_items, inter.nnz) == (2, 2, 3)
    cached = tmp_path / "cache" / "tiny" / "u.data"
    assert cached.is_file()
    monkeypatch.setattr(datasets, "_urlopen", lambda *a, **k: pytest.fail("cached: no second download"))
    assert load("tiny").nnz == 3


def test_checksum_mismatch_caches_nothing(tiny_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(
        datasets.DATASETS,
        "tiny",
        datasets.NamedDataset("tiny", tiny_dataset.url, "md5:" + "0" * 32, tiny_dataset.member, "movielens", "test"),
    )
    with pytest.raises(DataError, match="md5 checksum mismatch"):
        load("tiny")
    assert not (tmp_path / "cache" / "tiny" / "u.data").exists()


def test_offline_names_data_path(tiny_dataset, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(datasets, "_urlopen", offline)
    with pytest.raises(DataError, match=r"pass a local copy with --data PATH"):
        load("ml-100k")
    assert main(["data", "stats", "ml-1m"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--data PATH" in err and "Traceback" not in err


def test_cli_stats(tmp_path, capsys):
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,rating\n1,a,5\n1,b,3\n2,a,4\n2,a,1\n")
    assert main(["data", "stats", str(path)]) == 0
    out = capsys.readouterr().out
    for line in (
        "users: 2",
        "items: 2",
        "items with interactions: 2",
        "interactions: 3",
        "duplicates merged: 1",
        "dropped: 0",
        "density: 75.0000%",
        "user activity",
        "gini",
    ):
        assert line in out
    assert main(["data", "stats", str(path), "--json"]) == 0
    assert '"interactions": 3' in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,needle",
    [
        (["data", "stats", "missing.csv"], "missing.csv: no such file"),
        (["data", "stats", "{bad}", "--format", "xml"], "unknown format 'xml'"),
        (["data", "stats", "{bad}"], "bad.txt:2:3: expected non-negative integer ids"),
        (["data", "split", "{bad}", "--out", "o", "--format", "adjacency"], "bad.txt:2:3"),
        (["data", "split", "synthetic", "--out", "o", "--method", "magic"], "--method"),
    ],
)
def test_cli_errors_exit_2_without_traceback(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.txt").write_text("0 1 2\n1 ab\n")
    assert main([a.replace("{bad}", "bad.txt") for a in args]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err


def test_cli_split_writes_parts_and_maps(tmp_path, capsys):
    src = tmp_path / "log.txt"
    src.write_text("".join(f"{u} " + " ".join(str((u * 7 + k) % 30) for k in range(10)) + "\n" for u in range(20)))
    assert main(["data", "split", str(src), "--out", str(tmp_path / "out"), "--seed", "3", "--k-core", "2"]) == 0
    out = capsys.readouterr().out
    assert "train: " in out and "wrote: " in out
    names = {p.name for p in (tmp_path / "out").iterdir()}
    assert {"train.txt", "valid.txt", "test.txt", "user_ids.parquet", "item_ids.parquet"} <= names
    parts = [load(tmp_path / "out" / f"{n}.txt") for n in ("train", "valid", "test")]
    assert sum(p.nnz for p in parts) == 200
