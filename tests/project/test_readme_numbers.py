"""Every measured number in README.md appears in the committed results file its block cites.

The README is cut into blocks: a paragraph, one list item (with its continuation lines) or a
whole table. A block cites the files under ``experiments/`` that it links to in Markdown
(``[text](experiments/results/x.md)``); a table also cites the links of the paragraph just above
it, which introduces it. Fenced code and the ``## Architecture`` section (the code layout, no
measurements) are not checked.

The numbers of a block are: decimals (``0.2656``, ``1.46``), percentages (``14.4%``), integers
of three or more digits (``2,107``, ``6,039``), integers with a magnitude (``800k``, ``1M``) and
integers with a unit (``ms``, ``s``, ``x``, ``bytes``, ``GB``, ``MiB``, ``h``, ``minutes``).
Each must appear in one of the cited files as a number token: thousands separators and signs
are ignored (``2,107`` = ``2107``, ``-0.0021`` = ``0.0021``), and a README value may be the
file's value rounded to fewer decimals (``0.648`` for ``0.6477``, ``16.8`` for ``16.766``), never
the other way. A number in a block that cites no file fails unless the allow-list covers it.

The allow-list (not measurements), the same in every block:
- anything inside inline code (``--patience 3``, ``max(2K, 200)``): commands, options, code;
- versions (``2.13.0``), and numbers that are part of a name or a parameter: glued to a letter
  or ``@``/``^``/``/``/``.``/``=`` (``ml-100k``, ``Recall@20``, ``top-200``, ``2^30``, ``k=200``);
- powers of two from 128 up (code lengths, batch sizes, negatives, catalog caps: 128 ... 8,192);
- ``CONFIG``: the library's defaults that the prose states in words, each with where it is set.

A number can pass by coincidence (the same value elsewhere in a cited file): the check catches a
number that was changed, rounded wrongly, derived or left without a source, not a wrong pairing.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
README = ROOT / "README.md"
SKIPPED_SECTIONS = {"## Architecture"}

# Library defaults and definitions the prose states in words, with where they are set. Not
# measurements; a key matches the number as written, with its unit when it has one.
CONFIG = {
    "200": "the Hamming pool: max(2K, 200) candidates; the learned re-ranker's TRAIN_POOL (rerank.pool)",
    "100": "neighbours per item of the learned re-ranker's item-kNN / EASE (rerank.pool.ITEM_NEIGHBOURS)",
    "20%": "validation users the learned re-ranker holds out for early stopping (rerank.pool, holdout=0.2)",
    "10%": "users held out as validation without --valid (hasher.sampling.holdout_mask, share=0.1)",
    "500": "the fewest of them (holdout_mask, low=500)",
    "10,000": "the most of them (holdout_mask, high=10_000) and the validation users scored (eval_users)",
    "8 bytes": "a 64-bit code: 64 / 8 bytes per item",
}

LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`[^`]*`")
UNITS = ("ms", "s", "x", "bytes", "GB", "MiB", "h", "minutes")
# a number token: not glued to a name, a path, a version or a parameter on its left,
# not followed by more digits of a version or by an exponent on its right
NUMBER = re.compile(
    r"(?<![\w@^/.=])(?<![A-Za-z]-)"
    r"(?P<int>\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?P<dec>\.\d+)?(?!\.\d|\d|e[-+]?\d)"
    r"(?P<mag>[kM](?![A-Za-z]))?"
    r"(?:(?P<pct>%)|\s?(?P<unit>" + "|".join(UNITS) + r")(?![\w-]))?"
)


def blocks(text: str) -> list[tuple[int, str, list[str]]]:
    """(first line number, block text, cited paths) for every checked block of a README text."""
    out: list[tuple[int, str, list[str]]] = []
    current: list[str] = []
    start = 0
    kind = None  # "para" | "item" | "table"
    fenced = skipping = False
    previous_links: list[str] = []  # links of the last paragraph, for the table below it

    def flush():
        nonlocal current, kind, previous_links
        if current:
            body = "\n".join(current)
            links = [t for _, t in LINK.findall(body)]
            if kind == "table":
                links = links + previous_links
            out.append((start, body, links))
            previous_links = links if kind != "table" else []
        current, kind = [], None

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            fenced = not fenced
            continue
        if fenced:
            continue
        if line.startswith("#"):
            flush()
            previous_links = []
            if line.startswith("## "):
                skipping = stripped in SKIPPED_SECTIONS
            continue
        if skipping:
            continue
        if not stripped:
            flush()
            continue
        starts_item = re.match(r"(?:[-*]|\d+\.)\s", stripped) is not None and not line.startswith("  ")
        this = "table" if stripped.startswith("|") else ("item" if starts_item else None)
        if this == "table" and kind != "table":
            keep = previous_links if not current else [t for _, t in LINK.findall("\n".join(current))]
            flush()
            previous_links = keep
        elif this == "item" or (this is None and kind == "table"):
            flush()
        if not current:
            start, kind = number, this or "para"
        current.append(line)
    flush()
    return out


def numbers(block: str) -> list[str]:
    """The measured numbers of a block, as written (allow-listed ones left out)."""
    prose = LINK.sub(lambda m: m.group(1), CODE_SPAN.sub(" ", block))
    found = []
    for m in NUMBER.finditer(prose):
        whole, dec, mag, pct, unit = m.group("int"), m.group("dec"), m.group("mag"), m.group("pct"), m.group("unit")
        token = whole + (dec or "") + (mag or "") + (pct or "")
        digits = whole.replace(",", "")
        if not (dec or pct or mag or unit or len(digits) >= 3):
            continue
        if not (dec or pct or mag) and int(digits) >= 128 and int(digits) & (int(digits) - 1) == 0:
            continue  # a power of two: a code length, batch size, negatives or cap
        if (token + (" " + unit if unit else "")) in CONFIG:
            continue
        found.append(token)
    return found


def value(token: str) -> Decimal:
    token = token.rstrip("%").replace(",", "")
    scale = {"k": 1000, "M": 1_000_000}.get(token[-1:], 1)
    return Decimal(token.rstrip("kM")) * scale


def file_values(text: str) -> set[Decimal]:
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)
    return {value(m.group(0)) for m in re.finditer(r"\d+(?:\.\d+)?(?:[kM](?![A-Za-z]))?", text)}


def found_in(token: str, values: set[Decimal]) -> bool:
    """The token's value is in the file, or the file holds a more precise value rounding to it."""
    want = value(token)
    if want in values:
        return True
    places = -want.as_tuple().exponent if "." in token else 0
    if token.rstrip("%")[-1:] in "kM":
        return False
    quantum = Decimal(1).scaleb(-places)
    return any(
        -v.as_tuple().exponent > places and v.quantize(quantum, rounding=mode) == want
        for v in values
        for mode in (ROUND_HALF_UP, ROUND_HALF_EVEN)
    )


