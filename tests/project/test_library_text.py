"""Library code outside the data layer names no dataset (issue 22).

Docstrings and comments state contracts and rules; which dataset a rule was measured on,
and the numbers, live in experiments/results/ and CHANGELOG.md. The data layer
(``rechash/data/``) may name the datasets it loads, and the CLI may name the built-in
datasets that its commands accept as arguments (``'ml-100k'`` / ``'ml-1m'``, quoted).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "rechash"
#: the data layer, which may name datasets
DATA_LAYER = PACKAGE / "data"
#: dataset names library code must not carry (case-insensitive)
DATASET = re.compile(r"ml-100k|ml-20m|ml-1m|last\.fm|lastfm|amazon-beauty|amazon|yelp|gowalla", re.IGNORECASE)
#: the CLI's built-in named datasets, allowed in rechash/cli/ as quoted argument values
CLI_DATASETS = {"ml-100k", "ml-1m"}
QUOTES = "'\"`"


def _library_files() -> list[Path]:
    return sorted(f for f in PACKAGE.rglob("*.py") if DATA_LAYER not in f.parents)


def _allowed(path: Path, line: str, match: re.Match) -> bool:
    """A quoted built-in dataset name in a CLI module (an argument value of a ``rechash`` command)."""
    if path.parent != PACKAGE / "cli" or match.group().lower() not in CLI_DATASETS:
        return False
    before, after = line[match.start() - 1 : match.start()], line[match.end() : match.end() + 1]
    return len(before) == len(after) == 1 and before in QUOTES and after in QUOTES


def dataset_mentions(path: Path) -> list[str]:
    """``file:line: text`` of every dataset name in ``path`` that the allow-list does not cover."""
    hits = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if any(not _allowed(path, line, m) for m in DATASET.finditer(line)):
            hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    return hits


def test_scan_covers_the_library():
    files = _library_files()
    assert PACKAGE / "__init__.py" in files and PACKAGE / "cli" / "data.py" in files
    assert not any(DATA_LAYER in f.parents for f in files)


def test_allow_list_is_narrow():
    cli = PACKAGE / "cli" / "data.py"
    line = "help=\"'synthetic', 'ml-100k' or 'ml-1m'\" picked on ml-1m, lastfm"
    kinds = [_allowed(cli, line, m) for m in DATASET.finditer(line)]
    assert kinds == [True, True, False, False]
    assert not any(_allowed(PACKAGE / "hasher" / "refine.py", line, m) for m in DATASET.finditer(line))


@pytest.mark.parametrize("path", _library_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dataset_names(path: Path):
    hits = dataset_mentions(path)
    message = "dataset names in library code (move them to experiments/results or CHANGELOG.md):"
    assert not hits, "\n".join([message, *hits])
