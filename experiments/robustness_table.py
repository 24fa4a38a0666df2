"""The robustness table (issue 13): run ``tests/robustness`` and count the cases per class.

    python experiments/robustness_table.py     # writes experiments/results/robustness.md

Runs ``pytest tests/robustness`` with a JUnit XML report and tabulates its test cases by
module (one module per class of hostile input); a case counts as handled when its test
passes, i.e. the contract of the class holds for it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from provenance import commit_line

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "robustness.md"
COMMAND = "python experiments/robustness_table.py"
FAILED = "exit 2, one stderr line naming the file/row/option, no traceback, no change on disk"
#: module -> (class, what is tried, what "handled" means)
CLASSES = {
    "test_data_inputs": (
        "data inputs",
        "malformed interaction files: ids, weights, timestamps, encodings, columns",
        FAILED,
    ),
    "test_cli_arguments": (
        "CLI arguments",
        "usage errors of every command: missing/unknown/malformed options, bare command, `--version`",
        FAILED,
    ),
    "test_model_dir": (
        "model directory tampering",
        "deleted, flipped, forged or unrecorded files (seen.npz "
        "included), forged config values, index.json path traversal, unusable --out for "
        "fit/export/save, kill -9 while saving",
        FAILED + "; kill -9: previous model intact",
    ),
    "test_job_interruption": (
        "job interruption",
        "`rechash candidates` killed (SIGKILL) at 5 stages and from "
        "outside, resumed; re-runs with one parameter changed; forged outputs for verify()",
        "byte-identical resume; changed parameters: " + FAILED + " (naming the parameter)",
    ),
    "test_concurrency": (
        "concurrency",
        "a second run (CLI, Python) into a directory a running job holds; the holder killed",
        FAILED + "; the lock dies with its holder",
    ),
    "test_split": (
        "split",
        "unusable --out, bad options, re-split with other ratios, kill -9 while writing",
        FAILED + "; re-split leaves no old file; kill: earlier split intact",
    ),
}


def run(xml: Path) -> tuple[list[tuple[str, str]], float, str]:
    """Run the tests: ``[(module, outcome)]``, seconds, pytest's summary line."""
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "tests/robustness", "-p", "no:cacheprovider", f"--junitxml={xml}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - start
    cases = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        # classname: tests.robustness.test_x (.TestClass): the module is the test_ part
        module = next((p for p in case.get("classname", "").split(".") if p.startswith("test_")), "")
        tags = {child.tag for child in case}
        outcome = "failed" if tags & {"failure", "error"} else "skipped" if "skipped" in tags else "handled"
        cases.append((module, outcome))
    lines = proc.stdout.strip().splitlines()
    return cases, seconds, lines[-1] if lines else ""


def table(cases: list[tuple[str, str]], seconds: float, summary: str) -> str:
    counts = Counter(cases)
    rows = [
        "| class | what is tried | cases | handled | failed | skipped | handled means |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for module, (name, tried, means) in CLASSES.items():
        n = sum(v for (m, _), v in counts.items() if m == module)
        if not n:
            rows.append(f"| {name} | {tried} | - | - | - | - | (tests/robustness/{module}.py not present yet) |")
            continue
        rows.append(
            f"| {name} | {tried} | {n} | {counts[module, 'handled']} | {counts[module, 'failed']} | "
            f"{counts[module, 'skipped']} | {means} |"
        )
    other = sorted({m for m, _ in cases} - set(CLASSES))
    for module in other:
        n = sum(v for (m, _), v in counts.items() if m == module)
        rows.append(
            f"| {module} | | {n} | {counts[module, 'handled']} | {counts[module, 'failed']} | "
            f"{counts[module, 'skipped']} | |"
        )
    return "\n".join(
        [
            "# Robustness: hostile inputs, tampered files, interrupted and concurrent runs",
            "",
            f"Regenerate with `{COMMAND}` (runs `pytest tests/robustness` with a JUnit report and counts its",
            "cases per test module, one module per class). A case is handled when its test passes.",
            "",
            commit_line(),
            "",
            *rows,
            "",
            f"pytest: {summary} ({seconds:.0f} s wall, this machine).",
            "",
        ]
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cases, seconds, summary = run(Path(tmp) / "junit.xml")
    OUT.write_text(table(cases, seconds, summary))
    print(OUT.read_text())


if __name__ == "__main__":
    main()
