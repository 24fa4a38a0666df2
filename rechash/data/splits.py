"""Splits and filters. Every function keeps the input's id maps (and side features).

Splits return a :class:`Split` ``(train, valid, test)`` whose parts are disjoint and
together hold every entry of the input, deterministic for a seed:

* :func:`split_random` - per user, a random ``ratios`` share of their interactions in each
  part (rounded half up, at least one in train when the train share is positive);
* :func:`split_leave_last` - per user, the last ``n_test`` interactions by timestamp in
  test and the ``n_valid`` before them in valid (ties in time by item id ascending, the
  larger id counts as later), always keeping at least one in train;
* :func:`split_time` - a global time cut: entries before the valid cut in train, before
  the test cut in valid, the rest in test (cuts given, or at time quantiles).

Filters drop entries and count them in ``Interactions.dropped``: :func:`k_core` (reason
``"k_core"``) and :func:`to_implicit` (reason ``"threshold"``). :func:`save_split` writes a
split to a directory, atomically: the directory only ever holds the files of one split.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rechash import columns as C
from rechash.data.files import SPLIT_NAMES
from rechash.data.interactions import Interactions
from rechash.data.writers import save
from rechash.errors import DataError
from rechash.io.atomic import check_output_path, replace_directory


class Split(NamedTuple):
    """Three disjoint parts of one dataset sharing its id maps."""

    train: Interactions
    valid: Interactions
    test: Interactions


def _parts(inter: Interactions, part: np.ndarray) -> Split:
    return Split(*(inter.subset(part == k) for k in range(3)))


def _bounds(ratios: Sequence[float]) -> tuple[float, float, float]:
    """Cumulative bounds (train, train+valid, 1) of 2 (train, test) or 3 ratios."""
    r = [float(x) for x in ratios]
    if len(r) == 2:
        r = [r[0], 0.0, r[1]]
    if len(r) != 3 or min(r) < 0 or abs(sum(r) - 1) > 1e-6:
        raise DataError(f"split ratios must be 2 or 3 non-negative numbers summing to 1, got {list(ratios)}")
    return r[0], r[0] + r[1], 1.0


def _positions(inter: Interactions, order: np.ndarray) -> np.ndarray:
    """Rank of each entry inside its user's row under ``order`` (a row-grouped permutation)."""
    starts = np.repeat(inter.matrix.indptr[:-1], np.diff(inter.matrix.indptr))
    pos = np.empty(inter.nnz, dtype=np.int64)
    pos[order] = np.arange(inter.nnz) - starts
    return pos