def problems(text: str, root: Path = ROOT) -> list[str]:
    """One line per README number without a committed source, and per cited file that is missing."""
    cache: dict[str, set[Decimal] | None] = {}
    bad = []
    for line, body, links in blocks(text):
        cited = [t.split("#")[0] for t in links if t.split("#")[0].startswith("experiments/")]
        for target in cited:
            if target not in cache:
                path = root / target
                cache[target] = file_values(path.read_text(encoding="utf-8")) if path.is_file() else None
            if cache[target] is None:
                bad.append(f"README.md:{line}: links to {target}, which does not exist")
        values = set().union(*(cache[t] for t in cited if cache[t] is not None))
        for token in numbers(body):
            if not cited:
                bad.append(f"README.md:{line}: {token} cites no results file (link one under experiments/)")
            elif not found_in(token, values):
                bad.append(f"README.md:{line}: {token} is not in {', '.join(cited)}")
    return bad


def test_readme_numbers_are_in_the_files_they_cite():
    bad = problems(README.read_text(encoding="utf-8"))
    assert not bad, "README numbers without a committed source:\n" + "\n".join(bad)


def test_cited_results_files_name_their_command_and_commit():
    """Each results file the README cites says how it was produced and on which commit."""
    text = README.read_text(encoding="utf-8")
    cited = sorted({t.split("#")[0] for _, _, links in blocks(text) for t in links if t.startswith("experiments/")})
    assert cited, "the README cites no results file"
    missing = []
    for target in cited:
        body = (ROOT / target).read_text(encoding="utf-8")
        head = "\n".join(body.splitlines()[:12])
        if not re.search(r"`(?:python experiments/|rechash )[^`]*`|```bash\s*\n\s*rechash ", head):
            missing.append(f"{target}: no command near the top")
        if not re.search(r"\bcommit\b\**:?\s+[0-9a-f]{7,40}\b", head, re.I):
            missing.append(f"{target}: no 'commit <hash>' near the top")
    assert not missing, "\n".join(missing)


# ---- the checker itself -------------------------------------------------------------------


def _write(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / "experiments" / "results" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_checker_accepts_sourced_numbers(tmp_path):
    _write(tmp_path, "r.md", "Recall 0.2656 (+14.4%), 2107 bytes, p50 1.463 ms, 16.766 ms, ~800k rows\n")
    readme = (
        "Recall 0.2656 (+14.4%), 2,107 bytes per item, p50 1.46 ms and 16.8 ms on ~800k rows "
        "([r](experiments/results/r.md)); `--k 250` and k=300 over ml-100k, 4096 negatives, 64 bits.\n"
    )
    assert problems(readme, tmp_path) == []


def test_checker_fails_on_a_changed_number(tmp_path):
    _write(tmp_path, "r.md", "Recall 0.2656\n")
    assert problems("Recall 0.2657 ([r](experiments/results/r.md)).\n", tmp_path) == [
        "README.md:1: 0.2657 is not in experiments/results/r.md"
    ]
    # a README value more precise than the file's is not a rounding of it
    _write(tmp_path, "s.md", "Recall 0.27\n")
    assert problems("Recall 0.266 ([s](experiments/results/s.md)).\n", tmp_path) == [
        "README.md:1: 0.266 is not in experiments/results/s.md"
    ]


def test_checker_fails_on_uncited_numbers_and_missing_files(tmp_path):
    bad = problems("About 950 tests, 4.2 minutes.\n\nSee [x](experiments/results/gone.md): 0.5.\n", tmp_path)
    assert bad == [
        "README.md:1: 950 cites no results file (link one under experiments/)",
        "README.md:1: 4.2 cites no results file (link one under experiments/)",
        "README.md:3: links to experiments/results/gone.md, which does not exist",
        "README.md:3: 0.5 is not in experiments/results/gone.md",
    ]


def test_tables_take_the_links_of_their_introduction(tmp_path):
    _write(tmp_path, "t.md", "| 0.2601 | 0.3262 |\n")
    readme = "Intro ([t](experiments/results/t.md)):\n\n| a | b |\n|---|---|\n| 0.2601 | 0.3262 |\n\nAfter: 0.3262.\n"
    assert problems(readme, tmp_path) == ["README.md:7: 0.3262 cites no results file (link one under experiments/)"]


@pytest.mark.parametrize("skipped", ["```\n0.1234\n```\n", "## Architecture\n0.1234 and 950 tests\n"])
def test_code_and_architecture_are_not_checked(tmp_path, skipped):
    assert problems(skipped, tmp_path) == []
