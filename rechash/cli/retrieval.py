"""``rechash candidates``: the offline candidate job over a model directory."""

from __future__ import annotations

from pathlib import Path

import typer

from rechash.cli.app import app
from rechash.cli.common import (
    InputOptions,
    command_threads,
    kernel_notice,
    quiet,
    reads_interactions,
    status,
    threads_option,
)


@app.command("candidates")
@reads_interactions
def candidates(
    model_dir: Path = typer.Argument(..., help="Model directory written by `rechash fit`."),
    out: Path = typer.Option(..., "--out", help="Output: FILE.parquet (one file) or a directory (resumable shards)."),
    k: int = typer.Option(100, "--k", help="Candidates per user (ranks 1..K)."),
    radius: int = typer.Option(None, "--radius", help="Hamming pool: every item within this distance (inclusive)."),
    min_candidates: int = typer.Option(
        None, "--min-candidates", help="Adaptive pool: smallest radius with at least this many."
    ),
    max_candidates: int = typer.Option(None, "--max-candidates", help="Adaptive pool: at most this many nearest."),
    exclude: list[Path] = typer.Option(
        None, "--exclude", help="Interaction files whose items are excluded (repeatable)."
    ),
    users: Path = typer.Option(None, "--users", help="File of external user ids (one per line, or a user_id column)."),
    unknown: str = typer.Option(
        "history", "--unknown", help="Users the model does not know: history, popular or error."
    ),
    reranker: str = typer.Option(
        "auto",
        "--reranker",
        help="auto (learned when the fit kept its learned re-ranker, else dot), learned (LightGBM over the pool), "
        "dot (the model's re-ranking floats: its ALS teacher's, else the towers') or none (Hamming order).",
    ),
    filter_seen: bool = typer.Option(
        True,
        "--filter-seen/--keep-seen",
        help="Exclude the training items stored with the model (a model without them needs --keep-seen).",
    ),
    shard_size: int = typer.Option(50_000, "--shard-size", help="Users per shard / chunk (bounds memory)."),
    threads: int = threads_option(),
    format: str = typer.Option(
        None, "--format", help="Format of --exclude files (detected when omitted; the column options apply to them)."
    ),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar (users done, with ETA)."),
    *,
    inputs: InputOptions,
) -> None:
    """Write the top-K candidates of every user (or of --users) to Parquet.

    A directory output resumes an interrupted run of the same job and refuses another
    job's output (naming the first difference) or a concurrent run. Duplicate --users are
    dropped and counted, like --exclude rows that match no user of the run or no item."""
    import dataclasses

    with command_threads(threads):
        import pandas as pd

        from rechash import columns as C
        from rechash.data import load
        from rechash.jobs.candidates import CandidateJob, read_user_list

        kernel_notice("search")
        job = CandidateJob.from_model_dir(
            model_dir,
            k=k,
            radius=radius,
            min_candidates=min_candidates,
            max_candidates=max_candidates,
            unknown=unknown,
            reranker=reranker,
            filter_seen=filter_seen,
            n_threads=threads,
        )
        if exclude:  # read here, with the column options (CandidateJob.from_model_dir takes none)
            frames = [
                load(p, format=format, **inputs.loader_options()).to_frame()[[C.USER_ID, C.ITEM_ID]] for p in exclude
            ]
            job = dataclasses.replace(job, history=pd.concat(frames, ignore_index=True))
        user_list = None if users is None else read_user_list(users, job.user_ids)
        summary = job.run(out, users=user_list, shard_size=shard_size, progress=progress and not quiet())
    typer.echo(summary)


@app.command("export")
def export(
    model_dir: Path = typer.Argument(..., help="Model directory written by `rechash fit`."),
    out: Path = typer.Option(..., "--out", help="Directory for item/user codes (.npy) and id maps (.parquet)."),
    faiss: bool = typer.Option(
        False, "--faiss", help="Also write items.faiss (IndexBinaryFlat; needs rechash[faiss])."
    ),
    threads: int = threads_option(),
) -> None:
    """Export packed codes and id maps for another serving stack.

    OUT is written atomically and replaces an earlier export there; a directory holding
    anything else is refused."""
    from rechash.codes.export import check_export_dir, export_codes

    check_export_dir(out)
    with command_threads(threads):
        from rechash.hasher.twin_tower import TwinTowerHasher

        status(f"encoding the users and items of {model_dir}...")
        model = TwinTowerHasher.load(model_dir)
        written = export_codes(
            model.encode_items(),
            model.item_ids,
            out,
            user_codes=model.encode_users(),
            user_ids=model.user_ids,
            faiss_index=faiss,
        )
    typer.echo("\n".join(str(p) for p in written))
