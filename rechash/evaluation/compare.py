"""Compare recommenders ("arms") on the same users: accuracy, candidate recall, cost, A/B stats.

An :class:`Arm` wraps a recommender of the one contract
(:class:`rechash.models.base.RecommenderBase`, implicit's ``recommend``): exact float
search, Annoy, rechash's ``CodeRecommender`` (the object ``rechash candidates`` runs), a
re-ranked first stage, a team's own model. Latency is one ``recommend`` call per user with
every kernel bounded to one thread (:func:`rechash.threads.thread_limit`). :func:`compare` evaluates
every arm on one set of users under the protocol of DESIGN.md (full catalog, the
``exclude`` items removed, users with at least one test item) and returns a
:class:`ComparisonResult` that :func:`rechash.evaluation.report.write_report` renders.
Arms that share a ``group`` and differ by ``sweep`` (Annoy's ``search_k``, rechash's
radius or bits, the candidate-set size) are drawn as one curve in the plots.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash.errors import DataError
from rechash.evaluation.abtest import ArmCost, latency_quantiles, measure_latency, paired_differences
from rechash.rank.metrics import candidate_recall, item_coverage, overlap, per_user_metrics
from rechash.threads import thread_limit

DEFAULT_CANDIDATE_SIZES = (10, 20, 50, 100, 200, 500)


@dataclass
class Arm:
    """One arm: a recommender plus what it cost to obtain.

    ``build_seconds`` / ``index_bytes`` default to the recommender's attributes of the same
    name when it has them. ``group`` + ``sweep`` place the arm on a curve (e.g. group
    ``"ALS + Annoy"``, sweep ``{"search_k": 2000}``); ``in_summary`` arms appear in the
    summary table and the paired comparisons, the others only in the sweep table and plots.
    """

    name: str
    recommender: Any
    train_seconds: float = 0.0
    build_seconds: float | None = None
    index_bytes: float | None = None
    group: str | None = None
    sweep: Mapping[str, Any] | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    in_summary: bool = True
    candidate_recall: bool = True


@dataclass
class ArmResult:
    """Evaluation of one arm: per-user metrics, summary means, candidate recall curve, cost."""

    name: str
    group: str | None
    sweep: dict[str, Any]
    params: dict[str, Any]
    in_summary: bool
    cost: ArmCost
    per_user: pd.DataFrame
    coverage: float
    candidate_recall: dict[int, float]
    overlap: float = float("nan")
    items: np.ndarray | None = field(default=None, repr=False)
    n_users: int | None = None  # defaults to len(per_user)

    def __post_init__(self) -> None:
        if self.n_users is None:
            self.n_users = int(len(self.per_user))

    def means(self) -> dict[str, float]:
        return {c: float(v) for c, v in self.per_user.mean().items()}


@dataclass
class ComparisonResult:
    """Everything a report shows; ``to_dict`` is the JSON document."""

    arms: list[ArmResult]
    k: int
    baseline: str
    reference: str | None
    candidate_sizes: list[int]
    paired: pd.DataFrame
    n_items: int
    meta: dict[str, Any] = field(default_factory=dict)

    def arm(self, name: str) -> ArmResult:
        for a in self.arms:
            if a.name == name:
                return a
        raise KeyError(name)

    def summary(self) -> pd.DataFrame:
        """One row per summary arm: accuracy, coverage, candidate recall, overlap and cost."""
        return pd.DataFrame([_summary_row(a, self.k, self.candidate_sizes) for a in self.arms if a.in_summary])

    def sweeps(self) -> pd.DataFrame:
        """One row per arm that belongs to a group (sweep points), with its sweep values."""
        groups = list(dict.fromkeys(a.group for a in self.arms if a.group is not None))
        swept = [a for a in self.arms if a.group is not None]
        swept.sort(key=lambda a: (groups.index(a.group), *[_as_float(v) for v in a.sweep.values()]))
        rows = [
            {
                "group": a.group,
                "setting": ", ".join(f"{k}={v}" for k, v in a.sweep.items()),
                **_summary_row(a, self.k, self.candidate_sizes),
            }
            for a in swept
        ]
        return pd.DataFrame(rows)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ComparisonResult:
        """Rebuild a result from :meth:`to_dict` (e.g. a ``report.json``) to re-render a report.

        Per-user values are not stored in JSON: each arm's ``per_user`` becomes a one-row
        frame of its means, enough for summaries, plots and the stored paired statistics.
        """
        nan = float("nan")

        def num(v):
            return nan if v is None else v

        arms = [
            ArmResult(
                name=a["name"],
                group=a.get("group"),
                sweep=dict(a.get("sweep") or {}),
                params=dict(a.get("params") or {}),
                in_summary=bool(a.get("in_summary", True)),
                cost=ArmCost(**{k: num(v) for k, v in a["cost"].items()}),
                per_user=pd.DataFrame([{k: num(v) for k, v in a["metrics"].items()}]),
                coverage=num(a.get("coverage")),
                candidate_recall={int(c): num(v) for c, v in (a.get("candidate_recall") or {}).items()},
                overlap=num(a.get("overlap")),
                n_users=int(a.get("n_users", 0)),
            )
            for a in doc["arms"]
        ]
        paired = pd.DataFrame(doc.get("paired") or [])
        if len(paired):
            paired = paired.fillna(nan)
        return cls(
            arms=arms,
            k=int(doc["k"]),
            baseline=doc["baseline"],
            reference=doc.get("reference"),
            candidate_sizes=[int(c) for c in doc.get("candidate_sizes", [])],
            paired=paired,
            n_items=int(doc["n_items"]),
            meta=dict(doc.get("meta") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(
            {
                "meta": self.meta,
                "k": self.k,
                "n_items": self.n_items,
                "baseline": self.baseline,
                "reference": self.reference,
                "candidate_sizes": self.candidate_sizes,
                "arms": [
                    {
                        "name": a.name,
                        "group": a.group,
                        "sweep": a.sweep,
                        "params": a.params,
                        "in_summary": a.in_summary,
                        "n_users": a.n_users,
                        "metrics": a.means(),
                        "coverage": a.coverage,
                        "overlap": a.overlap,
                        "candidate_recall": {str(c): v for c, v in a.candidate_recall.items()},
                        "cost": a.cost.to_dict(),
                    }
                    for a in self.arms
                ],
                "paired": self.paired.to_dict(orient="records"),
            }
        )


def _summary_row(a: ArmResult, k: int, sizes: Sequence[int]) -> dict[str, Any]:
    m = a.means()
    cand_at = 200 if 200 in sizes or not sizes else max(sizes)
    return {
        "arm": a.name,
        f"Recall@{k}": m.get(f"recall@{k}"),
        f"NDCG@{k}": m.get(f"ndcg@{k}"),
        f"HR@{k}": m.get(f"hr@{k}"),
        f"MRR@{k}": m.get(f"mrr@{k}"),
        f"coverage@{k}": a.coverage,
        f"cand. recall@{cand_at}": a.candidate_recall.get(cand_at, float("nan")),
        f"overlap@{k}": a.overlap,
        "bytes/item": a.cost.bytes_per_item,
        "p50 ms": a.cost.latency_ms_p50,
        "p99 ms": a.cost.latency_ms_p99,
        "users/s": a.cost.users_per_second,
        "train s": a.cost.train_seconds,
        "build s": a.cost.build_seconds,
    }


def _as_float(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def _truth_matrix(test) -> sp.csr_matrix:
    return sp.csr_matrix(test.matrix if hasattr(test, "matrix") else test)


def top_lists(rec, users: np.ndarray, k: int, exclude: sp.csr_matrix | None) -> np.ndarray:
    """``(len(users), k)`` item ids through the recommender contract (implicit's
    ``recommend``), ``exclude`` (indexed by internal user id) filtered."""
    rows = None if exclude is None else exclude[users]
    ids, _ = rec.recommend(users, rows, N=k, filter_already_liked_items=rows is not None)
    return ids


def evaluate_arm(
    arm: Arm,
    users: np.ndarray,
    truth: sp.csr_matrix,
    exclude: sp.csr_matrix | None,
    n_items: int,
    k: int = 20,
    candidate_sizes: Sequence[int] = DEFAULT_CANDIDATE_SIZES,
    latency_sample: int = 300,
    seed: int = 0,
) -> ArmResult:
    """Evaluate one arm on ``users`` (see :func:`compare`)."""
    rec = arm.recommender
    start = time.perf_counter()
    items = top_lists(rec, users, k, exclude)
    batch_seconds = time.perf_counter() - start
    if items.shape != (len(users), k):
        raise DataError(f"arm {arm.name!r}: recommend returned {items.shape}, expected {(len(users), k)}")
    per_user = per_user_metrics(items, users, truth, ks=(k,))
    curve: dict[int, float] = {}
    if arm.candidate_recall and candidate_sizes:
        first_stage = getattr(rec, "candidates", None)
        n = max(candidate_sizes)
        cands = first_stage(users, n, exclude).items if first_stage else top_lists(rec, users, n, exclude)
        cr = candidate_recall(cands, users, truth, candidate_sizes)
        per_user = per_user.join(cr)
        curve = {int(c.split("@")[1]): float(cr[c].mean()) for c in cr.columns}
    with thread_limit(1):
        lat = measure_latency(lambda u: top_lists(rec, u, k, exclude), users, latency_sample, seed)
    index_bytes = arm.index_bytes if arm.index_bytes is not None else getattr(rec, "index_bytes", None)
    build = arm.build_seconds if arm.build_seconds is not None else getattr(rec, "build_seconds", 0.0)
    cost = ArmCost(
        train_seconds=float(arm.train_seconds),
        build_seconds=float(build or 0.0),
        bytes_per_item=float(index_bytes) / n_items if index_bytes is not None else float("nan"),
        users_per_second=len(users) / batch_seconds if batch_seconds > 0 else float("nan"),
        **latency_quantiles(lat),
    )
    return ArmResult(
        name=arm.name,
        group=arm.group,
        sweep=dict(arm.sweep or {}),
        params=dict(arm.params),
        in_summary=arm.in_summary,
        cost=cost,
        per_user=per_user,
        coverage=item_coverage(items, n_items),
        candidate_recall=curve,
        items=items,
    )


def compare(
    arms: Sequence[Arm],
    test,
    exclude: sp.csr_matrix | None,
    users: np.ndarray | None = None,
    k: int = 20,
    candidate_sizes: Sequence[int] = DEFAULT_CANDIDATE_SIZES,
    baseline: str | None = None,
    reference: str | None = None,
    pairs: Sequence[tuple[str, str]] = (),
    paired_metrics: Sequence[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    latency_sample: int = 300,
    meta: Mapping[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ComparisonResult:
    """Evaluate ``arms`` on the same users and compare them pairwise against ``baseline``.

    ``test``: an :class:`~rechash.data.Interactions` (or users x items CSR) of held-out
    items; ``exclude``: users x items CSR of items no arm may recommend (the training
    items under DESIGN.md's protocol). ``users`` defaults to every user with a test item.
    ``baseline`` (default: the first summary arm) is compared with every other summary arm
    on ``paired_metrics`` (default Recall, NDCG, HR, MRR at ``k`` and candidate recall at
    200 when measured); ``pairs`` adds ``(arm, baseline)`` comparisons, e.g. a learned
    re-ranker against the dot re-ranker. ``reference`` names the arm whose top-``k`` is
    the overlap reference (exact float search). Latency uses a seeded sample of
    ``latency_sample`` users.
    """
    if not arms:
        raise DataError("compare: no arms")
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise DataError(f"compare: arm names must be unique, got {names}")
    truth = _truth_matrix(test)
    n_items = truth.shape[1]
    if users is None:
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
    users = np.asarray(users, dtype=np.int64)
    if not len(users):
        raise DataError("compare: no user has a test item")
    summary_names = [a.name for a in arms if a.in_summary]
    baseline = baseline or (summary_names[0] if summary_names else names[0])
    for name in [baseline, reference, *[n for p in pairs for n in p]]:
        if name is not None and name not in names:
            raise DataError(f"compare: unknown arm {name!r}; arms are {names}")
    results = []
    for arm in arms:
        if progress:
            progress(f"evaluating {arm.name}")
        results.append(evaluate_arm(arm, users, truth, exclude, n_items, k, candidate_sizes, latency_sample, seed))
    if reference is not None:
        ref = next(r for r in results if r.name == reference).items
        for r in results:
            r.overlap = float(np.nanmean(overlap(r.items, ref)))
    if paired_metrics is None:
        paired_metrics = [f"{m}@{k}" for m in ("recall", "ndcg", "hr", "mrr")]
        if 200 in candidate_sizes:
            paired_metrics.append("candidate_recall@200")
    per_user = {r.name: r.per_user for r in results}
    tables = []
    others = [n for n in summary_names if n != baseline]
    for arm_name, base_name in [(n, baseline) for n in others] + list(pairs):
        subset = {base_name: per_user[base_name], arm_name: per_user[arm_name]}
        common = [m for m in paired_metrics if all(m in f.columns for f in subset.values())]
        tables.append(paired_differences(subset, base_name, common, n_boot, seed=seed))
    paired = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(paired):
        paired = paired.drop_duplicates(subset=["arm", "baseline", "metric"]).reset_index(drop=True)
    return ComparisonResult(
        arms=results,
        k=k,
        baseline=baseline,
        reference=reference,
        candidate_sizes=sorted({int(c) for c in candidate_sizes}),
        paired=paired,
        n_items=n_items,
        meta={"n_users": int(len(users)), **dict(meta or {})},
    )
