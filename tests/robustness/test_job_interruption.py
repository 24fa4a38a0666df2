"""Job interruption: `rechash candidates` killed with SIGKILL at every stage resumes to an
output byte-identical to an uninterrupted run; a resume or re-run with any parameter
changed is refused with one line naming it; verify() catches forged outputs."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rechash.errors import RechashError
from rechash.io.store import sha256
from rechash.jobs.batch import MANIFEST, read_manifest, verify

from .robust_helpers import assert_refused, cli, snapshot

ARGS = ["--k", "5", "--no-progress"]
SHARD = ["--shard-size", "80"]  # 300 users: shards of 80, 80, 80, 60
#: RECHASH_CRASH_AT points -> what the directory may hold at the kill
POINTS = {
    "job:start": "nothing yet (before the first shard)",
    "write:part-00000.parquet": "the first shard's temporary file, no manifest",
    "wrote:part-00000.parquet": "the first shard renamed, no manifest",
    "wrote:_manifest.json#2": "two shards in the manifest",
    "write:_manifest.json#5": "every shard, the final manifest not yet renamed",
}
EXTERNAL = "kill -9 from outside once part-00003 exists"


def _run(model: Path, out: Path, *extra, capsys) -> tuple[int, str, str]:
    return cli(["candidates", model, "--out", out, *ARGS, *extra], capsys)


#: One process imports rechash and compiles its kernels once (a warm-up run; numba's
#: fork-safe thread pool), then forks one `rechash candidates` run per crash point (each
#: child SIGKILLs itself there) and one more that it kills from outside once the child's
#: part-00003.parquet exists (shards of 10 users); it prints every exit status.
FORK_RUNS = """
import json, os, signal, sys, time
os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
from rechash.cli import _register, main
_register()
model, root, points, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4:]
assert main(["candidates", model, "--out", os.path.join(root, "warm-up.parquet"), *args]) == 0

def start(out, args, point=None):
    pid = os.fork()
    if pid == 0:
        if point:
            os.environ["RECHASH_CRASH_AT"] = point
        os._exit(main(["candidates", model, "--out", os.path.join(root, out), *args]))
    return pid

pids = {point: start(f"p{i}", args + ["--shard-size", "80"], point) for i, point in enumerate(points)}
pids["external"] = start("external", args + ["--shard-size", "10"])
deadline = time.time() + 120
while not os.path.exists(os.path.join(root, "external", "part-00003.parquet")) and time.time() < deadline:
    time.sleep(0.005)
