"""Model directories: save and load without pickle, validated and checksummed.

Layout of a TwinTowerHasher directory (``FORMAT_VERSION`` 1)::

    config.json        format_version, kind, bits, sizes, tower options, training config,
                       library versions, training history, and {file: {bytes, sha256}}
    params.npz         torch state dict tensors as numpy arrays (loaded with allow_pickle=False)
    floats.npz         user_z, item_z: the towers' pre-sign outputs (codes = their signs)
    user_ids.parquet   IdMap.to_frame("user_id")
    item_ids.parquet   IdMap.to_frame("item_id")

``config.json`` is written last, so a directory without it is an interrupted save.
Every load checks the format version, each file's size and SHA-256, array names and
shapes; any mismatch raises :class:`rechash.errors.ModelError` naming the path.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from rechash import columns as C
from rechash.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from rechash.model.hasher import TwinTowerHasher

FORMAT_VERSION = 1
KIND = "TwinTowerHasher"
CONFIG = "config.json"
FILES = ("params.npz", "floats.npz", "user_ids.parquet", "item_ids.parquet")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that wrote (or read) a model."""
    import scipy
    import torch

    import rechash

    return {
        "rechash": rechash.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "torch": torch.__version__,
    }


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_model(model: "TwinTowerHasher", path: str | Path) -> Path:
    """Write ``model`` into directory ``path`` (created; existing model files are replaced)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / CONFIG).unlink(missing_ok=True)  # a directory without config.json is never half-valid
    state = {k: v.detach().cpu().numpy() for k, v in model.towers.state_dict().items()}
    np.savez(path / "params.npz", **state)
    np.savez(path / "floats.npz", user_z=model.user_floats(), item_z=model.item_floats())
    model.user_ids.to_frame(C.USER_ID).to_parquet(path / "user_ids.parquet", index=False)
    model.item_ids.to_frame(C.ITEM_ID).to_parquet(path / "item_ids.parquet", index=False)
    config = {
        "format_version": FORMAT_VERSION,
        "kind": KIND,
        "bits": model.bits,
        "n_users": len(model.user_ids),
        "n_items": len(model.item_ids),
        "towers": model.tower_options(),
        "training": model.config.to_dict(),
        "library_versions": library_versions(),
        "fit_seconds": model.fit_seconds_,
        "history": [asdict(log) for log in model.history_],
        "files": {name: {"bytes": (path / name).stat().st_size, "sha256": sha256(path / name)} for name in FILES},
    }
    tmp = path / (CONFIG + ".tmp")
    tmp.write_text(json.dumps(config, indent=2, default=float))
    tmp.replace(path / CONFIG)
    return path


def _read_config(path: Path) -> dict:
    cfg_path = path / CONFIG
    if not path.is_dir():
        raise ModelError(f"{path}: not a model directory (no such directory)")
    if not cfg_path.is_file():
        raise ModelError(f"{cfg_path}: missing; {path} is not a complete rechash model directory")
    try:
        config = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{cfg_path}: corrupted JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("kind") != KIND:
        raise ModelError(f"{cfg_path}: not a {KIND} model configuration")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{cfg_path}: format_version {version!r} is not supported (this rechash reads {FORMAT_VERSION})")
    for key in ("bits", "n_users", "n_items", "towers", "training", "files"):
        if key not in config:
            raise ModelError(f"{cfg_path}: missing key {key!r}")
    return config


def _verify_files(path: Path, config: dict) -> None:
    for name in FILES:
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


def _npz(f: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile/ValueError variants
        raise ModelError(f"{f}: unreadable array archive ({exc})") from None


def _idmap(f: Path, column: str, n: int):
    from rechash.data.idmap import IdMap

    try:
        m = IdMap.from_frame(pd.read_parquet(f), column)
    except Exception as exc:
        raise ModelError(f"{f}: unreadable id map ({exc})") from None
    if len(m) != n:
        raise ModelError(f"{f}: {len(m)} ids, the configuration says {n}")
    return m


def load_model(path: str | Path) -> "TwinTowerHasher":
    """Load and validate a model directory written by :func:`save_model`."""
    import torch

    from rechash.model.hasher import TwinTowerHasher
    from rechash.model.trainer import EpochLog, TrainConfig

    path = Path(path)
    config = _read_config(path)
    _verify_files(path, config)
    towers_opts = dict(config["towers"])
    known = {f for f in TrainConfig.__dataclass_fields__}
    training = {k: v for k, v in config["training"].items() if k in known}
    model = TwinTowerHasher(config["bits"], **towers_opts, **training)
    params = _npz(path / "params.npz")
    floats = _npz(path / "floats.npz")
    n_users, n_items, bits = config["n_users"], config["n_items"], config["bits"]
    feats = params.get("item.features")
    towers = model._build(n_users, n_items, 0 if feats is None or feats.ndim != 2 else feats.shape[1])
    expected = towers.state_dict()
    if set(params) != set(expected):
        raise ModelError(f"{path / 'params.npz'}: parameters {sorted(set(params) ^ set(expected))} do not match the towers")
    for k, v in params.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise ModelError(f"{path / 'params.npz'}: {k} has shape {v.shape}, expected {tuple(expected[k].shape)}")
    towers.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in params.items()})
    towers.eval()
    for name, n in (("user_z", n_users), ("item_z", n_items)):
        if name not in floats or floats[name].shape != (n, bits) or floats[name].dtype != np.float32:
            raise ModelError(f"{path / 'floats.npz'}: {name} must be float32 of shape ({n}, {bits})")
    model.towers = towers
    model._user_z, model._item_z = floats["user_z"], floats["item_z"]
    model._user_ids = _idmap(path / "user_ids.parquet", C.USER_ID, n_users)
    model._item_ids = _idmap(path / "item_ids.parquet", C.ITEM_ID, n_items)
    model.fit_seconds_ = config.get("fit_seconds")
    model.history_ = [EpochLog(**h) for h in config.get("history", [])]
    return model


SEEN = "seen.npz"


def save_seen(path: str | Path, seen) -> Path:
    """Store the training items (users x items CSR pattern) beside a model, for the
    candidate job's default exclusion; written atomically, checked on load."""
    import scipy.sparse as sp

    path = Path(path)
    seen = sp.csr_matrix(seen)
    tmp = path / (SEEN + ".tmp.npz")
    np.savez(tmp, indptr=seen.indptr.astype(np.int64), indices=seen.indices.astype(np.int32),
             shape=np.array(seen.shape, dtype=np.int64))
    tmp.replace(path / SEEN)
    return path / SEEN


