"""The report's figures, built as matplotlib :class:`~matplotlib.figure.Figure` objects.

Each ``figure_*`` function returns a figure on its own Agg canvas (matplotlib's object
API: no display, no pyplot state, no global backend or rcParams change); the report
saves them (:func:`rechash.evaluation.report.write_report`). Conventions, so that a
figure reads at a glance:

- every figure and every panel has a title; every axis a label with its unit;
- one quantity per axis (candidate recall and Recall@K get separate panels);
- arms are told apart by a legend (one colour and marker per arm or sweep), never by
  text placed next to the points, so no label can overlap another;
- a log axis is used only when the values span at least a factor 4, and then carries
  plain tick labels at 1-2-3-5 values (``0.2``, ``0.3``, ``0.5``, ``1`` ms), so at least two ticks
  are labelled; otherwise the axis is linear;
- sizes are bars on a linear axis with the value printed at each bar.

Needs the ``report`` extra (matplotlib).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rechash.errors import require

#: Font sizes and line widths of every report figure (applied while a figure is built).
STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "legend.fontsize": 9,
    "figure.titlesize": 13,
    "lines.linewidth": 1.8,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
DPI = 110
_MARKERS = ("*", "D", "s", "^", "v", "P", "X", "p", "h", "<", ">", "o")


@contextmanager
def _style() -> Iterator[None]:
    mpl = require("matplotlib", "report", "Report plots")
    with mpl.rc_context(STYLE):
        yield


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, target, format: str = "png") -> None:
    """Write ``fig`` to ``target`` (a path or a binary file) under the report style (ticks
    created at drawing time get the same fonts)."""
    with _style():
        fig.savefig(target, format=format, dpi=DPI)


def _title(result, text: str) -> str:
    dataset = result.meta.get("dataset", "")
    return f"{text} ({dataset})" if dataset else text


def _tick_text(v: float) -> str:
    return f"{v:,.0f}" if v >= 1 and float(v).is_integer() else f"{v:g}"


def log_ticks(lo: float, hi: float, max_ticks: int = 8) -> list[float]:
    """Plain tick values in ``[lo, hi]``: the densest of the 1-2-3-5, 1-2-5, 1-3 and
    powers-of-ten grids with at most ``max_ticks`` values (powers of ten thinned further)."""
    if not (lo > 0 and hi >= lo):
        return []
    ticks: list[float] = []
    for subs in ((1, 2, 3, 5), (1, 2, 5), (1, 3), (1,)):
        ticks = [
            float(f"{m * 10.0**e:.12g}")
            for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
            for m in subs
            if lo <= m * 10.0**e <= hi
        ]
        if len(ticks) <= max_ticks:
            return ticks
    step = math.ceil(len(ticks) / max_ticks)
    return ticks[::step]


def _set_log_axis(
    ax, which: str, values: Sequence[float], ticks: Sequence[float] | None = None, pad: float = 1.25
) -> bool:
    """Put ``values`` on a log ``which`` axis ("x" or "y") with labelled plain ticks when they
    span a factor 4 or more (``ticks`` when given, else :func:`log_ticks`); else leave it linear.
    Returns whether the axis is logarithmic."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    vals = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    if len(vals) < 2 or max(vals) / min(vals) < 4:
        return False
    lo, hi = min(vals) / pad, max(vals) * pad
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)
    shown = [t for t in (ticks or ()) if lo <= t <= hi] if ticks else []
    if len(shown) < 2 or len(shown) > 10:
        shown = log_ticks(lo, hi)
    axis.set_major_locator(FixedLocator(shown))
    axis.set_major_formatter(FuncFormatter(lambda v, _: _tick_text(v)))
    axis.set_minor_locator(LogLocator(subs="auto"))
    axis.set_minor_formatter(NullFormatter())
    return True


def _legend_below(ax, ncol: int = 1) -> None:
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol, frameon=False, handlelength=2.2)


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def curves(result) -> dict[str, list]:
    """Group -> arms of that group sorted by their (first) sweep value."""
    groups: dict[str, list] = {}
    for a in result.arms:
        if a.group is not None:
            groups.setdefault(a.group, []).append(a)
    for arms in groups.values():
        arms.sort(key=lambda a: tuple(_num(v) for v in a.sweep.values()))
    return groups


