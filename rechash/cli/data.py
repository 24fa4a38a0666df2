"""``rechash data ...``: inspect and split interaction logs.

``PATH`` is a file in any supported format, a directory, ``synthetic`` (the embedded
default dataset) or a named public dataset (``ml-100k``, ``ml-1m``).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import typer

from rechash.cli.app import app
from rechash.cli.common import InputOptions, kernel_notice, reads_interactions

data_app = typer.Typer(help="Inspect and split interaction logs.")
app.add_typer(data_app, name="data")

_FORMAT = typer.Option(
    None, "--format", help="adjacency, movielens, recbole, csv, tsv or parquet (detected when omitted)."
)


def _load(path: str, format: str | None, inputs: InputOptions):
    from rechash.data import load

    kernel_notice("data")
    return load(path, format=format, **inputs.loader_options())


def _date(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d")


def format_stats(stats: dict) -> str:
    """The human-readable report of :meth:`Interactions.describe`."""
    act, pop, w = stats["user activity"], stats["item popularity"], stats["weights"]
    lines = [
        f"users: {stats['users']:,}",
        f"users with interactions: {stats['users with interactions']:,}",
        f"items: {stats['items']:,}",
        f"items with interactions: {stats['items with interactions']:,}",
        f"interactions: {stats['interactions']:,}",
        f"density: {stats['density']:.4%}",
        f"duplicates merged: {stats['duplicates merged']:,}",
        "dropped: " + (", ".join(f"{v:,} ({k})" for k, v in stats["dropped"].items()) or "0"),
        "weights: "
        + (
            "all 1 (implicit)"
            if w.get("binary")
            else f"min {w['min']:g}, mean {w['mean']:.3g}, max {w['max']:g}"
            if w
            else "none"
        ),
    ]
    if "timestamps" in stats:
        lines.append(f"timestamps: {_date(stats['timestamps']['min'])} .. {_date(stats['timestamps']['max'])} (UTC)")
    lines.append("user activity (interactions per active user): " + ", ".join(f"{k} {v:,.0f}" for k, v in act.items()))
    lines.append(
        f"item popularity: gini {pop['gini']:.3f}, top 1% of items hold {pop['top 1% share']:.1%}, "
        f"top 10% hold {pop['top 10% share']:.1%}, most popular item {pop['max']:,}"
    )
    for side in ("user", "item"):
        if f"{side} features" in stats:
            lines.append(f"{side} features: " + ", ".join(f"{n} ({k})" for n, k in stats[f"{side} features"].items()))
    return "\n".join(lines)


@data_app.command("stats")
@reads_interactions
def stats(
    path: str = typer.Argument(..., help="Interaction file, directory, 'synthetic', 'ml-100k' or 'ml-1m'."),
    format: str = _FORMAT,
    as_json: bool = typer.Option(False, "--json", help="Print the statistics as JSON."),
    *,
    inputs: InputOptions,
) -> None:
    """Users, items, interactions, density, duplicates and dropped counts,
    popularity skew and activity percentiles of an interaction log."""
    inter = _load(path, format, inputs)
    described = inter.describe()
    if as_json:
        typer.echo(json.dumps({"source": inter.source, **described}, indent=2))
    else:
        typer.echo(f"source: {inter.source}\n{format_stats(described)}")


@data_app.command("split")
@reads_interactions
def split(
    path: str = typer.Argument(..., help="Interaction file, directory, 'synthetic', 'ml-100k' or 'ml-1m'."),
    out: Path = typer.Option(..., "--out", help="Output directory."),
    method: str = typer.Option(
        "random", "--method", help="random (per user), leave-last (by timestamp) or time (global cut)."
    ),
    ratios: str = typer.Option("0.8,0.1,0.1", "--ratios", help="train,valid,test shares (random and time splits)."),
    n_test: int = typer.Option(1, "--n-test", help="leave-last: interactions per user in test."),
    n_valid: int = typer.Option(1, "--n-valid", help="leave-last: interactions per user in valid."),
    seed: int = typer.Option(0, "--seed", help="Random seed (random split)."),
    min_count: int = typer.Option(0, "--k-core", help="Apply k-core filtering first (0: off)."),
    threshold: float = typer.Option(None, "--threshold", help="Keep weight >= THRESHOLD as implicit feedback first."),
    out_format: str = typer.Option("auto", "--out-format", help="auto, adjacency or parquet."),
    format: str = _FORMAT,
    *,
    inputs: InputOptions,
) -> None:
    """Split into train/valid/test under OUT.

    Adjacency text (train.txt, valid.txt, test.txt) when ids are 0..n-1 integers
    and there are no weights or timestamps to lose; else Parquet (train.parquet,
    ...: user_id, item_id, weight[, timestamp], external ids). Also writes
    user_ids.parquet and item_ids.parquet (internal -> external id). Empty parts
    are not written. OUT is written atomically and replaces an earlier split there
    (nothing of it is left); a directory holding anything else is refused."""
    from rechash.data import k_core, save_split, split_leave_last, split_random, split_time, to_implicit
    from rechash.data.splits import check_split_dir
    from rechash.errors import DataError

    check_split_dir(out)
    inter = _load(path, format, inputs)
    if threshold is not None:
        inter = to_implicit(inter, threshold)
    if min_count > 0:
        inter = k_core(inter, min_count)
    try:
        shares = [float(x) for x in ratios.split(",")]
    except ValueError:
        raise DataError(f"--ratios: expected numbers like 0.8,0.1,0.1, got {ratios!r}") from None
    if method == "random":
        parts = split_random(inter, shares, seed=seed)
    elif method == "leave-last":
        parts = split_leave_last(inter, n_test=n_test, n_valid=n_valid)
    elif method == "time":
        parts = split_time(inter, shares)
    else:
        raise DataError(f"--method: expected random, leave-last or time, got {method!r}")
    written = save_split(parts, out, out_format)
    typer.echo(f"source: {inter.source}: {inter.n_users:,} users, {inter.n_items:,} items, {inter.nnz:,} interactions")
    typer.echo(
        f"duplicates merged: {inter.duplicates_merged:,}; dropped: "
        + (", ".join(f"{v:,} ({k})" for k, v in inter.dropped.items()) or "0")
    )
    for name, part in zip(("train", "valid", "test"), parts):
        typer.echo(f"{name}: {part.nnz:,} interactions, {int((part.matrix.getnnz(axis=1) > 0).sum()):,} users")
    typer.echo("wrote: " + ", ".join(str(p) for p in written))
