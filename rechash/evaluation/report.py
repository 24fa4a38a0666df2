"""Reports of a comparison: Markdown (readable without the code), JSON, and PNG plots.

:func:`write_report` writes into a directory:

- ``report.md``: the summary table per arm, the paired differences against the baseline
  (mean, bootstrap 95% interval, Wilcoxon and paired-t p-values), candidate recall by
  candidate-set size, the sweep table, the plots, each arm's parameters and the
  definitions of every column;
- ``report.json``: the same numbers (:meth:`ComparisonResult.to_dict`);
- ``recall_vs_candidates.png``, ``recall_vs_latency.png``, ``bytes_per_item.png``.

Plots use matplotlib's object API on an Agg canvas (no display, no global backend change).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from rechash.errors import require


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


def _figure(width: float = 6.4, height: float = 4.4):
    require("matplotlib", "report", "Report plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _plain_log_axis(axis, ticks: Sequence[float] | None = None) -> None:
    """Log-scaled axis labelled with plain numbers (``0.2``, ``1``, ``200``) instead of powers."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if ticks:
        axis.set_ticks(list(ticks))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _curves(result) -> dict[str, list]:
    """Group -> arms of that group sorted by their (first) sweep value."""
    groups: dict[str, list] = {}
    for a in result.arms:
        if a.group is not None:
            groups.setdefault(a.group, []).append(a)
    for g, arms in groups.items():
        arms.sort(key=lambda a: tuple(_num(v) for v in a.sweep.values()))
    return groups


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _sweep_label(a) -> str:
    return ", ".join(f"{k}={v}" for k, v in a.sweep.items())


def _finish_curves(fig, ax, title: str, result, path: Path) -> Path:
    """Title (with the dataset), grid and legend below the axes of a curve plot; save it."""
    dataset = result.meta.get("dataset", "")
    ax.set_title(f"{title} ({dataset})" if dataset else title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    fig.tight_layout()
    _save_figure(fig, path)
    return path


def plot_recall_vs_candidates(result, path: Path) -> Path:
    """Candidate recall against candidate-set size per summary arm, plus Recall@K of arms
    swept over their candidate count (``sweep={"candidates": C}``) as dashed curves."""
    fig = _figure(6.4, 5.6)
    ax = fig.add_subplot()
    curves: list[tuple[list[str], dict[int, float]]] = []  # arms sharing a first stage share a curve
    for a in result.arms:
        if a.in_summary and a.candidate_recall:
            same = next((c for c in curves if c[1] == a.candidate_recall), None)
            if same:
                same[0].append(a.name)
            else:
                curves.append(([a.name], a.candidate_recall))
    for names, curve in curves:
        xs = sorted(curve)
        label = names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} re-ranked arm{'s' if len(names) > 2 else ''})"
        ax.plot(xs, [curve[x] for x in xs], marker="o", ms=3, label=label)
    k = result.k
    for g, arms in _curves(result).items():
        pts = [(a.sweep["candidates"], a.means()[f"recall@{k}"]) for a in arms if "candidates" in a.sweep]
        if len(pts) > 1:
            xs, ys = zip(*sorted(pts))
            ax.plot(xs, ys, ls="--", marker="s", ms=3, label=f"{g}: Recall@{k} after re-ranking C")
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis, result.candidate_sizes)
    ax.set_xlabel("candidate-set size (items per user)")
    ax.set_ylabel(f"candidate recall@C (solid); Recall@{k} (dashed)")
    return _finish_curves(fig, ax, "Recall against candidates", result, path)