def _sweep_range(arms) -> str:
    """``search_k 250 → 20,000`` for a group's legend entry (its first sweep key)."""
    keys = [k for a in arms for k in a.sweep]
    if not keys:
        return ""
    key = keys[0]
    vals = [a.sweep[key] for a in arms if key in a.sweep]
    fmt = lambda v: _tick_text(v) if isinstance(v, (int, float)) else str(v)  # noqa: E731
    return f"{key} {fmt(vals[0])} → {fmt(vals[-1])}" if len(vals) > 1 else f"{key} {fmt(vals[0])}"


def figure_recall_vs_candidates(result):
    """Left: candidate recall@C of each first stage against the candidate-set size C.
    Right (when some arm sweeps its candidate count): Recall@K after re-ranking C
    candidates, with the baseline's Recall@K as a dashed line."""
    k = result.k
    with _style():
        stages: list[tuple[list[str], dict[int, float]]] = []  # arms sharing a first stage share a curve
        for a in result.arms:
            if a.in_summary and a.candidate_recall:
                same = next((c for c in stages if c[1] == a.candidate_recall), None)
                if same:
                    same[0].append(a.name)
                else:
                    stages.append(([a.name], a.candidate_recall))
        groups = curves(result)
        reranked = {
            g: [
                (a.sweep["candidates"], a.means().get(f"recall@{k}", math.nan)) for a in arms if "candidates" in a.sweep
            ]
            for g, arms in groups.items()
        }
        reranked = {g: sorted(p) for g, p in reranked.items() if len(p) > 1}
        two = bool(reranked)
        fig = _figure(12.0 if two else 7.0, 6.4)
        axes = fig.subplots(1, 2) if two else [fig.add_subplot()]
        fig.suptitle(_title(result, "Recall against candidate-set size"))

        ax = axes[0]
        xs_all: list[float] = []
        for i, (names, curve) in enumerate(stages):
            xs = sorted(curve)
            xs_all += xs
            n = len(names) - 1
            label = names[0] if n == 0 else f"{names[0]} (first stage of {n} re-ranked arm{'s' if n > 1 else ''})"
            ax.plot(xs, [curve[x] for x in xs], marker=_MARKERS[(i + 1) % len(_MARKERS)], ms=5, label=label)
        ax.set_title("Candidate recall of the first stage")
        ax.set_xlabel("candidate-set size C (candidates per user)")
        ax.set_ylabel("candidate recall@C (share of test items among the C)")
        if stages:
            _set_log_axis(ax, "x", xs_all, result.candidate_sizes)
            ax.set_ylim(0, min(1.0, max(v for _, c in stages for v in c.values() if math.isfinite(v)) * 1.08 + 0.02))
            ax.grid(True, which="major", alpha=0.35)
            ax.grid(True, which="minor", alpha=0.12)
            _legend_below(ax)
        else:
            _empty(ax, "no candidate recall measured")

        if two:
            ax = axes[1]
            xs_all = []
            for i, (g, pts) in enumerate(reranked.items()):
                xs, ys = zip(*pts)
                xs_all += xs
                ax.plot(
                    xs,
                    ys,
                    marker="s",
                    ms=5,
                    color=f"C{(i + len(stages)) % 10}",
                    label=f"{g}: {_sweep_range(groups[g])}",
                )
            base = next((a for a in result.arms if a.name == result.baseline), None)
            base_recall = base.means().get(f"recall@{k}", math.nan) if base is not None else math.nan
            if math.isfinite(base_recall):
                ax.axhline(base_recall, ls="--", color="0.35", lw=1.2, label=f"{base.name} (baseline)")
            ax.set_title(f"Recall@{k} after re-ranking C candidates")
            ax.set_xlabel("candidates re-ranked C (candidates per user)")
            ax.set_ylabel(f"Recall@{k} (share of test items in the top {k})")
            _set_log_axis(ax, "x", xs_all, sorted(set(xs_all)))
            ys_all = [y for pts in reranked.values() for _, y in pts if math.isfinite(y)]
            top = max([*ys_all, base_recall if math.isfinite(base_recall) else 0.0, 1e-3])
            ax.set_ylim(0, top * 1.2)  # from 0: a flat curve reads as flat
            ax.grid(True, which="major", alpha=0.35)
            ax.grid(True, which="minor", alpha=0.12)
            _legend_below(ax)
    return fig


