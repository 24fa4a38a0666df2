"""``rechash fit``: train a TwinTowerHasher and save it as a model directory; ``rechash
add-items``: append items unseen at training to one, from their side features.

The training options are generated from :class:`~rechash.hasher.config.TrainConfig` (name,
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
from rechash.cli.common import (
    THREADS_HELP,
    InputOptions,
    command_threads,
    kernel_notice,
    quiet,
    reads_interactions,
    status,
)
from rechash.hasher.config import TrainConfig

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
        annotation = Optional[base] if args else base  # noqa: UP045 - typer reads it at runtime
        decls = [f"{_flag(f.name)}/--no-{f.name.replace('_', '-')}"] if base is bool else [_flag(f.name)]
        default = None if f.default is MISSING else f.default
        help = _HELP.get(f.name, f.metadata.get("help"))
        option = typer.Option(
            default, *decls, help=help, show_default=default is not None, **({"min": 1} if f.name == "threads" else {})
        )
        out.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=annotation))
    return out


def fit(
    train: Path = typer.Argument(..., help="Training interactions."),
    out: Path = typer.Option(..., "--out", help="Model directory to write."),
    valid: Path | None = typer.Option(
        None, "--valid", help="Validation interactions (early stopping; default: a sample held out of TRAIN)."
    ),
    bits: int = typer.Option(64, "--bits", help="Code length B: a multiple of 8 from 16 to 256."),
    format: str | None = typer.Option(None, "--format", help="Input format (detected when omitted)."),
    teacher: str = typer.Option("auto", "--teacher", help="auto (implicit ALS tuned on the validation data) or none."),
    user_id: bool = typer.Option(True, "--user-id/--no-user-id", help="User ID embedding."),
    user_history: bool = typer.Option(True, "--user-history/--no-user-history", help="User history encoder."),
    seed: int = typer.Option(0, "--seed", help="Seed of numpy, torch and every sampler."),
    item_features: Path | None = typer.Option(
        None,
        "--item-features",
        help="Item side features: a RecBole .item file or a CSV/TSV/Parquet table with an item_id column "
        "(default: the .item file beside a RecBole TRAIN). Items added later by their features (rechash add-items) "
        "need them, and --item-id-dropout 0.5 to get useful codes.",
    ),
    inputs: InputOptions = None,
    **train_options,
) -> None:
    """Train binary codes on TRAIN and save the model directory to --out."""
    from rechash.errors import ConfigError
    from rechash.hasher.persistence import check_output_dir
    from rechash.hasher.twin_tower import TwinTowerHasher

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
        features = None
        if item_features is not None:
            features = _read_item_features(item_features, train_set.item_ids)
        if teacher == "auto":
            status("tuning the ALS teacher on the validation data (-v logs every grid point)...")
        model.fit(train_set, valid_set, teacher=None if teacher == "none" else "auto", item_features=features)
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
    refine = model.refine_
    if refine and refine["temperature"] is not None:
        scores = refine["valid_recall"]
        chosen = scores[str(refine["temperature"])]
        msg += f"; user codes refined at T {refine['temperature']:g} (valid {scores['none']:.4f} -> {chosen:.4f})"
    elif refine:
        msg += "; user-code refinement tried and refused by validation"
    ranker = model.ranker_info_
    if ranker and "valid_recall" in ranker:
        scores = ranker["valid_recall"]
        verdict = "kept as the default re-ranker" if ranker["kept"] else "refused (the dot re-ranker stays the default)"
        msg += (
            f"; learned re-ranker {verdict} "
            f"(held-out valid Recall@20 dot {scores['dot']:.4f}, learned {scores['learned']:.4f})"
        )
    elif ranker:
        msg += f"; no learned re-ranker ({ranker.get('reason')})"
    typer.echo(msg)


def _read_item_features(path: Path, item_ids):
    """The side features of --item-features aligned with the training items, one status line."""
    from rechash.data import load_side_features
    from rechash.errors import DataError

    try:
        feats = load_side_features(path, item_ids)
    except DataError as exc:
        text = str(exc)
        raise DataError(text if text.startswith(str(path)) else f"--item-features {path}: {text}") from None
    if not len(feats.features):
        raise DataError(f"{path}: no feature columns besides the id column")
    if feats.missing == len(item_ids):
        raise DataError(f"{path}: no row names a training item (is the id column right? columns: {feats.names})")
    status(
        f"item features: {len(feats.features)} column{'s' if len(feats.features) != 1 else ''} from {path}"
        + (f"; {feats.missing:,} training items without a row" if feats.missing else "")
        + (
            f"; {feats.unmatched:,} rows of items not in TRAIN ignored (add them with rechash add-items)"
            if feats.unmatched
            else ""
        )
    )
    return feats


_own = [
    p
    for p in inspect.signature(fit).parameters.values()
    if p.kind is not inspect.Parameter.VAR_KEYWORD and p.name != "inputs"
]
fit.__signature__ = inspect.Signature(_own + _config_parameters())
app.command("fit")(reads_interactions(fit))


@app.command("add-items")
def add_items(
    model_dir: Path = typer.Argument(..., help="Model directory written by `rechash fit` with item features."),
    item_features: Path = typer.Option(
        ..., "--item-features", help="Side features of the items to add: RecBole .item or a CSV/TSV/Parquet table."
    ),
    id_col: str | None = typer.Option(None, "--id-col", help="Item id column of the features file (default: item_id)."),
    out: Path | None = typer.Option(None, "--out", help="Write the extended model here (default: replace MODEL_DIR)."),
    rerank_scale: str = typer.Option(
        "exposure",
        "--rerank-scale",
        help="New items' re-ranking floats in the teacher's space: exposure (shown as often as an average trained "
        "item), mean (least squares: shown almost never) or variance (shown more).",
    ),
) -> None:
    """Append the items of --item-features that the model does not know, without retraining.

    Their codes are a forward pass of the item tower's feature path (the columns, kinds and
    vocabularies the model was fitted with; tokens it never saw are ignored and counted);
    rows of ids the model already knows are skipped and counted. The model directory is
    rewritten atomically (checksummed, as rechash fit writes it), so rechash candidates
    serves the new items. They have no training interactions: no popularity, nothing to
    filter as seen."""
    import warnings

    from rechash.errors import ConfigError, DataError, ModelError
    from rechash.hasher.new_items import read_new_items
    from rechash.hasher.persistence import check_output_dir
    from rechash.hasher.twin_tower import TwinTowerHasher

    if rerank_scale not in TwinTowerHasher.TEACHER_MAP_SCALES:
        raise ConfigError(
            f"--rerank-scale: expected {' or '.join(TwinTowerHasher.TEACHER_MAP_SCALES)}, got {rerank_scale!r}"
        )
    model = TwinTowerHasher.load(model_dir)
    if model.towers.item.feat_mlp is None:
        raise ModelError(
            f"{model_dir}: fitted without item features; new items need them (rechash fit --item-features FILE)"
        )
    if model.item_schema_ is None:
        raise ModelError(
            f"{model_dir}: has no item feature schema (item_features.json): its features were an unnamed array"
        )
    target = model_dir if out is None else out
    check_output_dir(target)
    found = read_new_items(item_features, model.item_ids, model.item_schema_, id_col)
    if not len(found.ids):
        raise DataError(f"{item_features}: nothing to add: all {found.rows:,} item ids are already in the model")
    if warning := model.feature_path_warning():
        status(f"warning: {warning}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # printed above as a status line
        report = model.add_items(found.ids, found.features, scale=rerank_scale)
    model.save(target)
    unknown = {k: v for k, v in report["unknown_tokens"].items() if v}
    msg = f"added {report['added']:,} items to {target} ({report['n_items']:,} items now)"
    if found.known:
        msg += f"; skipped {found.known:,} rows of item ids the model already knows"
    if unknown:
        msg += "; tokens unseen at training ignored: " + ", ".join(f"{k} {v:,}" for k, v in unknown.items())
    typer.echo(msg)
