"""Reports of a comparison: Markdown (readable without the code), JSON, and PNG plots.

:func:`write_report` writes into a directory:

- ``report.md``: the summary table per arm, the paired differences against the baseline
  (mean, bootstrap 95% interval, Wilcoxon and paired-t p-values), candidate recall by
  candidate-set size, the sweep table, the plots, each arm's parameters and the
  definitions of every column;
- ``report.json``: the same numbers (:meth:`ComparisonResult.to_dict`);
- ``recall_vs_candidates.png``, ``recall_vs_latency.png``, ``bytes_per_item.png``
  (built by :mod:`rechash.evaluation.plots`; skipped, with one warning line naming the
  ``report`` extra, when matplotlib is not installed).

Plots use matplotlib's object API on an Agg canvas (no display, no global backend change).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rechash.errors import MissingExtraError, require

log = logging.getLogger(__name__)

#: Plot file stem -> the alt text the Markdown report gives it (``{k}``: the cut-off K).
PLOTS = {
    "recall_vs_candidates": "Candidate recall and Recall@{k} against candidate-set size",
    "recall_vs_latency": "Recall@{k} against latency",
    "bytes_per_item": "Index bytes per item",
}


def _fmt(value: Any, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    return str(value)


def markdown_table(frame: pd.DataFrame, floatfmt: str | dict[str, str] = ".4f", index: bool = False) -> str:
    """A GitHub Markdown table of ``frame`` (no extra dependency); NaN prints as an en dash.

    ``floatfmt`` is one format for every float column or a ``{column: format}`` mapping
    (columns not named use ``".4f"``).
    """
    if index:
        frame = frame.reset_index()
    cols = [str(c) for c in frame.columns]
    fmts = [floatfmt.get(c, ".4f") if isinstance(floatfmt, dict) else floatfmt for c in cols]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in frame.itertuples(index=False):
        cells = [_fmt(v, f).replace("|", "\\|") for v, f in zip(row, fmts)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


_SUMMARY_FMT = {
    "bytes/item": ".0f",
    "p50 ms": ".3f",
    "p99 ms": ".3f",
    "users/s": ",.0f",
    "train s": ".1f",
    "build s": ".2f",
}


def _p(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "<1e-300" if value == 0 else (f"{value:.2g}" if value < 0.001 else f"{value:.3f}")


def _paired_table(paired: pd.DataFrame) -> str:
    if paired.empty:
        return "_No paired comparison (a single arm)._"
    rows = []
    for r in paired.itertuples(index=False):
        rows.append(
            {
                "arm": r.arm,
                "vs": r.baseline,
                "metric": r.metric,
                "baseline": f"{r.mean_baseline:.4f}",
                "arm mean": f"{r.mean_arm:.4f}",
                "diff": f"{r.diff:+.4f}",
                "95% CI": f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
                "rel.": "–" if math.isnan(r.rel_diff) else f"{r.rel_diff:+.1%}",
                "Wilcoxon p": _p(r.wilcoxon_p),
                "t-test p": _p(r.ttest_p),
                "users": f"{r.n_users:,}",
            }
        )
    return markdown_table(pd.DataFrame(rows))


def _paired_headline(paired: pd.DataFrame, metrics: Sequence[str]) -> str:
    """One row per (arm, baseline): difference, 95% interval and Wilcoxon p of ``metrics``."""
    rows = []
    for (arm, base), grp in paired.groupby(["arm", "baseline"], sort=False):
        row: dict[str, str] = {"arm": arm, "vs": base}
        for m in metrics:
            hit = grp[grp.metric == m]
            if hit.empty:
                continue
            r = hit.iloc[0]
            row[f"Δ {m}"] = f"{r['diff']:+.4f} ({'–' if math.isnan(r.rel_diff) else format(r.rel_diff, '+.1%')})"
            row[f"{m} 95% CI"] = f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]"
            row[f"{m} p"] = _p(r.wilcoxon_p)
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))


def plot_recall_vs_candidates(result, path: Path) -> Path:
    """Save :func:`rechash.evaluation.plots.figure_recall_vs_candidates` to ``path``."""
    return _plot("recall_vs_candidates", result, path)


def plot_recall_vs_latency(result, path: Path) -> Path:
    """Save :func:`rechash.evaluation.plots.figure_recall_vs_latency` to ``path``."""
    return _plot("recall_vs_latency", result, path)


def plot_bytes_per_item(result, path: Path) -> Path:
    """Save :func:`rechash.evaluation.plots.figure_bytes_per_item` to ``path``."""
    return _plot("bytes_per_item", result, path)


def _plot(name: str, result, path: Path) -> Path:
    from rechash.evaluation import plots

    _save_figure(plots.FIGURES[name](result), Path(path))
    return Path(path)


_DEFINITIONS = """\
- **Recall@K**: test items in the top K / the user's test items. **NDCG@K**: binary gains,
  log2 discounts, ideal DCG over min(|test|, K). **HR@K**: share of users with at least one
  hit. **MRR@K**: 1 / rank of the first hit in the top K (0 without a hit). Means over the
  evaluated users (every user with at least one test item; the same users for every arm).