def load_seen(path: str | Path):
    """The training items stored by :func:`save_seen` (CSR, ones), or None when absent."""
    import scipy.sparse as sp

    f = Path(path) / SEEN
    if not f.exists():
        return None
    arrays = _npz(f)
    try:
        indptr, indices, shape = arrays["indptr"], arrays["indices"], tuple(int(x) for x in arrays["shape"])
        seen = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
        seen.check_format(full_check=True)
    except (KeyError, ValueError) as exc:
        raise ModelError(f"{f}: corrupted seen-items matrix ({exc})") from None
    return seen


def model_checksum(path: str | Path) -> str:
    """SHA-256 of a model directory's config.json (which holds every file's checksum)."""
    _read_config(Path(path))
    return sha256(Path(path) / CONFIG)


def export_codes(
    item_codes: np.ndarray, item_ids, out: str | Path, *, user_codes: np.ndarray | None = None, user_ids=None,
    faiss_index: bool = False,
) -> list[Path]:
    """Write codes for another serving stack: ``item_codes.npy`` (uint8, ``(n, B/8)``, the bit
    order of :mod:`rechash.codes`) with ``item_ids.parquet`` (``index, item_id``), the same for
    users when given, and ``items.faiss`` (a faiss ``IndexBinaryFlat``) when ``faiss_index``."""
    from rechash.codes import validate_packed

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for side, codes, ids, column in (("item", item_codes, item_ids, C.ITEM_ID), ("user", user_codes, user_ids, C.USER_ID)):
        if codes is None:
            continue
        validate_packed(codes, f"{side} codes")
        np.save(out / f"{side}_codes.npy", np.ascontiguousarray(codes), allow_pickle=False)
        ids.to_frame(column).to_parquet(out / f"{side}_ids.parquet", index=False)
        written += [out / f"{side}_codes.npy", out / f"{side}_ids.parquet"]
    if faiss_index:
        from rechash.errors import require

        faiss = require("faiss", "faiss", "Exporting a faiss index")
        index = faiss.IndexBinaryFlat(item_codes.shape[1] * 8)
        index.add(np.ascontiguousarray(item_codes))
        faiss.write_index_binary(index, str(out / "items.faiss"))
        written.append(out / "items.faiss")
    return written


def import_codes(path: str | Path, side: str = "item"):
    """Read ``{side}_codes.npy`` and ``{side}_ids.parquet`` written by :func:`export_codes`
    (or by any tool following the same layout) -> ``(codes, IdMap)``, validated."""
    from rechash.codes import validate_packed

    path = Path(path)
    f = path / f"{side}_codes.npy"
    try:
        codes = np.load(f, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{f}: unreadable codes ({exc})") from None
    try:
        validate_packed(codes, str(f))
    except Exception as exc:
        raise ModelError(str(exc)) from None
    ids = _idmap(path / f"{side}_ids.parquet", C.USER_ID if side == "user" else C.ITEM_ID, len(codes))
    return codes, ids
