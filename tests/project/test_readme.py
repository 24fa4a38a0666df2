"""The README's Python quickstart (the first ```python block under "## Python API") runs verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = "## Python API"


def quickstart_block(text: str) -> str:
    """The first ```python fenced block between the "## Python API" heading and the next
    level-2 heading; a clear failure when the heading or the block is missing."""
    lines = text.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == HEADING)
    except StopIteration:
        pytest.fail(f"{README.name}: no {HEADING!r} heading: the Python quickstart section is gone")
    section = []
    for line in lines[start + 1 :]:
        if line.startswith("## "):
            break
        section.append(line)
    match = re.search(r"^```python[ \t]*\n(.*?)^```[ \t]*$", "\n".join(section) + "\n", re.S | re.M)
    if match is None:
        pytest.fail(f"{README.name}: no ```python block under {HEADING!r} (before the next '## ' heading)")
    code = match.group(1)
    if not code.strip():
        pytest.fail(f"{README.name}: the ```python block under {HEADING!r} is empty")
    return code


def test_quickstart_block_is_found():
    code = quickstart_block(README.read_text(encoding="utf-8"))
    assert "rechash" in code


def test_extractor_fails_clearly_without_block():
    with pytest.raises(pytest.fail.Exception, match="no ```python block"):
        quickstart_block("# t\n## Python API\nno code here\n## Next\n```python\nx = 1\n```\n")
    with pytest.raises(pytest.fail.Exception, match="heading"):
        quickstart_block("# t\n```python\nx = 1\n```\n")


def test_readme_python_quickstart_runs(tmp_path, monkeypatch):
    """Executed as written, in an empty working directory (it writes data/ and model/ there)."""
    code = quickstart_block(README.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__readme__"}
    exec(compile(code, f"{README}:{HEADING}", "exec"), namespace)
    # what the block promises, checked on the names it defines
    rec, frame = namespace["rec"], namespace["frame"]
    assert (tmp_path / "model").is_dir() and (tmp_path / "data").is_dir()
    assert list(frame.columns) == ["user_id", "item_id", "rank", "score", "hamming"]
    assert frame.attrs["report"]["known"] == 1 and frame.attrs["report"]["from_history"] == 1
    ids = namespace["ids"]  # the last call: similar_items(5, N=10)
    assert ids[0] == 5 and len(ids) == 10
    # the new user gets the same list through both conventions
    new_rows = frame[frame["user_id"] == 99_999]["item_id"].to_numpy()
    again, _ = rec.recommend(0, namespace["history_row"], N=10, recalculate_user=True)
    assert list(rec.item_ids.to_external(again)) == list(new_rows)