os.kill(pids["external"], signal.SIGKILL)
status = {p: os.waitpid(pid, 0)[1] for p, pid in pids.items()}
print(json.dumps({p: -os.WTERMSIG(s) if os.WIFSIGNALED(s) else os.WEXITSTATUS(s) for p, s in status.items()}))
"""


@pytest.fixture(scope="module")
def killed(tiny_dir, tmp_path_factory) -> dict[str, tuple[Path, int]]:
    """Every interrupted run: point -> (output directory, exit status)."""
    root = tmp_path_factory.mktemp("killed")
    proc = subprocess.run(
        [sys.executable, "-c", FORK_RUNS, str(tiny_dir), str(root), json.dumps(list(POINTS)), *ARGS],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout.splitlines()[-1])
    runs = {point: (root / f"p{i}", status[point]) for i, point in enumerate(POINTS)}
    return {**runs, EXTERNAL: (root / "external", status["external"])}


@pytest.fixture(scope="module")
def reference(tiny_dir, tmp_path_factory) -> dict[str, Path]:
    """Uninterrupted runs, by shard size."""
    from rechash.cli import main

    root = tmp_path_factory.mktemp("reference")
    for size in ("80", "10"):
        assert main(["candidates", str(tiny_dir), "--out", str(root / size), *ARGS, "--shard-size", size]) == 0
    return {"80": root / "80", "10": root / "10"}


@pytest.mark.parametrize("point", [*POINTS, EXTERNAL])
def test_killed_job_resumes_byte_identical(point, killed, reference, tiny_dir, capsys) -> None:
    out, status = killed[point]
    assert status == -signal.SIGKILL
    if (out / MANIFEST).exists():
        assert not read_manifest(out)["complete"]
    size = "10" if point == EXTERNAL else "80"
    code, stdout, err = _run(tiny_dir, out, "--shard-size", size, capsys=capsys)
    assert code == 0, err
    assert "wrote 1,500 candidates for 300 users" in stdout
    ref = reference[size]
    assert snapshot(out) == {k.replace(str(ref), str(out)): v for k, v in snapshot(ref).items()}
    assert verify(out)["shards"] == verify(ref)["shards"]
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(ref))


# the complete reference (shard size 80) run again with one thing changed -> what the error names
CHANGED = {
    "shard size": (SHARD[:1] + ["100"], "shard_size: 80 there, 100 here"),
    "k": (["--k", "6"], "k: 5 there, 6 here"),
    "training items kept": (["--keep-seen"], "seen: "),
    "re-ranker": (["--reranker", "none"], 'reranker: "learned '),  # the tiny model's fit kept its learned re-ranker
    "pool": (["--radius", "3"], "pool: absent there"),
    "unknown users": (["--unknown", "popular"], 'unknown: "history" there, "popular" here'),
    "users": (["--users", "{users}"], "users: "),
    "exclusions": (["--exclude", "{exclude}", "--format", "csv"], "exclusions: absent there"),
}


@pytest.mark.parametrize("case", list(CHANGED))
def test_changed_parameters_are_refused(case, reference, tiny_dir, tmp_path, capsys) -> None:
    out = Path(shutil.copytree(reference["80"], tmp_path / "out"))
    (tmp_path / "users.txt").write_text("0\n1\n2\n")
    (tmp_path / "ex.csv").write_text("user_id,item_id\n0,1\n")
    extra, needle = CHANGED[case]
    extra = [a.format(users=tmp_path / "users.txt", exclude=tmp_path / "ex.csv") for a in extra]
    args = [*SHARD, *extra] if case != "shard size" else extra
    before = snapshot(tmp_path)
    code, _, err = _run(tiny_dir, out, *args, capsys=capsys)
    assert_refused(code, err, needle, before, snapshot(tmp_path))
    assert "holds the output of a different job" in err


def test_resume_with_another_shard_size_is_refused(killed, tiny_dir, tmp_path, capsys) -> None:
    out = Path(shutil.copytree(killed["wrote:_manifest.json#2"][0], tmp_path / "out"))
    before = snapshot(out)
    code, _, err = _run(tiny_dir, out, "--shard-size", "100", capsys=capsys)
    assert_refused(code, err, "shard_size: 80 there, 100 here", before, snapshot(out))


def test_python_jobs_with_other_parameters_are_refused(tiny, tmp_path) -> None:
    from rechash.jobs.candidates import CandidateJob
    from rechash.models.code import CodeRecommender

    model, data = tiny
    rec = CodeRecommender.from_model(model, seen=data.matrix)
    CandidateJob(rec, k=20).run(tmp_path / "o", shard_size=100, progress=False)
    before = snapshot(tmp_path)
    with pytest.raises(RechashError, match=r"different job \(k: 20 there, 10 here\)"):
        CandidateJob(rec, k=10).run(tmp_path / "o", shard_size=100, progress=False)
    other = CodeRecommender.from_model(model, seen=data.matrix[::-1])
    with pytest.raises(RechashError, match=r"different job \(seen: "):
        CandidateJob(other, k=20).run(tmp_path / "o", shard_size=100, progress=False)
    assert snapshot(tmp_path) == before


def test_duplicate_users_and_unmatched_exclusions_are_counted(tiny_dir, tmp_path, capsys) -> None:
    (tmp_path / "users.txt").write_text("3\n1\n3\n2\n1\n")
    (tmp_path / "ex.csv").write_text("user_id,item_id\n1,0\n2,99999\n77,1\n3,2\n")
    code, out, err = _run(
        tiny_dir,
        tmp_path / "o",
        "--users",
        tmp_path / "users.txt",
        "--exclude",
        tmp_path / "ex.csv",
        "--format",
        "csv",
        capsys=capsys,
    )
    assert code == 0, err
    assert "for 3 users" in out
    assert "ignored: 2 duplicate user ids, 2 exclusion rows matching no user of this run or no item" in out
    frame = pd.read_parquet(tmp_path / "o")
    assert list(pd.unique(frame["user_id"])) == [3, 1, 2] and not frame.duplicated(["user_id", "item_id"]).any()
    assert ((frame["user_id"] == 1) & (frame["item_id"] == 0)).sum() == 0


def _forge(out: Path, edit) -> None:
    manifest = json.loads((out / MANIFEST).read_text())
    edit(manifest)
    (out / MANIFEST).write_text(json.dumps(manifest))


def _duplicate_rows(out: Path) -> None:
    f = out / "part-00001.parquet"
    frame = pd.read_parquet(f)
    pd.concat([frame, frame.head(3)]).to_parquet(f, index=False)
    _forge(out, lambda m: m["shards"][1].update(rows=m["shards"][1]["rows"] + 3, sha256=sha256(f)))
    _forge(out, lambda m: m.update(rows=m["rows"] + 3))


FORGED = {
    "shard dropped": (lambda o: _forge(o, lambda m: m["shards"].pop()), "lists shards [0, 1, 2]"),
    "users lost": (lambda o: _forge(o, lambda m: m.update(n_users=400)), "cover 300 users, the job has 400"),
    "duplicate rows, checksum forged": (_duplicate_rows, "appears twice"),
    "shard file outside": (
        lambda o: _forge(o, lambda m: m["shards"][0].update(file="../x.parquet")),
        "malformed shard list",
    ),
    "shard bytes changed": (
        lambda o: (o / "part-00002.parquet").write_bytes(b"PAR1"),
        "part-00002.parquet: shard is corrupted",
    ),
}


@pytest.mark.parametrize("case", list(FORGED))
def test_verify_catches_forged_outputs(case, reference, tmp_path) -> None:
    out = Path(shutil.copytree(reference["80"], tmp_path / "out"))
    forge, needle = FORGED[case]
    forge(out)
    with pytest.raises(RechashError) as info:
        verify(out)
    assert needle in str(info.value) and "\n" not in str(info.value)
