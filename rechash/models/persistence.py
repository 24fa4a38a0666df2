"""The directory of every recommender but the hasher: arrays, id maps, seen items, checksums.

Layout: ``recommender.json`` (kind, format version, parameters, SHA-256 of every file),
``arrays.npz``, ``user_ids.parquet``, ``item_ids.parquet``, ``seen.npz`` when the
recommender has training items, and files a recommender adds (``items.ann``,
``binarizer.npz``). Each recommender's ``save`` / ``load`` says which arrays it keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from rechash import columns as C
from rechash.data.idmap import IdMap, read_idmap
from rechash.errors import ModelError
from rechash.io.atomic import replace_directory
from rechash.io.store import library_versions, read_npz, read_seen, save_seen, sha256
from rechash.models.base import RecommenderBase

SEEN = "seen.npz"


def _plain(value):
    """numpy scalars as Python values (for JSON)."""
    return value.item() if isinstance(value, np.generic) else value


RECOMMENDER_FILE = "recommender.json"
ARRAYS_FILE = "arrays.npz"
FORMAT_VERSION = 1


def save_recommender(
    path: str | Path,
    kind: str,
    rec: RecommenderBase,
    arrays: dict[str, np.ndarray],
    meta: dict,
    extra: dict | None = None,
) -> Path:
    """Write ``rec`` as a directory (no pickle): ``arrays.npz``, the id maps, the training
    items (``seen.npz``), ``extra`` files (name -> ``write(path)``) and ``recommender.json``
    (kind, format version, parameters, SHA-256 of every file). Replaces only a directory
    of the same kind, atomically."""

    def fill(tmp: Path) -> None:
        np.savez(tmp / ARRAYS_FILE, **arrays)
        rec.user_ids.to_frame(C.USER_ID).to_parquet(tmp / "user_ids.parquet", index=False)
        rec.item_ids.to_frame(C.ITEM_ID).to_parquet(tmp / "item_ids.parquet", index=False)
        names = [ARRAYS_FILE, "user_ids.parquet", "item_ids.parquet"]
        for name, write in (extra or {}).items():
            write(tmp / name)
            names.append(name)
        if rec.seen is not None:
            save_seen(tmp / SEEN, rec.seen)
            names.append(SEEN)
        doc = {
            "format_version": FORMAT_VERSION,
            "kind": kind,
            "n_users": rec.n_users,
            "n_items": rec.n_items,
            "params": meta,
            "library_versions": library_versions(),
            "files": {name: {"sha256": sha256(tmp / name)} for name in names},
        }
        (tmp / RECOMMENDER_FILE).write_text(json.dumps(doc, indent=2, default=_plain))

    return replace_directory(path, fill, _is_recommender_file, "rechash recommender directory")


def _is_recommender_file(p: Path) -> bool:
    return p.name in (
        RECOMMENDER_FILE,
        ARRAYS_FILE,
        "user_ids.parquet",
        "item_ids.parquet",
        SEEN,
        "items.ann",
        "binarizer.npz",
    )


@dataclass(frozen=True)
class SavedRecommender:
    """What :func:`read_recommender` found in a directory."""

    kind: str
    params: dict
    arrays: dict[str, np.ndarray]
    user_ids: IdMap
    item_ids: IdMap
    seen: sp.csr_matrix | None


def read_recommender(path: str | Path, kind: str | None = None) -> SavedRecommender:
    """Read and verify (checksums, shapes) a directory written by :func:`save_recommender`."""
    path = Path(path)
    doc_path = path / RECOMMENDER_FILE
    if not doc_path.is_file():
        raise ModelError(f"{path}: not a rechash recommender directory (no {RECOMMENDER_FILE})")
    try:
        doc = json.loads(doc_path.read_text())
        found, version, files = doc["kind"], int(doc["format_version"]), dict(doc["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{doc_path}: unreadable ({exc})") from None
    if version != FORMAT_VERSION:
        raise ModelError(f"{doc_path}: format version {version}, this rechash reads {FORMAT_VERSION}")
    if kind is not None and found != kind:
        raise ModelError(f"{path}: holds a {found!r} recommender, expected {kind!r}")
    for name, info in files.items():
        f = path / name
        if not f.is_file() or sha256(f) != info.get("sha256"):
            raise ModelError(f"{f}: missing or changed since it was saved (checksum mismatch)")
    n_users, n_items = int(doc["n_users"]), int(doc["n_items"])
    seen = read_seen(path / SEEN, n_users, n_items) if SEEN in files else None
    return SavedRecommender(
        kind=found,
        params=dict(doc.get("params") or {}),
        arrays=read_npz(path / ARRAYS_FILE),
        user_ids=read_idmap(path / "user_ids.parquet", C.USER_ID, n_users),
        item_ids=read_idmap(path / "item_ids.parquet", C.ITEM_ID, n_items),
        seen=seen,
    )
