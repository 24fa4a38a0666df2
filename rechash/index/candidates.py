"""Candidate generation: each user's nearest items by Hamming distance, seen items removed.

>>> gen = CandidateGenerator(item_codes, seen=train_csr, tie_break=reranker.score)
>>> cands = gen.generate(user_codes, users, CandidatePolicy.adaptive(200, 1000))
>>> cands.to_frame()          # user_id, item_id, hamming, rank (internal ids)
>>> items, dist = cands.padded()   # (n_users, width), -1 padded

Policies (:class:`CandidatePolicy`):

- ``top_k(k)``: the ``k`` nearest unseen items;
- ``fixed_radius(r, max_candidates=None)``: every unseen item within distance ``r``
  (inclusive), optionally the nearest ``max_candidates`` of them;
- ``adaptive(min_candidates, max_candidates)``: per user the smallest radius that holds
  at least ``min_candidates`` unseen items, truncated to the ``max_candidates`` nearest.

Seen items are removed inside the scan, before any truncation, so a heavy user still
gets a full list. Order within a user: distance ascending, then the tie-break score
descending (``tie_break(users, candidates) -> scores``, the signature of
``Reranker.score``: the re-ranker decides which of the items tied at the cut-off
distance survive), then item id ascending.

The engine is the exact flat scan, or multi-index hashing for radius policies when
:func:`rechash.index.mih.prefer_mih` says probing is cheaper than scanning (small radius
relative to B, large catalog); both are exact, so the choice never changes a result.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash import columns as C
from rechash.codes.bits import check_same_bits, hamming_rows, validate_packed
from rechash.errors import DataError
from rechash.index.base import csr_from_padded, padded_from_csr
from rechash.index.flat import ExactIndex
from rechash.index.mih import MultiIndexHashing, prefer_mih
from rechash.rank.order import order_pool

TieBreak = Callable[[np.ndarray, np.ndarray], np.ndarray]
Mode = Literal["top_k", "radius", "adaptive"]


@dataclass(frozen=True)
class CandidatePolicy:
    """How many candidates each user gets (build with the class methods)."""

    mode: Mode
    k: int | None = None
    radius: int | None = None
    min_candidates: int | None = None
    max_candidates: int | None = None

    def __post_init__(self) -> None:
        def positive(name: str, value: int | None, required: bool) -> None:
            if value is None and not required:
                return
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or value < (0 if name == "radius" else 1)
            ):
                raise DataError(
                    f"candidate policy: {name} must be a "
                    f"{'non-negative' if name == 'radius' else 'positive'} integer, got {value!r}"
                )

        if self.mode == "top_k":
            positive("k", self.k, True)
        elif self.mode == "radius":
            positive("radius", self.radius, True)
            positive("max_candidates", self.max_candidates, False)
        elif self.mode == "adaptive":
            positive("min_candidates", self.min_candidates, True)
            positive("max_candidates", self.max_candidates, True)
            if self.max_candidates < self.min_candidates:
                raise DataError(
                    f"candidate policy: max_candidates ({self.max_candidates}) "
                    f"is below min_candidates ({self.min_candidates})"
                )
        else:
            raise DataError(f"candidate policy: unknown mode {self.mode!r}")

    @classmethod
    def top_k(cls, k: int) -> CandidatePolicy:
        """The ``k`` nearest unseen items."""
        return cls("top_k", k=k)

    @classmethod
    def fixed_radius(cls, radius: int, max_candidates: int | None = None) -> CandidatePolicy:
        """Every unseen item within ``radius`` (inclusive), at most ``max_candidates`` nearest."""
        return cls("radius", radius=radius, max_candidates=max_candidates)

    @classmethod
    def adaptive(cls, min_candidates: int, max_candidates: int) -> CandidatePolicy:
        """Smallest radius with ``>= min_candidates`` unseen items, then the nearest ``max_candidates``."""
        return cls("adaptive", min_candidates=min_candidates, max_candidates=max_candidates)

    @classmethod
    def from_options(
        cls,
        k: int | None = None,
        radius: int | None = None,
        min_candidates: int | None = None,
        max_candidates: int | None = None,
    ) -> CandidatePolicy:
        """The policy of the CLI options ``--k K [--radius R | --min-candidates A --max-candidates B]``.

        ``radius`` -> fixed radius (capped by ``max_candidates`` when given); ``min`` and
        ``max`` -> adaptive; neither -> top ``k``.
        """
        if radius is not None:
            if min_candidates is not None:
                raise DataError("--radius and --min-candidates exclude each other (fixed or adaptive radius)")
            return cls.fixed_radius(radius, max_candidates)
        if min_candidates is not None or max_candidates is not None:
            if min_candidates is None or max_candidates is None:
                raise DataError("the adaptive radius needs both --min-candidates and --max-candidates")
            return cls.adaptive(min_candidates, max_candidates)
        if k is None:
            raise DataError("give --k, --radius, or --min-candidates with --max-candidates")
        return cls.top_k(k)

    @property
    def limit(self) -> int | None:
        """Most candidates a user can get (None: unbounded, a plain radius)."""
        return self.k if self.mode == "top_k" else self.max_candidates


@dataclass
class Candidates:
    """Candidates of a batch of users, CSR by user: user ``users[u]`` owns
    ``items[lims[u]:lims[u+1]]`` (internal ids), in rank order."""

    users: np.ndarray  #: (n,) int64 internal user ids
    lims: np.ndarray  #: (n+1,) int64 offsets
    items: np.ndarray  #: (total,) int64 internal item ids
    hamming: np.ndarray  #: (total,) int32 distances
    #: (n,) int32 radius each user's candidates were drawn from: the policy's radius, the
    #: adaptive radius, or the k-th distance (B where fewer than k items were left)
    radius: np.ndarray
    filtered: np.ndarray  #: (n,) int64 seen items within that radius, removed by the filter (0 when not counted)
    method: str  #: "flat" or "mih"
    #: (total,) float64 tie-break scores of the items (the re-ranker's, when it broke the
    #: ties: carried so the pool is never scored twice), None without a tie-break
    scores: np.ndarray | None = None

    @property
    def counts(self) -> np.ndarray:
        """Candidates per user."""
        return np.diff(self.lims)

    @property
    def n_filtered(self) -> int:
        """Seen items the filter removed, over all users."""
        return int(self.filtered.sum())

    def __len__(self) -> int:
        return int(self.lims[-1])

    def padded(self, width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(items int64, hamming int32)`` of shape ``(n, width)``, -1 padded (width: largest count)."""
        width = int(self.counts.max(initial=0)) if width is None else int(width)
        d, i = padded_from_csr(self.lims, self.hamming, self.items, width)
        return i, d

    def padded_scored(self, width: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(items, hamming, scores)`` of shape ``(n, width)``: :meth:`padded` plus the
        tie-break scores (-inf padded; zeros without a tie-break)."""
        items, dist = self.padded(width)
        out = np.full(items.shape, -np.inf)
        counts = np.minimum(self.counts, items.shape[1])
        rows = np.repeat(np.arange(len(counts)), counts)
        cols = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        out[rows, cols] = 0.0 if self.scores is None else self.scores[np.repeat(self.lims[:-1], counts) + cols]
        return items, dist, out

    def to_frame(self) -> pd.DataFrame:
        """Tidy table ``user_id, item_id, hamming, rank`` (rank 1.. per user; internal ids)."""
        counts = self.counts
        rank = np.arange(len(self.items)) - np.repeat(self.lims[:-1], counts) + 1
        return pd.DataFrame(
            {
                C.USER_ID: np.repeat(self.users, counts),
                C.ITEM_ID: self.items,
                C.HAMMING: self.hamming.astype(np.int32),
                C.RANK: rank.astype(np.int32),
            }
        )

    @classmethod
    def concat(cls, parts: list[Candidates]) -> Candidates:
        """One result from consecutive batches."""
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0] + [int(p.lims[-1]) for p in parts[:-1]])
        lims = np.concatenate([[0]] + [p.lims[1:] + o for p, o in zip(parts, offsets)]).astype(np.int64)
        return cls(
            users=np.concatenate([p.users for p in parts]),
            lims=lims,
            items=np.concatenate([p.items for p in parts]),
            hamming=np.concatenate([p.hamming for p in parts]),
            radius=np.concatenate([p.radius for p in parts]),
            filtered=np.concatenate([p.filtered for p in parts]),
            method="+".join(sorted({p.method for p in parts})),
            scores=None if parts[0].scores is None else np.concatenate([p.scores for p in parts]),
        )


class CandidateGenerator:
    """Exact Hamming candidates for users, seen items filtered, ties broken by rule.

    ``items``: packed item codes ``(n_items, B/8)``, or an index of them (an
    :class:`~rechash.index.ExactIndex` or :class:`~rechash.index.MultiIndexHashing`
    is used as it is, e.g. memory-mapped; any other ``HammingIndex`` gives its codes).
    ``seen``: users x items CSR of items never to return (rows = internal user ids).
    ``tie_break``: ``f(users (n,), candidates (n, C) -1 padded) -> (n, C) float`` scores,
    higher first, deciding order and cut-off among equal distances (e.g.
    ``DotReranker(...).score``); without it ties go by item id.
    ``method``: ``"auto"`` (see :func:`rechash.index.mih.prefer_mih`), ``"flat"`` or ``"mih"``.
    ``batch_size``: users per kernel call (bounds memory; results do not depend on it).
    ``count_filtered``: count the seen items inside each user's radius
    (:attr:`Candidates.filtered`); recommenders that do not report it skip that work.
    """

    def __init__(
        self,
        items: np.ndarray | Any,
        *,
        seen: sp.spmatrix | None = None,
        tie_break: TieBreak | Any | None = None,
        method: Literal["auto", "flat", "mih"] = "auto",
        n_threads: int | None = None,
        batch_size: int = 4096,
        count_filtered: bool = True,
    ) -> None:
        self._mih: MultiIndexHashing | None = None
        if isinstance(items, np.ndarray):
            validate_packed(items, "item codes")
            self.flat = ExactIndex.from_codes(items, n_threads=n_threads)
        elif isinstance(items, MultiIndexHashing):
            self._mih, self.flat = items, items.flat
        elif isinstance(items, ExactIndex):
            self.flat = items
        elif hasattr(items, "codes") and hasattr(items, "n_bits"):
            self.flat = ExactIndex.from_codes(np.ascontiguousarray(items.codes), n_threads=n_threads)
        else:
            raise DataError(
                f"CandidateGenerator: items must be packed codes or a HammingIndex, got {type(items).__name__}"
            )
        if n_threads is not None:
            self.flat.n_threads = n_threads
        if method not in ("auto", "flat", "mih"):
            raise DataError(f"CandidateGenerator: method must be 'auto', 'flat' or 'mih', got {method!r}")
        self.method = method
        self.batch_size = max(1, int(batch_size))
        self.count_filtered = count_filtered
        self.seen = self._check_seen(seen)
        if tie_break is not None and not callable(tie_break):
            score = getattr(tie_break, "score", None)
            if not callable(score):
                raise DataError("CandidateGenerator: tie_break must be callable(users, candidates) or have .score")
            tie_break = score
        self.tie_break: TieBreak | None = tie_break

    # ---- properties --------------------------------------------------------------------
    @property
    def n_bits(self) -> int:
        return self.flat.n_bits

    @property
    def n_items(self) -> int:
        return self.flat.ntotal

    @property
    def mih(self) -> MultiIndexHashing:
        """The multi-index hashing engine over the same codes (built on first use)."""
        if self._mih is None:
            self._mih = MultiIndexHashing.from_flat(self.flat)
        return self._mih

    def _check_seen(self, seen: sp.spmatrix | None) -> sp.csr_matrix | None:
        if seen is None:
            return None
        if not sp.issparse(seen):
            raise DataError("CandidateGenerator: seen must be a scipy sparse users x items matrix")
        seen = sp.csr_matrix(seen)
        if seen.shape[1] > self.n_items:
            raise DataError(
                f"CandidateGenerator: seen has {seen.shape[1]} item columns but there are {self.n_items} item codes"
            )
        if not seen.has_sorted_indices:
            seen = seen.sorted_indices()
        return seen

    def choose_method(self, policy: CandidatePolicy, n_users: int) -> str:
        """``"mih"`` or ``"flat"`` for this policy and batch (the documented rule)."""
        if self.method != "auto":
            return self.method
        if policy.mode == "radius" and prefer_mih(self.n_bits, policy.radius, self.n_items, n_users):
            return "mih"
        return "flat"

    # ---- generation ----------------------------------------------------------------------
    def generate(
        self,
        user_codes: np.ndarray,
        users: np.ndarray | None = None,
        policy: CandidatePolicy | None = None,
        *,
        k: int | None = None,
        radius: int | None = None,
        min_candidates: int | None = None,
        max_candidates: int | None = None,
    ) -> Candidates:
        """Candidates for ``users`` (internal ids; default: every row of ``user_codes``).

        ``user_codes``: packed codes of all users, row = internal user id (so
        ``user_codes[users]`` are the batch's codes and ``seen[users]`` their seen items).
        Give a ``policy``, or the CLI-style options (see :meth:`CandidatePolicy.from_options`).
        """
        if policy is None:
            policy = CandidatePolicy.from_options(k, radius, min_candidates, max_candidates)
        user_codes = check_same_bits(user_codes, self.n_bits, "user codes")
        if users is None:
            users = np.arange(len(user_codes), dtype=np.int64)
        users = np.asarray(users, dtype=np.int64).ravel()
        if len(users) and (users.min() < 0 or users.max() >= len(user_codes)):
            raise DataError(f"users must be internal ids in 0..{len(user_codes) - 1}")
        if self.seen is not None and len(users) and users.max() >= self.seen.shape[0]:
            raise DataError(f"user {int(users.max())} has no row in the seen matrix ({self.seen.shape[0]} rows)")
        method = self.choose_method(policy, len(users))
        engine = self.mih if method == "mih" else self.flat
        parts = [
            self._batch(
                engine, method, users[s : s + self.batch_size], user_codes[users[s : s + self.batch_size]], policy
            )
            for s in range(0, len(users), self.batch_size)
        ] or [self._batch(engine, method, users, user_codes[:0], policy)]
        return Candidates.concat(parts)

    def _batch(self, engine, method: str, users: np.ndarray, codes: np.ndarray, policy: CandidatePolicy) -> Candidates:
        n = len(users)
        exclude = None
        if self.seen is not None:
            exclude = self.seen[users]
            if exclude.shape[1] < self.n_items:  # a seen matrix narrower than the catalog
                exclude = sp.csr_matrix((exclude.data, exclude.indices, exclude.indptr), shape=(n, self.n_items))
        ties = self.tie_break is not None
        limit = policy.limit
        if policy.mode == "radius" and limit is None:
            lims, dist, ids = engine.range_search(codes, policy.radius, exclude=exclude)
            radius = np.full(n, policy.radius, dtype=np.int32)
        else:
            d, i, _ = engine.select(codes, limit, radius=policy.radius, exclude=exclude, ties=ties)
            if policy.mode == "adaptive":
                m = policy.min_candidates
                have = (i >= 0).sum(axis=1)
                r = np.where(have >= m, d[:, m - 1], self.n_bits) if d.shape[1] >= m else np.full(n, self.n_bits)
                cut = d > r[:, None]
                d[cut], i[cut] = -1, -1
            lims, dist, ids = csr_from_padded(d, i)
            if policy.mode == "radius":
                radius = np.full(n, policy.radius, dtype=np.int32)
            elif policy.mode == "adaptive":
                radius = r.astype(np.int32)
            else:
                radius = None
        scores = None
        if ties:
            lims, dist, ids, scores = self._break_ties(users, lims, dist, ids, limit)
        elif limit is not None and np.diff(lims).max(initial=0) > limit:  # pragma: no cover - engines honour k
            raise AssertionError("engine returned more than the limit without ties")
        if radius is None:  # top-k: the k-th distance, or B when the catalog ran out
            counts = np.diff(lims)
            last = dist[np.maximum(lims[1:] - 1, 0)] if len(dist) else np.zeros(n, dtype=np.int32)
            radius = np.where(counts >= limit, last, self.n_bits).astype(np.int32)
        filtered = self._filtered(users, codes, exclude, radius) if self.count_filtered else np.zeros(n, dtype=np.int64)
        return Candidates(users, lims, ids, dist.astype(np.int32), radius, filtered, method, scores)

    def _break_ties(self, users, lims, dist, ids, limit):
        """Order each user's candidates by (distance, score desc, id) and keep ``limit``."""
        width = int(np.diff(lims).max(initial=0))
        if width == 0:
            return lims, dist, ids, np.zeros(0)
        pd_, pi = padded_from_csr(lims, dist, ids, width)
        pd_, pi, ps = order_pool(pd_, pi, self.tie_break(users, pi), limit)
        lims, dist, ids = csr_from_padded(pd_, pi)
        return lims, dist, ids, ps[pi >= 0]

    def _filtered(self, users, codes, exclude, radius) -> np.ndarray:
        """Per user: seen items within the user's radius (what the filter removed)."""
        n = len(users)
        if exclude is None or exclude.nnz == 0:
            return np.zeros(n, dtype=np.int64)
        rows = np.repeat(np.arange(n), np.diff(exclude.indptr))
        cols = exclude.indices.astype(np.int64)
        d = hamming_rows(codes[rows], self.flat.codes_of(cols))
        return np.bincount(rows[d <= radius[rows]], minlength=n).astype(np.int64)
