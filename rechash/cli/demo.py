"""``rechash demo``: the whole pipeline on the embedded synthetic dataset, in minutes."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from rechash.cli.app import app
from rechash.cli.common import InputOptions, command_threads, kernel_notice, quiet, reads_interactions, threads_option


@app.command("demo")
@reads_interactions
def demo(
    data: str = typer.Option(
        "synthetic", "--data", help="A split directory, a train file beside valid/test, or 'synthetic'."
    ),
    report: Path = typer.Option(Path("rechash-demo"), "--report", help="Directory for the report and plots."),
    bits: int = typer.Option(64, "--bits", help="Code length."),
    epochs: int = typer.Option(None, "--epochs", help="Tower training epoch cap (default: the model's rule)."),
    max_seconds: float = typer.Option(
        120.0,
        "--max-seconds",
        help="Wall-clock cap of tower training, so the demo stays a demo (0: train to convergence).",
    ),
    threads: int = threads_option(),
    seed: int = typer.Option(0, "--seed"),
    *,
    inputs: InputOptions,
) -> None:
    """Train 64-bit codes, generate re-ranked candidates, run the ALS + Annoy float baseline,
    print the side-by-side summary and write the report (Markdown, JSON, PNG plots).

    A data set without a validation part is split 90/10 from its training part."""
    from rechash.data import load_split
    from rechash.data.splits import split_random
    from rechash.evaluation.pipeline import CompareConfig, run_compare
    from rechash.evaluation.report import markdown_table, write_report

    start = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet():
            typer.echo(f"[{time.perf_counter() - start:6.1f}s] {msg}", err=True)

    with command_threads(threads) as n_threads:
        kernel_notice("data", "search")
        split = load_split(data, **inputs.loader_options())
        train, valid, test = split.train, split.valid, split.test
        if valid.nnz == 0:
            sub = split_random(train, (0.9, 0.1), seed=seed)
            train, valid = sub.train, sub.test  # (train, test) ratios: the held-out part is the 10%
        say(f"{data}: {train.n_users:,} users, {train.n_items:,} items, {train.nnz:,} training interactions")
        hasher_options = {
            **({} if epochs is None else {"epochs": epochs}),
            **({"max_seconds": max_seconds} if max_seconds else {}),
        }
        cfg = CompareConfig(
            bits=bits,
            seed=seed,
            threads=n_threads,
            tune_als=False,
            annoy_sweep=(500, 2000, 10000),
            tower_annoy=False,
            als_learned=False,
            teacher=True,
            candidates_sweep=(),
            radius_sweep=(),
            hasher_options=hasher_options,
            latency_sample=200,
            n_boot=1000,
        )
        result = run_compare(train, valid, test, cfg, dataset=str(data), progress=say)
    paths = write_report(result, report, title=f"rechash demo on {data}", command=f"rechash demo --data {data}")
    summary = result.summary()
    k = cfg.k
    cols = ["arm", f"Recall@{k}", f"NDCG@{k}", "bytes/item", "p50 ms", "users/s"]
    typer.echo(markdown_table(summary[cols], {"bytes/item": ".0f", "p50 ms": ".3f", "users/s": ",.0f"}))
    typer.echo(f"\nreport: {paths['markdown']} ({time.perf_counter() - start:.0f} s in all)")
