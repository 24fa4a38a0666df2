"""Float embeddings: the representation every float baseline (and a user's own model) shares."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from rechash.data.idmap import KIND_WORDS, IdMap, format_id
from rechash.errors import DataError


def _as_idmap(ids, what: str) -> IdMap:
    """``ids`` (an IdMap or external ids in row order) as an IdMap; ``what`` prefixes errors."""
    if isinstance(ids, IdMap):
        return ids
    try:
        return IdMap(ids)
    except DataError as exc:
        raise DataError(f"{what}: {exc}") from None


@dataclass(frozen=True)
class FloatEmbeddings:
    """User and item factor matrices whose dot product is the relevance score.

    Rows are indexed by internal ids (the data layer's IdMaps). ``fold_in``: the implicit-ALS
    parameters ``{"regularization", "alpha"}`` these factors were fitted with, so a new user's
    vector can be solved from their history exactly as implicit's ``recalculate_user`` does
    (:meth:`fold_in_users`); None when unknown (factors from elsewhere). ``user_ids`` /
    ``item_ids``: the external id of every row (an :class:`~rechash.data.IdMap` or a sequence
    of unique ids in row order, stored as an IdMap), so :meth:`aligned_to` can put the rows
    in a dataset's order or refuse. Factors from another system: pass the ids its rows
    stand for, e.g. ``FloatEmbeddings(U, V, user_ids=user_list, item_ids=item_list)``.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    fold_in: Mapping[str, float] | None = field(default=None, compare=False)
    user_ids: IdMap | Sequence | None = field(default=None, compare=False)
    item_ids: IdMap | Sequence | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        u, i = np.asarray(self.user_factors), np.asarray(self.item_factors)
        if u.ndim != 2 or i.ndim != 2 or u.shape[1] != i.shape[1]:
            raise DataError(f"embeddings: expected (users, d) and (items, d) with one d, got {u.shape} and {i.shape}")
        if not (np.isfinite(u).all() and np.isfinite(i).all()):
            raise DataError("embeddings: factors contain NaN or infinity")
        object.__setattr__(self, "user_factors", np.ascontiguousarray(u, dtype=np.float32))
        object.__setattr__(self, "item_factors", np.ascontiguousarray(i, dtype=np.float32))
        for side, factors in (("user", u), ("item", i)):
            ids = getattr(self, f"{side}_ids")
            if ids is not None and not isinstance(ids, IdMap):
                ids = _as_idmap(ids, f"embeddings: {side}_ids")
                object.__setattr__(self, f"{side}_ids", ids)
            if ids is not None and len(ids) != len(factors):
                raise DataError(f"embeddings: {len(ids)} {side}_ids for {len(factors)} {side} rows")

    def aligned_to(
        self, user_ids: IdMap | Sequence, item_ids: IdMap | Sequence, what: str = "embeddings"
    ) -> FloatEmbeddings:
        """These embeddings with their rows in the order of a dataset's id maps (``user_ids``,
        ``item_ids``: IdMaps, or external ids in internal order), carrying those maps.

        Rows that carry ids are reordered when they cover exactly the dataset's ids (the
        same set, any order); otherwise one :class:`DataError` line names the first
        mismatch: the first id of the data the embeddings lack, else the first id of the
        embeddings the data lacks (ids of another kind, strings against integers, lack them
        all). Rows without ids are accepted only when the row counts match, with a
        :class:`UserWarning` that they are assumed to follow the data's internal id order
        (nothing can check them); a count mismatch is refused."""
        rows, maps = [], []
        for side, own, data, factors in (
            ("user", self.user_ids, user_ids, self.user_factors),
            ("item", self.item_ids, item_ids, self.item_factors),
        ):
            data = _as_idmap(data, f"{what}: the data's {side} ids")
            maps.append(data)
            if own is None:
                if len(factors) != len(data):
                    raise DataError(
                        f"{what}: {len(factors)} {side} rows but the data has {len(data)} {side}s, and no "
                        f"{side}_ids to align them by"
                    )
                warnings.warn(
                    f"{what}: no {side}_ids given, the {len(factors)} {side} rows are assumed to follow the "
                    f"data's internal {side} id order; pass {side}_ids= to have them checked",
                    UserWarning,
                    stacklevel=3,
                )
                rows.append(factors)
                continue
            if own == data:
                rows.append(factors)
                continue
            ext = data.external_ids
            if own.kind != data.kind and "other" not in (own.kind, data.kind) and len(ext):
                raise DataError(
                    f"{what}: {side} {format_id(ext[0])} of the data is not among the {side}_ids of the "
                    f"embeddings ({len(ext)} missing: the embeddings' {side} ids are {KIND_WORDS[own.kind]}, "
                    f"the data's {KIND_WORDS[data.kind]})"
                )
            pos = own.to_internal(ext, strict=False)
            if (pos < 0).any():
                first = ext[np.flatnonzero(pos < 0)[0]]
                raise DataError(
                    f"{what}: {side} {format_id(first)} of the data is not among the {side}_ids of the embeddings "
                    f"({int((pos < 0).sum())} missing)"
                )
            if len(own) != len(data):
                extra = own.external_ids[np.setdiff1d(np.arange(len(own)), pos)[0]]
                raise DataError(
                    f"{what}: {side} {format_id(extra)} of the embeddings is not in the data "
                    f"({len(own) - len(data)} extra)"
                )
            rows.append(factors[pos])
        return FloatEmbeddings(rows[0], rows[1], fold_in=self.fold_in, user_ids=maps[0], item_ids=maps[1])

    @property
    def dim(self) -> int:
        return self.user_factors.shape[1]

    def fold_in_users(self, histories: sp.spmatrix) -> np.ndarray:
        """``(n, d)`` user vectors of history rows (CSR over the item ids, weights as in training)
        by the ALS closed form ``(Y^T Y + Y^T (C - I) Y + reg I)^-1 Y^T C p`` with implicit's
        confidence ``C = alpha * weight`` on observed items: the vector ALS would give the user,
        the items held fixed (equal to implicit's ``recalculate_user``)."""
        if self.fold_in is None:
            raise DataError("these embeddings carry no ALS parameters (fold_in): new users cannot be folded in")
        reg, alpha = float(self.fold_in["regularization"]), float(self.fold_in["alpha"])
        rows = sp.csr_matrix(histories, dtype=np.float64)
        if rows.shape[1] != len(self.item_factors):
            raise DataError(
                f"histories have {rows.shape[1]} columns, the embeddings know {len(self.item_factors)} items"
            )
        y = self.item_factors.astype(np.float64)
        base = y.T @ y + reg * np.eye(self.dim)
        out = np.zeros((rows.shape[0], self.dim), dtype=np.float32)
        for r in range(rows.shape[0]):
            items = rows.indices[rows.indptr[r] : rows.indptr[r + 1]]
            if len(items) == 0:
                continue
            conf = alpha * rows.data[rows.indptr[r] : rows.indptr[r + 1]]
            yi = y[items]
            out[r] = np.linalg.solve(base + (yi.T * (conf - 1.0)) @ yi, yi.T @ conf)
        return out

    def scores(self, users: np.ndarray) -> np.ndarray:
        """Dense ``(len(users), n_items)`` dot-product scores."""
        return self.user_factors[np.asarray(users)] @ self.item_factors.T
