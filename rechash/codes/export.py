"""Codes for another serving stack: packed item (and user) codes with their id tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rechash import columns as C
from rechash.data.idmap import read_idmap
from rechash.errors import ModelError
from rechash.io.atomic import check_output_path, replace_directory

EXPORT_FILES = ("item_codes.npy", "item_ids.parquet", "user_codes.npy", "user_ids.parquet", "items.faiss")


def _is_export_file(p: Path) -> bool:
    return p.name in EXPORT_FILES and p.is_file()


def check_export_dir(path: str | Path) -> Path:
    """Check that codes can be exported to ``path`` (as
    :func:`rechash.hasher.persistence.check_output_dir` does for models)."""
    return check_output_path(path, _is_export_file, "rechash code export")


def export_codes(
    item_codes: np.ndarray,
    item_ids,
    out: str | Path,
    *,
    user_codes: np.ndarray | None = None,
    user_ids=None,
    faiss_index: bool = False,
) -> list[Path]:
    """Write codes for another serving stack: ``item_codes.npy`` (uint8, ``(n, B/8)``, the bit
    order of :mod:`rechash.codes.bits`) with ``item_ids.parquet`` (``index, item_id``), the same for
    users when given, and ``items.faiss`` (a faiss ``IndexBinaryFlat``) when ``faiss_index``.
    ``out`` is written atomically (see :mod:`rechash.io.atomic`), replacing a previous export."""
    from rechash.codes.bits import validate_packed

    out = Path(out)
    sides = [
        (side, codes, ids, column)
        for side, codes, ids, column in (
            ("item", item_codes, item_ids, C.ITEM_ID),
            ("user", user_codes, user_ids, C.USER_ID),
        )
        if codes is not None
    ]
    for side, codes, _, _ in sides:
        validate_packed(codes, f"{side} codes")
    faiss = None
    if faiss_index:
        from rechash.errors import require

        faiss = require("faiss", "faiss", "Exporting a faiss index")

    def fill(tmp: Path) -> None:
        for side, codes, ids, column in sides:
            np.save(tmp / f"{side}_codes.npy", np.ascontiguousarray(codes), allow_pickle=False)
            ids.to_frame(column).to_parquet(tmp / f"{side}_ids.parquet", index=False)
        if faiss is not None:
            index = faiss.IndexBinaryFlat(item_codes.shape[1] * 8)
            index.add(np.ascontiguousarray(item_codes))
            faiss.write_index_binary(index, str(tmp / "items.faiss"))

    replace_directory(out, fill, _is_export_file, "rechash code export")
    names = [f"{side}_{what}" for side, *_ in sides for what in ("codes.npy", "ids.parquet")]
    return [out / name for name in names + (["items.faiss"] if faiss_index else [])]


def import_codes(path: str | Path, side: str = "item"):
    """Read ``{side}_codes.npy`` and ``{side}_ids.parquet`` written by :func:`export_codes`
    (or by any tool following the same layout) -> ``(codes, IdMap)``, validated."""
    from rechash.codes.bits import validate_packed

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
    ids = read_idmap(path / f"{side}_ids.parquet", C.USER_ID if side == "user" else C.ITEM_ID, len(codes))
    return codes, ids