- **coverage@K**: share of the catalog that appears in at least one user's top K.
- **cand. recall@C**: test items inside the first C candidates of the arm's first stage
  (for a re-ranked arm: before re-ranking) / the user's test items.
- **overlap@K**: |top K ∩ reference top K| / K against the reference arm (exact float search),
  i.e. how closely an approximate index reproduces exact search.
- **bytes/item**: bytes of the serving index (vectors, trees or codes, plus the re-ranker's
  item vectors when an arm re-ranks) divided by the number of items.
- **p50/p99 ms**: wall-clock latency of one-user `recommend` calls over a seeded sample of
  users (online serving; BLAS/OpenMP limited to one thread). **users/s**: evaluated users /
  wall time of one batch call over all of them (the arm's own thread settings).
- **train s / build s**: fitting time of the model / build time of the index.
- **Paired differences**: per user, arm minus baseline on the same users; mean with a
  percentile bootstrap 95% interval (users resampled, seeded); Wilcoxon signed-rank
  p-value (zero differences dropped) and paired t-test p-value (scipy), both two-sided,
  not corrected for multiple comparisons.
"""


def render_markdown(
    result, title: str, command: str | None = None, notes: Sequence[str] = (), plots_skipped: str | None = None
) -> str:
    """The Markdown report text (plots referenced by their file names; when
    ``plots_skipped`` gives a reason, that line stands in for them)."""
    meta = result.meta
    k = result.k
    lines = [f"# {title}", ""]
    if command:
        lines += ["Reproduce with:", "", "```bash", command, "```", ""]
    facts = []
    if meta.get("dataset"):
        facts.append(f"**Data**: {meta['dataset']}")
    facts.append(f"**Users evaluated**: {meta.get('n_users', 0):,}; **items**: {result.n_items:,}")
    facts.append(
        "**Protocol**: "
        + meta.get("protocol", f"full ranking over all items, the training items excluded, metrics at K={k}")
    )
    if meta.get("machine"):
        facts.append(f"**Machine**: {meta['machine']}")
    if meta.get("als_params"):
        tuned = meta.get("als_tuning")
        how = (
            f"chosen on valid over {len(tuned)} grid points in {meta.get('als_tuning_seconds', 0):.0f} s"
            if tuned
            else "given"
        )
        facts.append(f"**ALS**: {meta['als_params']} ({how}; not included in train s)")
    if meta.get("wall_seconds"):
        facts.append(f"**Wall time of the whole comparison**: {meta['wall_seconds']:.0f} s")
    lines += ["  \n".join(facts), ""]
    lines += [f"- {n}" for n in notes]
    if notes:
        lines.append("")
    summary = result.summary()
    lines += ["## Summary", "", markdown_table(summary, _SUMMARY_FMT), ""]
    lines += [f"## Paired differences (baseline: {result.baseline})", ""]
    if result.paired.empty:
        lines += [_paired_table(result.paired), ""]
    else:
        lines += [
            f"Per-user differences (arm − vs) on the same {meta.get('n_users', 0):,} users: mean "
            f"(relative), bootstrap 95% interval, Wilcoxon signed-rank p.",
            "",
            _paired_headline(result.paired, [f"recall@{k}", f"ndcg@{k}"]),
            "",
            "<details><summary>Every paired metric (HR, MRR, candidate recall; paired t-test)</summary>",
            "",
            _paired_table(result.paired),
            "",
            "</details>",
            "",
        ]
    curves = [(a.name, a.candidate_recall) for a in result.arms if a.in_summary and a.candidate_recall]
    if curves:
        sizes = result.candidate_sizes
        table = pd.DataFrame([{"arm": n, **{f"@{c}": cr.get(c) for c in sizes}} for n, cr in curves])
        lines += ["## Candidate recall by candidate-set size", "", markdown_table(table), ""]
    sweeps = result.sweeps()
    if not sweeps.empty:
        keep = [c for c in sweeps.columns if c not in ("train s", f"coverage@{k}") and not c.startswith("cand. recall")]
        lines += ["## Sweeps", "", markdown_table(sweeps[keep], _SUMMARY_FMT), ""]
    lines += ["## Plots", ""]
    if plots_skipped:
        lines += [f"_Plots not drawn: {plots_skipped}_", ""]
    else:
        for stem, alt in PLOTS.items():
            lines += [f"![{alt.format(k=k)}]({stem}.png)", ""]
    lines += ["## Arms", ""]
    for a in result.arms:
        if a.in_summary:
            params = ", ".join(f"{key}={val}" for key, val in a.params.items()) or "–"
            lines.append(f"- **{a.name}**: {params}")
    lines += ["", "## Definitions", "", _DEFINITIONS]
    return "\n".join(lines)


def rerender(json_path: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    """Re-render a report (Markdown, JSON, plots) from its ``report.json``, without re-running it."""
    from rechash.evaluation.compare import ComparisonResult

    doc = json.loads(Path(json_path).read_text(encoding="utf-8"))
    result = ComparisonResult.from_dict(doc)
    return write_report(
        result, out_dir or Path(json_path).parent, doc.get("title", "rechash comparison"), doc.get("command")
    )


def _save_figure(fig, path: Path) -> None:
    from rechash.evaluation.plots import save
    from rechash.io.atomic import atomic_write

    atomic_write(Path(path), lambda tmp: save(fig, tmp, format=Path(path).suffix.lstrip(".") or "png"))


def write_report(
    result,
    out_dir: str | Path,
    title: str = "rechash comparison",
    command: str | None = None,
    notes: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the three PNG plots into ``out_dir``, each
    file atomically (:func:`rechash.io.atomic.atomic_write`).

    Without matplotlib (the ``report`` extra) the plots are skipped: one line naming the
    extra to install goes to ``progress`` (else to this module's logger, as a warning),
    the Markdown says so in place of the plots, and the Markdown and JSON are written all
    the same. Returns ``{"markdown", "json", <plot stem>...}`` -> path (no plot keys
    when they were skipped)."""
    from rechash.io.atomic import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skipped: str | None = None
    try:
        require("matplotlib", "report", "Report plots")
    except MissingExtraError as exc:
        skipped = f"matplotlib is not installed (pip install 'rechash[{exc.extra}]')."
        message = f"{exc}; writing report.md and report.json without the plots"
        if progress is not None:
            progress(message)
        else:
            log.warning(message)
    paths: dict[str, Path] = {}
    if skipped is None:
        for stem in PLOTS:
            paths[stem] = _plot(stem, result, out / f"{stem}.png")
    md = out / "report.md"
    text = render_markdown(result, title, command, notes, plots_skipped=skipped)
    atomic_write(md, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    js = out / "report.json"
    doc = result.to_dict()
    doc["title"] = title
    if command:
        doc["command"] = command
    text = json.dumps(doc, indent=1, allow_nan=False)
    atomic_write(js, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return {"markdown": md, "json": js, **paths}
