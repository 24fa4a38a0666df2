"""``rechash compare``: A/B-evaluate binary codes against float baselines and write the report."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from rechash.cli.app import app
from rechash.cli.common import InputOptions, command_threads, kernel_notice, quiet, reads_interactions, threads_option


def _ints(text: str, option: str) -> list[int]:
    from rechash.errors import DataError

    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise DataError(f"{option}: expected comma-separated integers, got {text!r}") from None


@app.command("compare")
@reads_interactions
def compare_cmd(
    train: Path = typer.Argument(..., help="Training interactions (any supported format)."),
    valid: Path = typer.Option(
        ..., "--valid", help="Validation interactions: ALS tuning, early stopping, re-ranker training."
    ),
    test: Path = typer.Option(..., "--test", help="Test interactions: read once, for the metrics."),
    report: Path = typer.Option(..., "--report", help="Directory for report.md, report.json and the PNG plots."),
    bits: int = typer.Option(64, "--bits", help="Code length of the rechash arms."),
    format: str = typer.Option(None, "--format", help="Input format (detected when omitted)."),
    k: int = typer.Option(20, "--k", help="Cut-off K of the metrics."),
    candidates: int = typer.Option(
        200, "--candidates", help="Hamming (and ALS) candidates per user before re-ranking."
    ),
    learned_model: str = typer.Option("logistic", "--learned-model", help="Learned re-ranker: logistic or hgb."),
    radius: str = typer.Option(
        "auto",
        "--radius",
        help="Fixed radii of the rechash radius curve, e.g. 12,16,20; "
        "'auto' (radii giving ~50/200/1000 candidates) or 'none'.",
    ),
    bits_sweep: str = typer.Option(
        "", "--bits-sweep", help="Extra code lengths to train for the bits curve, e.g. 16,32,128 (none by default)."
    ),
    annoy_trees: int = typer.Option(10, "--annoy-trees", help="Annoy n_trees."),
    annoy_search_k: int = typer.Option(2000, "--annoy-search-k", help="Annoy search_k of the summary arm."),
    annoy_sweep: str = typer.Option(
        "250,500,1000,2000,5000,10000,20000", "--annoy-sweep", help="search_k values of the Annoy curve."
    ),
    tune_als: bool = typer.Option(
        True, "--tune-als/--no-tune-als", help="Tune ALS on valid (else rechash.als.fit.ALS_DEFAULTS)."
    ),
    bpr: bool = typer.Option(False, "--bpr/--no-bpr", help="Add a BPR exact arm (slow: one thread)."),
    rechash_arms: bool = typer.Option(
        True, "--rechash/--no-rechash", help="Train the towers and add the rechash arms."
    ),
    teacher: bool = typer.Option(True, "--teacher/--no-teacher", help="Distil the towers from the tuned ALS."),
    epochs: int = typer.Option(None, "--epochs", help="Maximum tower epochs (the model's default when omitted)."),
    threads: int = threads_option(),
    latency_sample: int = typer.Option(300, "--latency-sample", help="Users timed one by one for latency."),
    seed: int = typer.Option(0, "--seed"),
    name: str = typer.Option(None, "--name", help="Dataset name shown in the report (default: TRAIN's folder)."),
    title: str = typer.Option(None, "--title", help="Report title."),
    save_model: Path = typer.Option(
        None,
        "--save-model",
        help="Also save the rechash model directory here: `rechash candidates DIR` re-creates the default arm's "
        "lists (rechash + learned, or + dot when the fit kept no learned re-ranker).",
    ),
    *,
    inputs: InputOptions,
) -> None:
    """Run the arms on the same users, print the summary table and write the report."""
    import shlex
    import sys

    from rechash.data import load_many
    from rechash.evaluation.pipeline import CompareConfig, run_compare
    from rechash.evaluation.report import markdown_table, write_report

    start = time.perf_counter()
    with command_threads(threads) as n_threads:
        kernel_notice("data", "search")
        train_set, valid_set, test_set = load_many([train, valid, test], format=format, **inputs.loader_options())
        hasher_options = {} if epochs is None else {"epochs": epochs}
        cfg = CompareConfig(
            k=k,
            bits=bits,
            seed=seed,
            threads=n_threads,
            tune_als=tune_als,
            annoy_trees=annoy_trees,
            annoy_search_k=annoy_search_k,
            annoy_sweep=tuple(_ints(annoy_sweep, "--annoy-sweep")),
            bpr=bpr,
            rechash=rechash_arms,
            teacher=teacher,
            hasher_options=hasher_options,
            n_candidates=candidates,
            learned_model=learned_model,
            radius_sweep=None if radius == "auto" else () if radius == "none" else tuple(_ints(radius, "--radius")),
            bits_sweep=tuple(_ints(bits_sweep, "--bits-sweep")),
            latency_sample=latency_sample,
            save_model=None if save_model is None else str(save_model),
        )
        dataset = name or Path(train).resolve().parent.name

        def say(msg: str) -> None:
            if not quiet():
                typer.echo(f"[{time.perf_counter() - start:6.1f}s] {msg}", err=True)

        result = run_compare(train_set, valid_set, test_set, cfg, dataset=dataset, progress=say)
    result.meta["wall_seconds"] = time.perf_counter() - start
    command = "rechash " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["compare"] else None
    paths = write_report(result, report, title=title or f"rechash vs float baselines on {dataset}", command=command)
    summary = result.summary()
    cols = ["arm", f"Recall@{k}", f"NDCG@{k}", f"HR@{k}", "bytes/item", "p50 ms", "p99 ms", "users/s"]
    typer.echo(
        markdown_table(summary[cols], {"bytes/item": ".0f", "p50 ms": ".3f", "p99 ms": ".3f", "users/s": ",.0f"})
    )
    typer.echo(f"\nreport: {paths['markdown']} ({time.perf_counter() - start:.0f} s in all)")