def plot_recall_vs_latency(result, path: Path) -> Path:
    """Recall@K against p50 latency per user: sweeps as curves (labelled), other arms as points."""
    fig = _figure(6.4, 5.6)
    ax = fig.add_subplot()
    k = result.k
    grouped = set()
    for g, arms in _curves(result).items():
        xs = [a.cost.latency_ms_p50 for a in arms]
        ys = [a.means()[f"recall@{k}"] for a in arms]
        (line,) = ax.plot(xs, ys, marker="o", ms=4, label=g)
        for j, (a, x, y) in enumerate(zip(arms, xs, ys)):
            offset = (3, -9) if j % 2 == 0 else (3, 4)  # alternate sides so neighbours do not collide
            ax.annotate(_sweep_label(a), (x, y), fontsize=6, xytext=offset, textcoords="offset points", color=line.get_color())
        grouped.update(a.name for a in arms)
    for a in result.arms:
        if a.name not in grouped and a.in_summary:
            ax.plot([a.cost.latency_ms_p50], [a.means()[f"recall@{k}"]], marker="*", ms=10, ls="", label=a.name)
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel("latency per user, p50 (ms, one-user calls)")
    ax.set_ylabel(f"Recall@{k}")
    return _finish_curves(fig, ax, f"Recall@{k} against latency", result, path)


def plot_bytes_per_item(result, path: Path) -> Path:
    """Serving-index bytes per item of every summary arm (log scale, values printed)."""
    arms = [a for a in result.arms if a.in_summary and not math.isnan(a.cost.bytes_per_item)]
    fig = _figure(6.4, 0.5 + 0.45 * max(len(arms), 1))
    ax = fig.add_subplot()
    vals = [a.cost.bytes_per_item for a in arms]
    ax.barh(range(len(arms)), vals, color="#4C72B0")
    for i, v in enumerate(vals):
        ax.text(v, i, f" {v:,.0f} B", va="center", fontsize=7)
    ax.set_yticks(range(len(arms)), [a.name for a in arms], fontsize=7)
    ax.invert_yaxis()
    if vals and max(vals) / max(min(vals), 1e-9) > 20:
        ax.set_xscale("log")
        ax.set_xlim(right=max(vals) * 4)
    else:
        ax.set_xlim(right=max(vals, default=1) * 1.25)
    ax.set_xlabel("index bytes per item (serving memory / catalog size)")
    fig.tight_layout()
    _save_figure(fig, path)
    return path


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


def render_markdown(result, title: str, command: str | None = None, notes: Sequence[str] = ()) -> str:
    """The Markdown report text (plots referenced by their file names)."""
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
        f"**Protocol**: {meta.get('protocol', f'full ranking over all items, the training items excluded, metrics at K={k}')}"
    )
    if meta.get("machine"):
        facts.append(f"**Machine**: {meta['machine']}")
    if meta.get("als_params"):
        tuned = meta.get("als_tuning")
        how = f"chosen on valid over {len(tuned)} grid points in {meta.get('als_tuning_seconds', 0):.0f} s" if tuned else "given"
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
    lines += [
        "## Plots",
        "",
        "![Recall against candidate-set size](recall_vs_candidates.png)",
        "",
        f"![Recall@{k} against latency](recall_vs_latency.png)",
        "",
        "![Index bytes per item](bytes_per_item.png)",
        "",
        "## Arms",
        "",
    ]
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
    return write_report(result, out_dir or Path(json_path).parent, doc.get("title", "rechash comparison"), doc.get("command"))


def _save_figure(fig, path: Path) -> None:
    from rechash.atomic import atomic_write

    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format=Path(path).suffix.lstrip(".") or "png"))


def write_report(
    result, out_dir: str | Path, title: str = "rechash comparison", command: str | None = None, notes: Sequence[str] = ()
) -> dict[str, Path]:
    """Write ``report.md``, ``report.json`` and the three PNG plots into ``out_dir``, each
    file atomically (:func:`rechash.atomic.atomic_write`)."""
    from rechash.atomic import atomic_write

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "recall_vs_candidates": plot_recall_vs_candidates(result, out / "recall_vs_candidates.png"),
        "recall_vs_latency": plot_recall_vs_latency(result, out / "recall_vs_latency.png"),
        "bytes_per_item": plot_bytes_per_item(result, out / "bytes_per_item.png"),
    }
    md = out / "report.md"
    text = render_markdown(result, title, command, notes)
    atomic_write(md, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    js = out / "report.json"
    doc = result.to_dict()
    doc["title"] = title
    if command:
        doc["command"] = command
    text = json.dumps(doc, indent=1, allow_nan=False)
    atomic_write(js, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return {"markdown": md, "json": js, **paths}
