"""Helpers of the robustness tests: CLI runners, disk snapshots and the failure contract.

Every failing case asserts the same contract (:func:`assert_refused`): exit status 2,
exactly one line on stderr naming the file, row or option, no traceback, and no change to
what was on disk before (:func:`snapshot`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def snapshot(*paths: Path) -> dict[str, bytes]:
    """Every file under ``paths`` (hidden ones included) with its bytes."""
    out = {}
    for path in paths:
        if path.is_file():
            out[str(path)] = path.read_bytes()
        elif path.is_dir():
            out.update({str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()})
    return out


def cli(argv: list[str], capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run ``rechash ARGV`` in this process: ``(status, stdout, stderr)``."""
    from rechash.cli import main

    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def cli_process(argv: list[str], env: dict | None = None, **kwargs) -> subprocess.Popen:
    """Start ``python -m rechash ARGV`` (stdout/stderr piped)."""
    return subprocess.Popen(
        [sys.executable, "-m", "rechash", *map(str, argv)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def assert_refused(status: int, err: str, needle: str, before: dict | None = None, after: dict | None = None) -> None:
    """The failure contract: status 2, one stderr line ``error: ...`` holding ``needle``,
    no traceback, nothing changed on disk."""
    assert status == 2, err
    assert "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err, err
    if before is not None:
        assert before == after
