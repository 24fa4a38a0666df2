"""The commit a results file was produced at, for the line every results file carries."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def commit() -> str:
    """The short hash of the checked-out commit, ``+dirty`` when ``rechash/`` has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--", "rechash") else "")


def commit_line() -> str:
    """``Commit: <hash> (library at that commit).``"""
    return f"Commit: {commit()} (library at that commit)."
