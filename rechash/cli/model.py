"""``rechash fit``: train a TwinTowerHasher and save it as a model directory."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rechash.cli import app
from rechash.model.trainer import TrainConfig

_D = TrainConfig()  # the CLI defaults are the library defaults


@app.command("fit")
def fit(
    train: Path = typer.Argument(..., help="Training interactions."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    valid: Path = typer.Option(None, "--valid", help="Validation interactions (early stopping on binary Recall@20)."),
    bits: int = typer.Option(64, "--bits", help="Code length B (a multiple of 8)."),
    format: str = typer.Option(None, "--format", help="Input format (detected when omitted)."),
    epochs: Optional[int] = typer.Option(_D.epochs, "--epochs", help="Epoch budget (default: about --auto-steps optimizer steps)."),
    auto_steps: int = typer.Option(_D.auto_steps, "--auto-steps", help="Step budget when --epochs is omitted."),
    batch_size: int = typer.Option(_D.batch_size, "--batch-size"),
    lr: float = typer.Option(_D.lr, "--lr", help="Adam learning rate (peak)."),
    negatives: int = typer.Option(_D.negatives, "--negatives", help="Sampled negatives shared by a batch."),
    negative_sampling: str = typer.Option(_D.negative_sampling, "--negative-sampling", help="uniform or popularity."),
    in_batch: bool = typer.Option(_D.in_batch, "--in-batch/--no-in-batch", help="Use the batch's positives as negatives too."),
    tau: float = typer.Option(_D.tau, "--tau", help="Initial softmax temperature (logits = s / tau)."),
    relaxation: str = typer.Option(_D.relaxation, "--relaxation", help="tanh or ste (straight-through sign)."),
    beta: float = typer.Option(_D.beta, "--beta", help="Initial beta of tanh(beta z)."),
    beta_growth: float = typer.Option(_D.beta_growth, "--beta-growth", help="Per-epoch factor on beta (continuation)."),
    beta_max: float = typer.Option(_D.beta_max, "--beta-max"),
    w_bpr: float = typer.Option(_D.w_bpr, "--w-bpr", help="Weight of the BPR loss."),
    w_softmax: float = typer.Option(_D.w_softmax, "--w-softmax", help="Weight of the sampled softmax loss."),
    w_quant: float = typer.Option(_D.w_quant, "--w-quant", help="Weight of the quantization loss."),
    w_balance: float = typer.Option(_D.w_balance, "--w-balance", help="Weight of the bit-balance loss."),
    w_decor: float = typer.Option(_D.w_decor, "--w-decor", help="Weight of the bit-decorrelation loss."),
    teacher: str = typer.Option("als", "--teacher", help="als (implicit ALS fitted on TRAIN) or none."),
    teacher_factors: int = typer.Option(
        0, "--teacher-factors", help="ALS teacher factors (0: max(64, bits); fewer than bits makes a rank-deficient init)."
    ),
    als_regularization: float = typer.Option(0.05, "--als-regularization"),
    als_alpha: float = typer.Option(10.0, "--als-alpha"),
    w_distill: float = typer.Option(_D.w_distill, "--w-distill", help="Weight of distillation from the teacher."),
    teacher_tau: float = typer.Option(_D.teacher_tau, "--teacher-tau", help="Teacher softmax temperature."),
    user_id: bool = typer.Option(True, "--user-id/--no-user-id", help="User ID embedding."),
    user_history: bool = typer.Option(True, "--user-history/--no-user-history", help="User history encoder."),
    id_dropout: float = typer.Option(_D.id_dropout, "--id-dropout", help="Share of rows trained through the history path only."),
    lr_schedule: str = typer.Option(_D.lr_schedule, "--lr-schedule", help="constant, linear or cosine decay over --epochs."),
    lr_final: float = typer.Option(_D.lr_final, "--lr-final", help="Final lr as a share of --lr (decaying schedules)."),
    history_cap: int = typer.Option(_D.history_cap, "--history-cap", help="History items sampled per training row."),
    patience: int = typer.Option(_D.patience, "--patience"),
    threads: int = typer.Option(_D.threads or 0, "--threads", help="torch CPU threads (0: all cores)."),
    device: str = typer.Option(_D.device, "--device", help="auto, cpu or cuda."),
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
            train_set, teacher_factors or max(64, bits), als_regularization, als_alpha, 15, seed=seed, num_threads=threads or 0
        )
    model = TwinTowerHasher(
        bits,
        user_id=user_id,
        user_history=user_history,
        seed=seed,
        epochs=epochs,
        auto_steps=auto_steps,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        lr_final=lr_final,
        history_cap=history_cap,
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
        threads=threads or None,
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