def figure_recall_vs_latency(result):
    """Recall@K against p50 latency per user: each sweep as a curve, every other summary arm
    as a point, told apart by the legend."""
    k = result.k
    with _style():
        fig = _figure(8.0, 6.4)
        ax = fig.add_subplot()
        fig.suptitle(_title(result, f"Recall@{k} against latency"))
        ax.set_title("higher is better, left is faster", color="0.35")
        xs_all: list[float] = []
        grouped: set[str] = set()
        color = 0
        n_entries = 0
        for g, arms in curves(result).items():
            pts = [(a.cost.latency_ms_p50, a.means().get(f"recall@{k}", math.nan)) for a in arms]
            pts = [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
            grouped.update(a.name for a in arms)
            if not pts:
                continue
            xs, ys = zip(*pts)
            xs_all += xs
            ax.plot(xs, ys, marker="o", ms=5, color=f"C{color % 10}", label=f"{g}: {_sweep_range(arms)}")
            color += 1
            n_entries += 1
        for i, a in enumerate(x for x in result.arms if x.name not in grouped and x.in_summary):
            x, y = a.cost.latency_ms_p50, a.means().get(f"recall@{k}", math.nan)
            if not (math.isfinite(x) and math.isfinite(y)):
                continue
            xs_all.append(x)
            marker = _MARKERS[i % len(_MARKERS)]
            ax.plot(
                [x],
                [y],
                ls="",
                marker=marker,
                ms=12 if marker == "*" else 8,
                color=f"C{color % 10}",
                markeredgecolor="white",
                markeredgewidth=0.6,
                label=a.name,
            )
            color += 1
            n_entries += 1
        ax.set_xlabel("latency per user, p50 (ms, one-user calls)")
        ax.set_ylabel(f"Recall@{k} (share of test items in the top {k})")
        if n_entries:
            _set_log_axis(ax, "x", xs_all)
            ax.grid(True, which="major", alpha=0.35)
            ax.grid(True, which="minor", alpha=0.12)
            _legend_below(ax, ncol=2 if n_entries > 3 else 1)
        else:
            _empty(ax, "no latency measured")
    return fig


def figure_bytes_per_item(result):
    """Serving-index bytes per item of every summary arm: horizontal bars on a linear axis,
    the value printed at each bar."""
    arms = [a for a in result.arms if a.in_summary and math.isfinite(_num(a.cost.bytes_per_item))]
    with _style():
        fig = _figure(8.0, 1.4 + 0.42 * max(len(arms), 2))
        ax = fig.add_subplot()
        ax.set_title(_title(result, "Index memory per item"))
        ax.set_xlabel("index bytes per item (serving memory / catalog size, bytes)")
        ax.set_ylabel("arm")
        if not arms:
            _empty(ax, "no index size measured")
            return fig
        vals = [float(a.cost.bytes_per_item) for a in arms]
        ax.barh(range(len(arms)), vals, color="#4C72B0", height=0.65)
        top = max(vals) if max(vals) > 0 else 1.0
        for i, v in enumerate(vals):
            ax.text(v + top * 0.01, i, f"{v:,.0f} B", va="center", fontsize=9)
        ax.set_yticks(range(len(arms)), [a.name for a in arms])
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.18)
        ax.grid(True, axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    return fig


#: File stem -> figure builder, in the order the report shows them.
FIGURES = {
    "recall_vs_candidates": figure_recall_vs_candidates,
    "recall_vs_latency": figure_recall_vs_latency,
    "bytes_per_item": figure_bytes_per_item,
}
