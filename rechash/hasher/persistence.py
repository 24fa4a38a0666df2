"""Model directories: save and load without pickle, validated and checksummed.

Layout of a TwinTowerHasher directory (``FORMAT_VERSION`` 1)::

    config.json        format_version, kind, bits, sizes, tower options, training config,
                       library versions, training history, and {file: {bytes, sha256}}
    params.npz         torch state dict tensors as numpy arrays (loaded with allow_pickle=False)
    floats.npz         user_z, item_z: the towers' relaxed outputs (codes = their signs), and
                       user_codes (packed uint8) when the fit refined the user codes
                       (:mod:`rechash.hasher.refine`; ``training_run.refine`` says how)
    user_ids.parquet   IdMap.to_frame("user_id")
    item_ids.parquet   IdMap.to_frame("item_id")
    seen.npz           the training items (users x items CSR pattern: indptr, indices, shape),
                       excluded by the candidate job; absent only for a model fitted elsewhere
    teacher.npz        user, item: the ALS teacher's factors (the default re-ranker's floats) and
                       regularization, alpha (their fold-in for new users); absent without one
    ranker.txt         the learned pool re-ranker's LightGBM model as text (parsed, never executed),
    ranker.npz         popularity and, per item-item model NAME (knn, ease), NAME.indptr /
                       NAME.indices / NAME.data (CSR): the tables its features read
                       (:class:`rechash.rerank.pool.PoolRanker`); both absent unless the fit kept one
    item_features.json the column schema of the item features (names, kinds, vocabularies,
                       numeric mean/std; :class:`rechash.hasher.new_items.ItemFeatureSchema`),
                       to encode items unseen at training; absent without a named feature table

Items appended after training (``rechash add-items``, :meth:`TwinTowerHasher.add_items`) are
the last rows of every item array; ``training_run.added_items`` in ``config.json`` counts them.

A directory is written as a hidden sibling and renamed into place (:mod:`rechash.io.atomic`),
``config.json`` last, so a directory under the model's name is always complete; an existing
directory there is replaced only when it holds nothing but model files. Every load checks
the configuration's keys and types, the format version, each file's size and SHA-256
(``seen.npz`` included), array names and shapes before allocating anything; any mismatch
raises :class:`rechash.errors.ModelError` naming the path.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rechash import columns as C
from rechash.data.idmap import read_idmap
from rechash.errors import ModelError, RechashError
from rechash.io.atomic import check_output_path, replace_directory
from rechash.io.store import library_versions, read_json, read_npz, read_seen, save_seen, sha256

if TYPE_CHECKING:  # pragma: no cover
    from rechash.data.idmap import IdMap

FORMAT_VERSION = 1
KIND = "TwinTowerHasher"
CONFIG = "config.json"
FILES = ("params.npz", "floats.npz", "user_ids.parquet", "item_ids.parquet")
SEEN = "seen.npz"
TEACHER = "teacher.npz"
ITEM_FEATURES = "item_features.json"
RANKER_MODEL, RANKER_ARRAYS = "ranker.txt", "ranker.npz"
OPTIONAL_FILES = (SEEN, TEACHER, ITEM_FEATURES, RANKER_MODEL, RANKER_ARRAYS)
_CONFIG_KEYS = {
    "format_version",
    "kind",
    "bits",
    "n_users",
    "n_items",
    "towers",
    "training",
    "library_versions",
    "fit_seconds",
    "history",
    "training_run",
    "files",
}
_TOWER_TYPES = {"user_id": bool, "user_history": bool, "hidden": int, "seed": int}


def _is_model_file(p: Path) -> bool:
    """Whether ``p`` may be replaced by a model save: a model file, or a rechash config."""
    if p.name == CONFIG:
        try:
            return json.loads(p.read_text()).get("kind") == KIND
        except (OSError, ValueError, AttributeError):
            return False
    return p.name in FILES + OPTIONAL_FILES and p.is_file()


def check_output_dir(path: str | Path) -> Path:
    """Check that a model can be saved to ``path`` (before training): refuses an existing
    file, a path under a file, a directory holding anything but model files, a location
    that cannot be written; one-line :class:`rechash.errors.RechashError` naming it."""
    return check_output_path(path, _is_model_file, "rechash model directory")


@dataclass(frozen=True)
class SavedModel:
    """A hasher's state, as :meth:`TwinTowerHasher.to_state` gives it and :func:`read_model`
    reads it back (verified) for :meth:`TwinTowerHasher.from_state`.

    ``config``: bits, n_users, n_items, towers, training, fit_seconds, history, training_run
    (read back with format_version, kind, library_versions and files too); ``params``: the
    towers' state dict as arrays; ``seen`` / ``teacher`` / ``item_schema`` (the JSON of the
    item feature schema) / ``user_codes`` (refined) / ``ranker`` are None when absent."""

    config: dict
    params: dict
    user_z: np.ndarray
    item_z: np.ndarray
    user_ids: IdMap
    item_ids: IdMap
    seen: object
    teacher: object
    item_schema: object = None
    user_codes: np.ndarray | None = None
    #: ``(arrays, LightGBM model text)`` of the learned re-ranker, or None
    ranker: tuple[dict, str] | None = None


def save_model(state: SavedModel, path: str | Path) -> Path:
    """Write a model's state (:meth:`TwinTowerHasher.to_state`) as directory ``path``
    atomically: the files of the module docstring, ``seen.npz`` / ``teacher.npz`` /
    ``item_features.json`` / ``ranker.*`` only when the state has them, and ``config.json``
    (``state.config`` plus format version, kind, library versions and every file's size and
    SHA-256) last."""

    def fill(tmp: Path) -> None:
        np.savez(tmp / "params.npz", **state.params)
        refined = {} if state.user_codes is None else {"user_codes": state.user_codes}
        np.savez(tmp / "floats.npz", user_z=state.user_z, item_z=state.item_z, **refined)
        state.user_ids.to_frame(C.USER_ID).to_parquet(tmp / "user_ids.parquet", index=False)
        state.item_ids.to_frame(C.ITEM_ID).to_parquet(tmp / "item_ids.parquet", index=False)
        names = FILES
        if state.seen is not None:
            save_seen(tmp / SEEN, state.seen)
            names += (SEEN,)
        teacher = state.teacher
        if teacher is not None:
            np.savez(
                tmp / TEACHER,
                user=teacher.user_factors,
                item=teacher.item_factors,
                regularization=np.float64(teacher.fold_in["regularization"]),
                alpha=np.float64(teacher.fold_in["alpha"]),
            )
            names += (TEACHER,)
        if state.item_schema is not None:
            (tmp / ITEM_FEATURES).write_text(json.dumps(state.item_schema, indent=1))
            names += (ITEM_FEATURES,)
        if state.ranker is not None:
            arrays, text = state.ranker
            np.savez(tmp / RANKER_ARRAYS, **arrays)
            (tmp / RANKER_MODEL).write_text(text)
            names += (RANKER_ARRAYS, RANKER_MODEL)
        given = state.config
        config = {  # the key order of every format-1 directory
            "format_version": FORMAT_VERSION,
            "kind": KIND,
            **{key: given[key] for key in ("bits", "n_users", "n_items", "towers", "training")},
            "library_versions": library_versions(),
            **{key: given.get(key) for key in ("fit_seconds", "history", "training_run")},
            "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": sha256(tmp / name)} for name in names},
        }
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, default=float))

    return replace_directory(path, fill, _is_model_file, "rechash model directory")


def _read_config(path: Path, training_fields: set | None = None, epoch_fields: set | None = None) -> dict:
    cfg_path = path / CONFIG
    if not path.is_dir():
        raise ModelError(f"{path}: not a model directory (no such directory)")
    if not cfg_path.is_file():
        raise ModelError(f"{cfg_path}: missing; {path} is not a complete rechash model directory")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{cfg_path}: corrupted JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("kind") != KIND:
        raise ModelError(f"{cfg_path}: not a {KIND} model configuration")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(
            f"{cfg_path}: format_version {version!r} is not supported (this rechash reads {FORMAT_VERSION})"
        )
    _check_config(cfg_path, config, training_fields, epoch_fields)
    return config


def _check_config(cfg_path: Path, config: dict, training_fields: set | None, epoch_fields: set | None) -> None:
    """Keys and value types of a configuration (checked before anything is allocated);
    ``training`` entries and epoch logs against the given field names when given."""

    def bad(what: str) -> ModelError:
        return ModelError(f"{cfg_path}: {what}")

    for key in ("bits", "n_users", "n_items", "towers", "training", "files"):
        if key not in config:
            raise bad(f"missing key {key!r}")
    unknown = sorted(set(config) - _CONFIG_KEYS)
    if unknown:
        raise bad(f"unknown key {unknown[0]!r}")
    for key in ("bits", "n_users", "n_items"):
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise bad(f"{key} must be a positive integer, got {value!r}")
    if config["bits"] % 8 or config["bits"] > 4096:
        raise bad(f"bits must be a multiple of 8 up to 4096, got {config['bits']}")
    sections = {"towers": set(_TOWER_TYPES), "training": training_fields, "files": set(FILES) | set(OPTIONAL_FILES)}
    for key, allowed in sections.items():
        if not isinstance(config[key], dict):
            raise bad(f"{key} must be an object, got {type(config[key]).__name__}")
        unknown = sorted(set(config[key]) - allowed) if allowed is not None else []
        if unknown:
            raise bad(f"{key}: unknown entry {unknown[0]!r}")
    for key, kind in _TOWER_TYPES.items():
        value = config["towers"].get(key)
        if key in config["towers"] and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool)) or (key == "hidden" and value <= 0)
        ):
            raise bad(
                f"towers: {key} must be {'a positive integer' if key == 'hidden' else kind.__name__}, got {value!r}"
            )
    for name, meta in config["files"].items():
        if not (isinstance(meta, dict) and isinstance(meta.get("bytes"), int) and isinstance(meta.get("sha256"), str)):
            raise bad(f"files: {name} must be {{bytes: int, sha256: str}}, got {meta!r}")
    history = config.get("history", [])
    fields = epoch_fields
    if not isinstance(history, list) or not all(
        isinstance(h, dict) and (fields is None or set(h) <= fields) for h in history
    ):
        raise bad(f"history must be a list of epoch logs with the fields {sorted(fields or ())}")
    seconds = config.get("fit_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
        raise bad(f"fit_seconds must be a number, got {seconds!r}")
    if not isinstance(config.get("training_run", {}), dict):
        raise bad(f"training_run must be an object, got {config['training_run']!r}")


def _verify_files(path: Path, config: dict) -> None:
    names = [*FILES, *(f for f in OPTIONAL_FILES if f in config["files"])]
    for name in names:
        f = path / name
        meta = config["files"].get(name)
        if meta is None:
            raise ModelError(f"{path / CONFIG}: no checksum recorded for {name}")
        if not f.is_file():
            raise ModelError(f"{f}: missing model file")
        size = f.stat().st_size
        if size != meta["bytes"]:
            raise ModelError(f"{f}: truncated or modified ({size} bytes, expected {meta['bytes']})")
        if sha256(f) != meta["sha256"]:
            raise ModelError(f"{f}: checksum mismatch, the file is corrupted")
    for name in OPTIONAL_FILES:
        if name not in names and (path / name).exists():
            raise ModelError(f"{path / name}: not recorded in {CONFIG} (unchecked); delete it, or save the model again")


def _teacher(f: Path, user_ids, item_ids):
    from rechash.data.embeddings import FloatEmbeddings

    arrays = read_npz(f)
    try:
        user, item = arrays["user"], arrays["item"]
        fold_in = {"regularization": float(arrays["regularization"]), "alpha": float(arrays["alpha"])}
        if user.dtype != np.float32 or item.dtype != np.float32 or user.ndim != 2 or item.ndim != 2:
            raise ValueError("factors must be 2-D float32")
        if len(user) != len(user_ids) or len(item) != len(item_ids) or user.shape[1] != item.shape[1]:
            raise ValueError(
                f"shapes {user.shape} and {item.shape}, the model has {len(user_ids)} users and {len(item_ids)} items"
            )
        return FloatEmbeddings(user, item, fold_in=fold_in, user_ids=user_ids, item_ids=item_ids)
    except (KeyError, ValueError, TypeError, RechashError) as exc:
        raise ModelError(f"{f}: corrupted teacher factors ({exc})") from None


def read_model(path: str | Path, training_fields: set, epoch_fields: set) -> SavedModel:
    """Read and validate a model directory written by :func:`save_model`: configuration
    keys and types (``training_fields`` / ``epoch_fields``: the names the model accepts),
    every file's size and checksum, id maps, shapes; ``seen`` / ``teacher`` / ``item_schema``
    (the parsed ``item_features.json``) are None when the directory has none."""
    path = Path(path)
    config = _read_config(path, training_fields, epoch_fields)
    _verify_files(path, config)
    n_users, n_items, bits = config["n_users"], config["n_items"], config["bits"]
    user_ids = read_idmap(path / "user_ids.parquet", C.USER_ID, n_users)
    item_ids = read_idmap(path / "item_ids.parquet", C.ITEM_ID, n_items)
    floats = read_npz(path / "floats.npz")
    for name, n in (("user_z", n_users), ("item_z", n_items)):
        if name not in floats or floats[name].shape != (n, bits) or floats[name].dtype != np.float32:
            raise ModelError(f"{path / 'floats.npz'}: {name} must be float32 of shape ({n}, {bits})")
    user_codes = floats.get("user_codes")
    if user_codes is not None and (user_codes.shape != (n_users, bits // 8) or user_codes.dtype != np.uint8):
        raise ModelError(f"{path / 'floats.npz'}: user_codes must be uint8 of shape ({n_users}, {bits // 8})")
    return SavedModel(
        config=config,
        params=read_npz(path / "params.npz"),
        user_z=floats["user_z"],
        item_z=floats["item_z"],
        user_ids=user_ids,
        item_ids=item_ids,
        seen=read_seen(path / SEEN, n_users, n_items) if SEEN in config["files"] else None,
        teacher=_teacher(path / TEACHER, user_ids, item_ids) if TEACHER in config["files"] else None,
        item_schema=read_json(path / ITEM_FEATURES) if ITEM_FEATURES in config["files"] else None,
        user_codes=user_codes,
        ranker=_ranker(path, config),
    )


def _ranker(path: Path, config: dict) -> tuple[dict, str] | None:
    """The learned re-ranker's files (both, or neither) as ``(arrays, model text)``."""
    present = [name in config["files"] for name in (RANKER_ARRAYS, RANKER_MODEL)]
    if not any(present):
        return None
    if not all(present):
        raise ModelError(f"{path / CONFIG}: records only one of {RANKER_ARRAYS} and {RANKER_MODEL}")
    try:
        text = (path / RANKER_MODEL).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path / RANKER_MODEL}: unreadable ({exc})") from None
    return read_npz(path / RANKER_ARRAYS), text
