"""Float embeddings: the representation every float baseline (and a user's own model) shares."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rechash.errors import DataError


@dataclass(frozen=True)
class FloatEmbeddings:
    """User and item factor matrices whose dot product is the relevance score.

    Rows are indexed by internal ids (the data layer's IdMaps).
    """

    user_factors: np.ndarray
    item_factors: np.ndarray

    def __post_init__(self) -> None:
        u, i = self.user_factors, self.item_factors
        if u.ndim != 2 or i.ndim != 2 or u.shape[1] != i.shape[1]:
            raise DataError(f"embeddings: expected (users, d) and (items, d) with one d, got {u.shape} and {i.shape}")
        if not (np.isfinite(u).all() and np.isfinite(i).all()):
            raise DataError("embeddings: factors contain NaN or infinity")
        object.__setattr__(self, "user_factors", np.ascontiguousarray(u, dtype=np.float32))
        object.__setattr__(self, "item_factors", np.ascontiguousarray(i, dtype=np.float32))

    @property
    def dim(self) -> int:
        return self.user_factors.shape[1]

    def scores(self, users: np.ndarray) -> np.ndarray:
        """Dense ``(len(users), n_items)`` dot-product scores."""
        return self.user_factors[np.asarray(users)] @ self.item_factors.T
