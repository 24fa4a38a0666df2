"""Concurrency: a second run into an output directory that a running job holds is refused at
once with one line (exit 2) and changes nothing; the lock dies with its holder."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rechash.errors import RechashError
from rechash.io.atomic import exclusive_lock
from rechash.jobs.batch import verify

from .robust_helpers import assert_refused, cli, snapshot

#: a sharded job (no model: a light process) whose first chunk blocks until it is killed
HOLDER = """
import sys, time
import numpy as np
from rechash.jobs.batch import run_sharded

def compute(users):
    print("computing", flush=True)
    time.sleep(120)

run_sharded(np.arange(10), compute, sys.argv[1], params={}, progress=False)
"""
NEEDLE = "another rechash run is writing into this directory"


@pytest.fixture
def holder(tmp_path):
    """A separate process running a job into ``tmp_path / 'out'`` (killed at teardown)."""
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "computing\n"
    yield out, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("second", ["rechash candidates", "CandidateJob.run"])
def test_second_run_into_a_held_directory_is_refused(second, holder, tiny, tiny_dir, capsys) -> None:
    out, _ = holder
    before = snapshot(out.parent)
    if second == "rechash candidates":
        status, _, err = cli(["candidates", tiny_dir, "--out", out, "--k", "5", "--no-progress"], capsys)
    else:
        from rechash.jobs.candidates import CandidateJob
        from rechash.models.code import CodeRecommender

        with pytest.raises(RechashError) as info:
            CandidateJob(CodeRecommender.from_model(tiny[0], seen=tiny[1].matrix), k=5).run(out, progress=False)
        status, err = 2, f"error: {info.value}\n"
    assert_refused(status, err, f"{out}: {NEEDLE}", before, snapshot(out.parent))


def test_same_process_holding_the_lock_is_refused(tmp_path: Path) -> None:
    with exclusive_lock(tmp_path), pytest.raises(RechashError, match=NEEDLE):
        with exclusive_lock(tmp_path):
            pass


def test_lock_is_released_when_the_holder_dies(holder, tiny_dir, capsys) -> None:
    out, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    status, stdout, err = cli(["candidates", tiny_dir, "--out", out, "--k", "5", "--no-progress"], capsys)
    assert status == 0, err
    assert verify(out)["rows"] == 1500
