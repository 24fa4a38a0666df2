"""User and item towers: each maps an entity to a real vector ``z`` in R^B.

* Item tower: ID embedding, plus optional side features through a small MLP. Items
  without training interactions use the feature path only (their ID row is masked).
* User tower: ID embedding and/or a history encoder (weighted mean of item-side
  "context" embeddings of the user's items, then a linear map), so a user unseen at
  training time is a forward pass over their history. Users without training
  interactions use the history path only.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def pool_csr(rows: sp.spmatrix, table: np.ndarray) -> np.ndarray:
    """Weighted mean of ``table`` rows per CSR row (``w / sum(w)``); empty rows give zeros."""
    rows = sp.csr_matrix(rows, dtype=np.float32)
    sums = np.asarray(rows.sum(axis=1)).ravel()
    scale = np.where(sums > 0, 1.0 / np.where(sums > 0, sums, 1.0), 0.0).astype(np.float32)
    return np.asarray(sp.diags(scale) @ (rows @ table), dtype=np.float32)


class ItemTower(nn.Module):
    """``z_i = E[i] * known_i + MLP(features_i)`` (feature path only when features are given)."""

    def __init__(self, n_items: int, bits: int, n_features: int = 0, hidden: int = 128, use_id: bool = True) -> None:
        super().__init__()
        self.use_id = use_id
        self.id_emb = nn.Embedding(n_items, bits) if use_id else None
        self.feat_mlp = (
            nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, bits)) if n_features else None
        )
        self.register_buffer("known", torch.ones(n_items))
        self.register_buffer("features", torch.zeros(n_items, n_features))

    def forward(
        self, items: torch.Tensor, id_keep: torch.Tensor | None = None, table: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``table``: ID rows to use instead of the embedding (graph-propagated, see :meth:`Towers.propagated`)."""
        z = 0.0
        if self.id_emb is not None:
            keep = self.known[items] if id_keep is None else self.known[items] * id_keep
            z = (self.id_emb(items) if table is None else table[items]) * keep[:, None]
        if self.feat_mlp is not None:
            z = z + self.feat_mlp(self.features[items])
        return z


class UserTower(nn.Module):
    """``z_u = E[u] * known_u + W . pool(C[history(u)]) + b`` (either part optional)."""

    def __init__(self, n_users: int, n_items: int, bits: int, use_id: bool = True, use_history: bool = True) -> None:
        super().__init__()
        if not (use_id or use_history):
            raise ValueError("the user tower needs an ID embedding or a history encoder (or both)")
        self.id_emb = nn.Embedding(n_users, bits) if use_id else None
        self.hist_emb = nn.Embedding(n_items, bits) if use_history else None
        self.hist_proj = nn.Linear(bits, bits) if use_history else None
        self.register_buffer("known", torch.ones(n_users))

    @property
    def use_history(self) -> bool:
        return self.hist_emb is not None

    def pool_sampled(self, items: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Weighted mean of context embeddings over ``(b, cap)`` sampled history items (weight 0 = padding)."""
        b, cap = items.shape
        w = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-12)
        crow = torch.arange(0, b * cap + 1, cap, device=items.device)
        with warnings.catch_warnings():  # "sparse CSR support is in beta"; the (b, n_items) product is exact
            warnings.simplefilter("ignore", UserWarning)
            rows = torch.sparse_csr_tensor(crow, items.reshape(-1), w.reshape(-1), (b, self.hist_emb.num_embeddings))
        return rows @ self.hist_emb.weight  # backward: rows^T @ grad, cheaper than embedding-bag backward

    def pool(self, rows: sp.spmatrix) -> torch.Tensor:
        """Exact weighted-mean pooling of whole CSR history rows (inference; no gradient)."""
        table = self.hist_emb.weight.detach().cpu().numpy()
        return torch.from_numpy(pool_csr(rows, table)).to(self.hist_emb.weight.device)

    def forward(
        self,
        users: torch.Tensor,
        pooled: torch.Tensor | None = None,
        id_keep: torch.Tensor | None = None,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``pooled``: pooled history vectors of ``users`` (from :meth:`pool` or :meth:`pool_sampled`);
        ``table``: ID rows to use instead of the embedding (graph-propagated)."""
        z = 0.0
        if self.id_emb is not None:
            keep = self.known[users] if id_keep is None else self.known[users] * id_keep
            z = (self.id_emb(users) if table is None else table[users]) * keep[:, None]
        if self.hist_emb is not None:
            if pooled is None:
                raise ValueError("the history encoder needs the users' pooled history")
            z = z + self.hist_proj(pooled)
        return z


class Towers(nn.Module):
    """Both towers plus the learnable softmax temperature (``logits = s / tau``)."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        bits: int,
        *,
        user_id: bool = True,
        user_history: bool = True,
        n_item_features: int = 0,
        hidden: int = 128,
        tau: float = 0.1,
    ) -> None:
        super().__init__()
        self.bits = bits
        self.user = UserTower(n_users, n_items, bits, user_id, user_history)
        self.item = ItemTower(n_items, bits, n_item_features, hidden)
        self.log_tau = nn.Parameter(torch.tensor(float(np.log(tau))))

    @property
    def tau(self) -> torch.Tensor:
        return self.log_tau.exp()

    def propagated(self, adjacency: torch.Tensor, layers: int) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN propagation of the ID embeddings: the mean of ``A^l [E_users; E_items]`` over
        ``l = 0..layers`` (``adjacency`` from :func:`normalized_adjacency`) -> (user rows, item rows)."""
        e = torch.cat([self.user.id_emb.weight, self.item.id_emb.weight])
        total = e
        for _ in range(layers):
            e = adjacency @ e
            total = total + e
        total = total / (layers + 1)
        n_users = self.user.id_emb.num_embeddings
        return total[:n_users], total[n_users:]

    def bake_propagation(self, adjacency: torch.Tensor, layers: int) -> None:
        """Replace the ID embeddings by their propagated rows, so inference (and a saved model)
        is a plain lookup that needs no graph."""
        with torch.no_grad():
            users, items = self.propagated(adjacency, layers)
            self.user.id_emb.weight.copy_(users)
            self.item.id_emb.weight.copy_(items)


def normalized_adjacency(matrix: sp.spmatrix) -> torch.Tensor:
    """``D^-1/2 A D^-1/2`` of the bipartite user-item graph (binary edges) as a torch sparse CSR
    ``(n_users + n_items)`` square matrix, users first."""
    r = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    r.data[:] = 1.0
    a = sp.bmat([[None, r], [r.T, None]], format="csr").astype(np.float32)
    degree = np.asarray(a.sum(axis=1)).ravel()
    inv = np.where(degree > 0, 1.0 / np.sqrt(np.maximum(degree, 1e-12)), 0.0).astype(np.float32)
    a = (sp.diags(inv) @ a @ sp.diags(inv)).tocsr()
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(a.indptr.astype(np.int64)),
            torch.from_numpy(a.indices.astype(np.int64)),
            torch.from_numpy(a.data),
            a.shape,
        )
