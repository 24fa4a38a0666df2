"""The sharded job: atomic shards, manifest, resume after a kill, refusal of foreign dirs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rechash.errors import RechashError
from rechash.jobs.batch import MANIFEST, read_manifest, run_sharded, run_single_file, verify

JOB = """
import sys, time
import numpy as np, pandas as pd
from rechash.jobs.batch import run_sharded

def compute(users):
    time.sleep(float(sys.argv[2]))
    rng = np.random.default_rng(int(users[0]))
    return pd.DataFrame({"user_id": np.repeat(users, 3),
                         "item_id": rng.random((len(users), 100)).argsort(axis=1)[:, :3].ravel(),
                         "rank": np.tile([1, 2, 3], len(users))})

run_sharded(np.arange(200), compute, sys.argv[1], params={"k": 3}, shard_size=20, progress=False)
"""


def _compute(users: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"user_id": np.repeat(users, 2), "item_id": np.tile([7, 9], len(users))})


def _run_job(out: Path, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", JOB, str(out), str(delay)])


def test_killed_job_resumes_to_identical_output(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    assert _run_job(reference, 0.0).wait(timeout=120) == 0
    resumed = tmp_path / "resumed"
    proc = _run_job(resumed, 0.2)
    deadline = time.time() + 60
    while time.time() < deadline:
        if (resumed / MANIFEST).exists() and len(read_manifest(resumed)["shards"]) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = read_manifest(resumed)
    assert not partial["complete"] and 3 <= len(partial["shards"]) < 10
    assert _run_job(resumed, 0.0).wait(timeout=120) == 0
    a, b = verify(reference), verify(resumed)
    assert [s["sha256"] for s in a["shards"]] == [s["sha256"] for s in b["shards"]]
    pd.testing.assert_frame_equal(pd.read_parquet(reference), pd.read_parquet(resumed))
    assert not [p for p in os.listdir(resumed) if p.endswith(".tmp")]


def test_rerun_skips_finished_shards(tmp_path: Path) -> None:
    calls = []

    def counting(users):
        calls.append(len(users))
        return _compute(users)

    run_sharded(np.arange(10), counting, tmp_path / "o", params={}, shard_size=4, progress=False)
    assert calls == [4, 4, 2]
    manifest = run_sharded(np.arange(10), counting, tmp_path / "o", params={}, shard_size=4, progress=False)
    assert calls == [4, 4, 2] and manifest["rows"] == 20
    assert len(pd.read_parquet(tmp_path / "o")) == 20


def test_corrupted_shard_is_recomputed_and_detected(tmp_path: Path) -> None:
    out = tmp_path / "o"
    run_sharded(np.arange(10), _compute, out, params={}, shard_size=4, progress=False)
    (out / "part-00001.parquet").write_bytes(b"garbage")
    with pytest.raises(RechashError, match="part-00001.parquet: shard is corrupted"):
        verify(out)
    run_sharded(np.arange(10), _compute, out, params={}, shard_size=4, progress=False)
    verify(out)


def test_foreign_directories_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "o"
    run_sharded(np.arange(10), _compute, out, params={"k": 1}, shard_size=4, progress=False)
    with pytest.raises(RechashError, match="different job"):
        run_sharded(np.arange(10), _compute, out, params={"k": 2}, shard_size=4, progress=False)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("x")
    with pytest.raises(RechashError, match="not a rechash output directory"):
        run_sharded(np.arange(10), _compute, other, params={}, progress=False)


def test_failed_compute_leaves_no_partial_file(tmp_path: Path) -> None:
    def failing(users):
        raise RuntimeError("boom")

    out = tmp_path / "single.parquet"
    with pytest.raises(RuntimeError):
        run_single_file(np.arange(10), failing, out, chunk_size=4, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_single_file_holds_every_chunk(tmp_path: Path) -> None:
    out = tmp_path / "c.parquet"
    assert run_single_file(np.arange(10), _compute, out, chunk_size=3, progress=False) == 20
    frame = pd.read_parquet(out)
    assert frame["user_id"].tolist() == np.repeat(np.arange(10), 2).tolist()


def test_disk_full_leaves_no_partial_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import rechash.jobs.batch as batch

    real = batch.pq.write_table

    def write_then_fail(table, where, **kwargs):
        real(table, where, **kwargs)  # the temporary file exists at this point
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(batch.pq, "write_table", write_then_fail)
    out = tmp_path / "o"
    with pytest.raises(RechashError, match=r"part-00000.parquet: could not write \(No space left on device\)"):
        run_sharded(np.arange(3), _compute, out, params={}, progress=False)
    assert sorted(p.name for p in out.iterdir()) == []
