"""``rechash fit``: train a TwinTowerHasher and save it as a model directory."""
from __future__ import annotations

from pathlib import Path

import typer

from rechash.cli import app


@app.command("fit")
def fit(
    train: Path = typer.Argument(..., help="Training interactions."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    valid: Path = typer.Option(None, "--valid", help="Validation interactions (early stopping on binary Recall@20)."),
    bits: int = typer.Option(64, "--bits", help="Code length B (a multiple of 8)."),
    format: str = typer.Option(None, "--format", help="Input format (detected when omitted)."),
    epochs: int = typer.Option(30, "--epochs", help="Maximum epochs."),
    batch_size: int = typer.Option(2048, "--batch-size"),
    lr: float = typer.Option(0.003, "--lr", help="Adam learning rate."),
    negatives: int = typer.Option(1024, "--negatives", help="Sampled negatives shared by a batch."),
    negative_sampling: str = typer.Option("uniform", "--negative-sampling", help="uniform or popularity."),
    in_batch: bool = typer.Option(False, "--in-batch/--no-in-batch", help="Use the batch's positives as negatives too."),
    tau: float = typer.Option(0.1, "--tau", help="Initial softmax temperature (logits = s / tau)."),
    relaxation: str = typer.Option("tanh", "--relaxation", help="tanh or ste (straight-through sign)."),
    beta: float = typer.Option(1.0, "--beta", help="Initial beta of tanh(beta z)."),
    beta_growth: float = typer.Option(1.0, "--beta-growth", help="Per-epoch factor on beta (continuation)."),
    beta_max: float = typer.Option(1.0, "--beta-max"),
    w_bpr: float = typer.Option(0.0, "--w-bpr", help="Weight of the BPR loss."),
    w_softmax: float = typer.Option(1.0, "--w-softmax", help="Weight of the sampled softmax loss."),
    w_quant: float = typer.Option(0.0, "--w-quant", help="Weight of the quantization loss."),
    w_balance: float = typer.Option(0.0, "--w-balance", help="Weight of the bit-balance loss."),
    w_decor: float = typer.Option(0.0, "--w-decor", help="Weight of the bit-decorrelation loss."),
    teacher: str = typer.Option("als", "--teacher", help="als (implicit ALS fitted on TRAIN) or none."),
    teacher_factors: int = typer.Option(64, "--teacher-factors"),
    als_regularization: float = typer.Option(0.05, "--als-regularization"),
    als_alpha: float = typer.Option(10.0, "--als-alpha"),
    w_distill: float = typer.Option(1.0, "--w-distill", help="Weight of distillation from the teacher."),
    teacher_tau: float = typer.Option(0.1, "--teacher-tau", help="Teacher softmax temperature."),
    user_id: bool = typer.Option(True, "--user-id/--no-user-id", help="User ID embedding."),
    user_history: bool = typer.Option(True, "--user-history/--no-user-history", help="User history encoder."),
    id_dropout: float = typer.Option(0.0, "--id-dropout", help="Share of rows trained through the history path only."),
    patience: int = typer.Option(3, "--patience"),
    threads: int = typer.Option(None, "--threads", help="CPU threads (all cores when omitted)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seed: int = typer.Option(0, "--seed"),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Train binary codes on TRAIN and save the model directory to --out."""
    from rechash.artifacts import save_seen
    from rechash.data import load_many
    from rechash.errors import DataError
    from rechash.model import TwinTowerHasher

    if teacher not in ("als", "none"):
        raise DataError(f"--teacher must be 'als' or 'none', got {teacher!r}")
    paths = [train] + ([valid] if valid is not None else [])
    sets = load_many(paths, format=format)
    train_set, valid_set = sets[0], (sets[1] if valid is not None else None)
    floats = None
    if teacher == "als":
        from rechash.baselines import fit_als

        floats = fit_als(
            train_set, teacher_factors, als_regularization, als_alpha, 15, seed=seed, num_threads=threads or 0
        )
    model = TwinTowerHasher(
        bits,
        user_id=user_id,
        user_history=user_history,
        seed=seed,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        negatives=negatives,
        negative_sampling=negative_sampling,
        in_batch=in_batch,
        tau=tau,
        relaxation=relaxation,
        beta=beta,
        beta_growth=beta_growth,
        beta_max=beta_max,
        w_bpr=w_bpr,
        w_softmax=w_softmax,
        w_quant=w_quant,
        w_balance=w_balance,
        w_decor=w_decor,
        w_distill=w_distill,
        teacher_tau=teacher_tau,
        id_dropout=id_dropout,
        patience=patience,
        threads=threads,
        device=device,
        progress=progress,
    )
    model.fit(train_set, valid_set, teacher=floats)
    model.save(out)
    save_seen(out, train_set.matrix)  # the candidate job excludes the training items by default
    best = [log for log in model.history_ if log.best]
    msg = f"saved {out}: {len(model.user_ids):,} users, {len(model.item_ids):,} items, {bits} bits, " \
          f"{len(model.history_)} epochs in {model.fit_seconds_:.1f}s"
    if best:
        msg += f", best valid Recall@20 (Hamming) {best[-1].valid_recall:.4f} at epoch {best[-1].epoch}"
    typer.echo(msg)
