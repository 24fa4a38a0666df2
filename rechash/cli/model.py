"""``rechash fit``: train a TwinTowerHasher and save it as a model directory.

The training options are generated from :class:`~rechash.train_config.TrainConfig` (name,
default and help of every ``--option`` come from its fields), so the command line and the
library cannot drift apart. TrainConfig lives in a torch-free module: importing this one
loads no torch (the command imports the model stack when it runs).
"""
from __future__ import annotations

import inspect
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Optional

import typer

from rechash.cli.app import app
from rechash.cli.common import THREADS_HELP, InputOptions, command_threads, kernel_notice, quiet, reads_interactions, status
from rechash.train_config import TrainConfig

#: help texts of TrainConfig fields the CLI words its own way (shared conventions)
_HELP = {"threads": THREADS_HELP}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _config_parameters() -> list[inspect.Parameter]:
    """One keyword parameter (a typer option) per TrainConfig field."""
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in fields(TrainConfig):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        base = args[0] if args else hint
        annotation = Optional[base] if args else base
        decls = [f"{_flag(f.name)}/--no-{f.name.replace('_', '-')}"] if base is bool else [_flag(f.name)]
        default = None if f.default is MISSING else f.default
        help = _HELP.get(f.name, f.metadata.get("help"))
        option = typer.Option(default, *decls, help=help, show_default=default is not None, **({"min": 1} if f.name == "threads" else {}))
        out.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
    return out


def fit(
    train: Path = typer.Argument(..., help="Training interactions."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    valid: Optional[Path] = typer.Option(
        None, "--valid", help="Validation interactions (early stopping; default: a sample held out of TRAIN)."
    ),
    bits: int = typer.Option(64, "--bits", help="Code length B: a multiple of 8 from 16 to 256."),
    format: Optional[str] = typer.Option(None, "--format", help="Input format (detected when omitted)."),
    teacher: str = typer.Option("auto", "--teacher", help="auto (implicit ALS tuned on the validation data) or none."),
    user_id: bool = typer.Option(True, "--user-id/--no-user-id", help="User ID embedding."),
    user_history: bool = typer.Option(True, "--user-history/--no-user-history", help="User history encoder."),
    seed: int = typer.Option(0, "--seed", help="Seed of numpy, torch and every sampler."),
    inputs: InputOptions = None,
    **train_options,
) -> None:
    """Train binary codes on TRAIN and save the model directory to --out."""
    from rechash.artifacts import check_output_dir
    from rechash.errors import ConfigError
    from rechash.model import TwinTowerHasher

    if teacher not in ("auto", "none"):
        raise ConfigError(f"--teacher: expected auto or none, got {teacher!r}")
    if quiet():
        train_options["progress"] = False
    model = TwinTowerHasher(bits, user_id=user_id, user_history=user_history, seed=seed, **train_options)
    check_output_dir(out)
    with command_threads(train_options.get("threads")):
        from rechash.data import load_many

        paths = [train] + ([valid] if valid is not None else [])
        kernel_notice("data")
        sets = load_many(paths, format=format, **inputs.loader_options())
        train_set, valid_set = sets[0], (sets[1] if valid is not None else None)
        if teacher == "auto":
            status("tuning the ALS teacher on the validation data (-v logs every grid point)...")
        model.fit(train_set, valid_set, teacher=None if teacher == "none" else "auto")
    model.save(out)
    best = [log for log in model.history_ if log.best]
    trained = sum(1 for log in model.history_ if log.epoch > 0)  # epoch 0 is the initialisation, not trained
    msg = (
        f"saved {out}: {len(model.user_ids):,} users, {len(model.item_ids):,} items, {bits} bits, "
        f"{trained} epoch{'' if trained == 1 else 's'} ({model.stop_reason_}) in {model.fit_seconds_:.1f}s"
    )
    if model.holdout_:
        msg += f", {model.holdout_:,} training interactions held out for validation"
    if best:
        msg += f", best valid Recall@20 (Hamming) {best[-1].valid_recall:.4f} at epoch {best[-1].epoch}"
    typer.echo(msg)


_own = [p for p in inspect.signature(fit).parameters.values()
        if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name != "inputs"]
fit.__signature__ = inspect.Signature(_own + _config_parameters())
app.command("fit")(reads_interactions(fit))