def split_random(inter: Interactions, ratios: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> Split:
    """Per-user random split with ``ratios`` (train, valid, test) or (train, test)."""
    c1, c2, _ = _bounds(ratios)
    rows = inter.rows()
    keys = np.random.default_rng(seed).random(inter.nnz)
    pos = _positions(inter, np.argsort(rows + keys, kind="stable"))
    n = np.diff(inter.matrix.indptr)[rows]
    cut1 = np.floor(c1 * n + 0.5).astype(np.int64)
    if c1 > 0:
        cut1 = np.maximum(cut1, 1)
    cut2 = np.maximum(np.floor(c2 * n + 0.5).astype(np.int64), cut1)
    return _parts(inter, (pos >= cut1).astype(np.int8) + (pos >= cut2))


def split_leave_last(inter: Interactions, n_test: int = 1, n_valid: int = 1) -> Split:
    """Per-user leave-last-n by timestamp (see the module docstring)."""
    if inter.timestamps is None:
        raise DataError(f"{inter.source}: leave-last-n needs timestamps, this data has none")
    if n_test < 0 or n_valid < 0:
        raise DataError(f"leave-last-n needs n_test, n_valid >= 0, got {n_test}, {n_valid}")
    rows = inter.rows()
    pos = _positions(inter, np.lexsort((inter.matrix.indices, inter.timestamps, rows)))
    n = np.diff(inter.matrix.indptr)[rows]
    from_end = n - 1 - pos
    nt = np.minimum(n_test, n - 1)
    nv = np.minimum(n_valid, n - 1 - nt)
    return _parts(inter, np.where(from_end < nt, 2, np.where(from_end < nt + nv, 1, 0)).astype(np.int8))


def split_time(
    inter: Interactions,
    ratios: Sequence[float] | None = (0.8, 0.1, 0.1),
    *,
    cuts: tuple[float, float] | None = None,
) -> Split:
    """Global time split at ``cuts = (valid_start, test_start)`` (seconds), or at the
    time quantiles of ``ratios``; entries at a cut go to the later part."""
    if inter.timestamps is None:
        raise DataError(f"{inter.source}: a time split needs timestamps, this data has none")
    ts = inter.timestamps
    if cuts is None:
        c1, c2, _ = _bounds(ratios)
        ordered = np.sort(ts)

        def at(c):
            return ordered[int(np.floor(c * len(ts)))] if c * len(ts) < len(ts) else np.inf

        cuts = (at(c1), at(c2))
    if cuts[1] < cuts[0]:
        raise DataError(f"time split: the test cut {cuts[1]} precedes the valid cut {cuts[0]}")
    return _parts(inter, (ts >= cuts[0]).astype(np.int8) + (ts >= cuts[1]))


def k_core(inter: Interactions, k: int = 5, *, user_k: int | None = None, item_k: int | None = None) -> Interactions:
    """Repeatedly drop entries of users with fewer than ``user_k`` and items with fewer
    than ``item_k`` interactions (both ``k`` by default) until none is left."""
    user_k, item_k = (k if user_k is None else user_k), (k if item_k is None else item_k)
    rows, cols = inter.rows(), inter.matrix.indices
    mask = np.ones(inter.nnz, dtype=bool)
    while True:
        ucount = np.bincount(rows[mask], minlength=inter.n_users)
        icount = np.bincount(cols[mask], minlength=inter.n_items)
        keep = mask & (ucount[rows] >= user_k) & (icount[cols] >= item_k)
        if keep.sum() == mask.sum():
            break
        mask = keep
    return inter.subset(mask, dropped="k_core")


def to_implicit(inter: Interactions, threshold: float) -> Interactions:
    """Keep entries with weight >= ``threshold`` (e.g. rating >= 4) as weight 1."""
    kept = inter.subset(inter.matrix.data >= threshold, dropped="threshold")
    return kept.with_weights(np.ones(kept.nnz, dtype=np.float32))


def _is_split_file(p: Path) -> bool:
    stem, suffix = p.name.rsplit(".", 1) if "." in p.name else (p.name, "")
    return p.is_file() and (
        (stem in SPLIT_NAMES and suffix in ("txt", "parquet")) or p.name in ("user_ids.parquet", "item_ids.parquet")
    )


def check_split_dir(out: str | Path) -> Path:
    """Check that a split can be written to ``out`` before any work: not a file, not under
    one, writable, and holding nothing but the files of an earlier split."""
    return check_output_path(out, _is_split_file, "rechash split")


def save_split(split: Split, out: str | Path, format: str = "auto") -> list[Path]:
    """Write a split to ``out``: ``train``/``valid``/``test`` plus ``user_ids.parquet`` and
    ``item_ids.parquet`` (columns ``index``, ``user_id``/``item_id``: internal -> external).

    ``format="auto"`` writes adjacency text (``.txt``) when both id maps are exactly
    0..n-1 integers and the data is unweighted without timestamps (nothing is lost), and
    Parquet (``.parquet``: ``user_id, item_id, weight[, timestamp]``) otherwise. Empty
    parts are not written. The directory is written as a hidden sibling and renamed into
    place, replacing an earlier split there (so no part of it survives; any other content
    is refused, see :func:`check_split_dir`). Returns the written paths.
    """
    train = split.train
    lossless = (
        train.user_ids.is_range
        and train.item_ids.is_range
        and train.timestamps is None
        and all(np.all(p.matrix.data == 1) for p in split)
    )
    if format == "auto":
        format = "adjacency" if lossless else "parquet"
    if format not in ("adjacency", "parquet"):
        raise DataError(f"split output format must be auto, adjacency or parquet, got {format!r}")
    out = Path(out)
    suffix = ".txt" if format == "adjacency" else ".parquet"
    names = [f"{name}{suffix}" for name, part in zip(SPLIT_NAMES, split) if part.nnz]

    def fill(tmp: Path) -> None:
        for name, part in zip(SPLIT_NAMES, split):
            if part.nnz:
                save(part, tmp / f"{name}{suffix}", format)
        for ids, col, name in ((train.user_ids, C.USER_ID, "user_ids"), (train.item_ids, C.ITEM_ID, "item_ids")):
            ids.to_frame(col).to_parquet(tmp / f"{name}.parquet", index=False)

    replace_directory(out, fill, _is_split_file, "rechash split")
    return [out / name for name in names + ["user_ids.parquet", "item_ids.parquet"]]
