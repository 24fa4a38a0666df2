"""The standard comparison behind ``rechash compare``: build the arms, evaluate, report.

Arms (each can be switched off in :class:`CompareConfig`):

- ``ALS exact``: implicit ALS (``factors``, tuned on *valid* over a small grid, or the
  given parameters), brute-force inner product: the float ceiling, the baseline of every
  paired comparison and the overlap reference.
- ``ALS + Annoy``: the same factors served by Annoy (MIPS transform), one summary point at
  ``annoy_search_k`` plus a ``search_k`` sweep drawn as a curve.
- ``BPR exact``, ``Popularity``: optional floors.
- ``ALS top-C + learned``: ALS candidates re-ranked by the learned scorer (float score,
  popularity, activity) trained on validation labels with hard negatives.
- rechash arms, when ``rechash=True``: one ``TwinTowerHasher`` fitted exactly as ``rechash
  fit`` fits it (every default, the ALS teacher tuned on valid unless ``teacher=False``),
  served by :class:`~rechash.models.code.CodeRecommender`, the object ``rechash candidates``
  runs: ``rechash Hamming`` (``reranker=None``, popularity ties), ``rechash + dot``
  (``n_candidates`` Hamming candidates re-ranked by the model's re-ranking floats; the
  default when the fit kept no learned re-ranker; ``save_model`` writes the model directory,
  so ``rechash candidates DIR`` re-creates the default arm's lists), ``rechash + codes-only``
  (the towers' user floats against the items' bits), ``rechash + ALS dot`` (the ALS arm's
  factors as re-ranker: a team's float model), ``rechash + learned`` (the fit's learned pool
  re-ranker, :mod:`rechash.rerank.pool`, when validation kept it: then the default of
  ``rechash candidates``), ``tower floats + Annoy``, and sweeps of the default arm over the
  pool size, a fixed radius (pools capped at ``radius_max_candidates``) and the bit count.

Protocol (DESIGN.md): every model is fitted on train; hyper-parameters, early stopping and
the learned re-ranker use valid only; test is read once, for the metrics, with the users'
training items excluded from every arm.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rechash.als.fit import ALS_DEFAULTS, ALS_GRID, BPR_DEFAULTS, fit_als, fit_bpr, tune_als
from rechash.data.embeddings import FloatEmbeddings
from rechash.data.interactions import Interactions
from rechash.errors import DataError
from rechash.evaluation.compare import DEFAULT_CANDIDATE_SIZES, Arm, ComparisonResult, compare, top_lists
from rechash.models.annoy import AnnoyRecommender
from rechash.models.exact import ExactRecommender, PopularityRecommender
from rechash.models.reranked import RerankedRecommender
from rechash.rerank import DotReranker, LearnedReranker


@dataclass
class CompareConfig:
    """Everything :func:`run_compare` does; the defaults are sized for a small machine (``threads=2``)."""

    k: int = 20
    bits: int = 64
    seed: int = 0
    threads: int = 2
    # ALS baseline
    als_factors: int = 64
    tune_als: bool = True
    als_grid: dict = field(default_factory=lambda: {k: list(v) for k, v in ALS_GRID.items()})
    als_params: dict | None = None  # explicit parameters: no tuning
    # Annoy
    annoy_metric: str = "mips"
    annoy_trees: int = 10
    annoy_search_k: int = 2000
    annoy_sweep: Sequence[int] = (250, 500, 1000, 2000, 5000, 10000, 20000)
    tower_annoy: bool = True
    # other float arms
    bpr: bool = False
    bpr_params: dict = field(default_factory=lambda: dict(BPR_DEFAULTS))
    popularity: bool = True
    als_learned: bool = True
    learned_model: str = "logistic"
    # rechash
    rechash: bool = True
    hasher_options: dict = field(default_factory=dict)
    teacher: bool = True  # the default teacher of `rechash fit` (ALS tuned on valid); False: --teacher none
    save_model: str | None = (
        None  # write the rechash model directory here (`rechash candidates DIR` re-creates the default arm)
    )
    n_candidates: int = 200
    candidates_sweep: Sequence[int] = (50, 100, 500)
    radius_sweep: Sequence[int] | None = None  # None: auto (radii giving ~50/200/1000 candidates)
    radius_max_candidates: int = 1000
    bits_sweep: Sequence[int] = ()  # extra code lengths, each a separately trained model
    # evaluation
    candidate_sizes: Sequence[int] = DEFAULT_CANDIDATE_SIZES
    latency_sample: int = 300
    n_boot: int = 2000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def auto_radii(
    user_codes: np.ndarray,
    item_codes: np.ndarray,
    targets: Sequence[int] = (50, 200, 1000),
    sample: int = 256,
    seed: int = 0,
) -> list[int]:
    """Fixed radii at which the median user has about ``targets`` items within the radius.

    Measured on a seeded sample of users (exact distances); duplicates are merged.
    """
    from rechash.codes.bits import hamming_distances

    rng = np.random.default_rng(seed)
    users = rng.choice(len(user_codes), size=min(sample, len(user_codes)), replace=False)
    dist = np.sort(hamming_distances(user_codes[users], item_codes), axis=1)
    n = dist.shape[1]
    return sorted({int(np.median(dist[:, min(t, n) - 1])) for t in targets})


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _fit_learned(
    train: Interactions,
    valid: Interactions,
    first_stage,
    n_candidates: int,
    model: str,
    seed: int,
    **features,
) -> tuple[LearnedReranker, float]:
    """Fit a learned re-ranker on the first stage's validation candidates (train items excluded)."""
    users = np.flatnonzero(np.diff(valid.matrix.indptr) > 0)
    start = time.perf_counter()
    cands = top_lists(first_stage, users, n_candidates, train.matrix)
    # one OpenMP thread: scikit-learn's pool spins badly on a busy machine with few cores
    lr = LearnedReranker.from_train(train, model=model, seed=seed, n_threads=1, **features)
    lr.fit(users, cands, valid.matrix)
    return lr, time.perf_counter() - start


def run_compare(
    train: Interactions,
    valid: Interactions,
    test: Interactions,
    config: CompareConfig | None = None,
    dataset: str = "",
    progress: Callable[[str], None] | None = None,
) -> ComparisonResult:
    """Build the arms of :class:`CompareConfig`, evaluate them on ``test`` and return the result.

    ``train``, ``valid`` and ``test`` must share id maps (load them with
    :func:`rechash.data.load_many`).
    """
    cfg = config or CompareConfig()
    say = progress or (lambda msg: None)
    for name, part in (("valid", valid), ("test", test)):
        if part.matrix.shape != train.matrix.shape:
            raise DataError(
                f"{name} ({part.source}) has shape {part.matrix.shape} but train has {train.matrix.shape}: "
                "load the splits together with rechash.data.load_many"
            )
    arms: list[Arm] = []
    pairs: list[tuple[str, str]] = []
    notes: dict[str, Any] = {}

    # ---- ALS ------------------------------------------------------------------------
    if cfg.als_params is not None:
        als_params = {"factors": cfg.als_factors, **cfg.als_params}
        tune_seconds = 0.0
    elif cfg.tune_als:
        say(f"tuning ALS on valid over {cfg.als_grid}")
        (als_params, table), tune_seconds = _timed(
            lambda: tune_als(train, valid, cfg.als_grid, cfg.als_factors, cfg.seed, cfg.threads, cfg.k)
        )
        notes["als_tuning"] = table.to_dict(orient="records")
    else:
        als_params = {**ALS_DEFAULTS, "factors": cfg.als_factors}
        tune_seconds = 0.0
    als_params = {k: v for k, v in als_params.items() if k not in ("seed", "num_threads")}
    say(f"fitting ALS {als_params}")
    als, als_seconds = _timed(lambda: fit_als(train, seed=cfg.seed, num_threads=cfg.threads, **als_params))
    notes["als_params"] = als_params
    notes["als_tuning_seconds"] = tune_seconds
    exact = ExactRecommender(als, seen=train.matrix)
    arms.append(Arm("ALS exact", exact, train_seconds=als_seconds, params={**als_params, "search": "brute force"}))

    say("building Annoy over the ALS factors")
    ann = AnnoyRecommender.build(
        als, cfg.annoy_metric, cfg.annoy_trees, cfg.annoy_search_k, cfg.seed, seen=train.matrix
    )
    annoy_params = {"metric": cfg.annoy_metric, "n_trees": cfg.annoy_trees}
    arms.append(
        Arm(
            "ALS + Annoy",
            ann,
            train_seconds=als_seconds,
            params={**annoy_params, "search_k": cfg.annoy_search_k},
            group="ALS + Annoy",
            sweep={"search_k": cfg.annoy_search_k},
        )
    )
    for sk in cfg.annoy_sweep:
        if sk != cfg.annoy_search_k:
            arms.append(
                Arm(
                    f"ALS + Annoy search_k={sk}",
                    ann.with_search_k(sk),
                    train_seconds=als_seconds,
                    build_seconds=ann.build_seconds,
                    params={**annoy_params, "search_k": sk},
                    group="ALS + Annoy",
                    sweep={"search_k": sk},
                    in_summary=False,
                    candidate_recall=False,
                )
            )

    if cfg.bpr:
        say(f"fitting BPR {cfg.bpr_params}")
        bpr, bpr_seconds = _timed(lambda: fit_bpr(train, seed=cfg.seed, **cfg.bpr_params))
        arms.append(Arm("BPR exact", ExactRecommender(bpr), train_seconds=bpr_seconds, params=dict(cfg.bpr_params)))
    if cfg.popularity:
        arms.append(Arm("Popularity", PopularityRecommender(train), params={"score": "training interactions"}))
    if cfg.als_learned:
        say("fitting the learned re-ranker on ALS candidates (valid labels)")
        dot = DotReranker(als.user_factors, als.item_factors)
        lr, lr_seconds = _fit_learned(
            train, valid, exact, cfg.n_candidates, cfg.learned_model, cfg.seed, float_scorer=dot
        )
        name = f"ALS top-{cfg.n_candidates} + learned"
        arms.append(
            Arm(
                name,
                RerankedRecommender(exact, lr, cfg.n_candidates),
                train_seconds=als_seconds + lr_seconds,
                index_bytes=exact.index_bytes + lr.item_popularity.nbytes,  # one copy of the ALS item vectors
                params={"model": cfg.learned_model, "features": lr.feature_names, "train_pairs": lr.n_train_pairs_},
            )
        )
        pairs.append((name, "ALS exact"))

    # ---- rechash ----------------------------------------------------------------------
    if cfg.rechash:
        arms += _rechash_arms(train, valid, cfg, als, pairs, notes, say)

    meta = {
        "dataset": dataset,
        "protocol": (
            f"full ranking over all {train.n_items:,} items; each user's training items excluded "
            f"(validation items stay rankable); metrics at K={cfg.k} averaged over users with at "
            "least one test item; hyper-parameters, early stopping and re-ranker training on valid only"
        ),
        "machine": f"{os.cpu_count()} cores, threads={cfg.threads}",
        "train": {"users": train.n_users, "items": train.n_items, "interactions": train.nnz, "source": train.source},
        "config": cfg.to_dict(),
        **notes,
    }
    say("evaluating the arms on test")
    return compare(
        arms,
        test,
        train.matrix,
        k=cfg.k,
        candidate_sizes=cfg.candidate_sizes,
        baseline="ALS exact",
        reference="ALS exact",
        pairs=pairs,
        n_boot=cfg.n_boot,
        seed=cfg.seed,
        latency_sample=cfg.latency_sample,
        meta=meta,
        progress=progress,
    )


def _fit_towers(train, valid, cfg: CompareConfig, bits: int, opts: dict):
    """A ``TwinTowerHasher`` fitted as ``rechash fit`` fits it; returns it and its fit seconds."""
    from rechash.hasher.twin_tower import TwinTowerHasher

    hasher = TwinTowerHasher(bits=bits, seed=cfg.seed, **opts)
    _, seconds = _timed(lambda: hasher.fit(train, valid=valid, teacher="auto" if cfg.teacher else None))
    return hasher, seconds


def _rechash_arms(train, valid, cfg: CompareConfig, als: FloatEmbeddings, pairs, notes, say) -> list[Arm]:
    from rechash.index.candidates import CandidatePolicy
    from rechash.models.code import CodeRecommender
    from rechash.rerank import CodesOnlyReranker

    opts = {"progress": False, "threads": cfg.threads, **cfg.hasher_options}
    say(f"training {cfg.bits}-bit twin towers as `rechash fit` does {cfg.hasher_options or ''}")
    hasher, fit_seconds = _fit_towers(train, valid, cfg, cfg.bits, opts)
    notes["rechash_epochs"] = sum(1 for log in hasher.history_ if log.epoch > 0)
    notes["rechash_training_run"] = hasher.training_run()
    if cfg.save_model:
        hasher.save(cfg.save_model)
        default = "rechash + learned" if hasher.ranker_ is not None else "rechash + dot"
        say(f"saved the rechash model to {cfg.save_model} (rechash candidates {cfg.save_model} re-creates '{default}')")

    def rec(**options) -> CodeRecommender:
        return CodeRecommender.from_model(hasher, seen=train.matrix, n_threads=cfg.threads, **options)

    params = {"bits": cfg.bits, **{k: v for k, v in cfg.hasher_options.items() if k != "progress"}}
    ranked = {**params, "candidates": f"max(2K, {cfg.n_candidates})"}
    hamming = rec(reranker=None)
    pool = CandidatePolicy.top_k(cfg.n_candidates)
    arms = [
        Arm(
            "rechash Hamming",
            hamming,
            train_seconds=fit_seconds,
            params={**params, "ranking": "Hamming, popularity ties"},
        ),
        Arm(
            "rechash + dot",
            rec(reranker="dot"),
            train_seconds=fit_seconds,
            params={**ranked, "re-ranker": "the model's re-ranking floats"},
            group="rechash + dot (candidates)",
            sweep={"candidates": cfg.n_candidates},
        ),
        Arm(
            "rechash + codes-only",
            rec(reranker=CodesOnlyReranker(hasher.user_floats(), hasher.encode_items()), pool=pool),
            train_seconds=fit_seconds,
            params={
                **params,
                "candidates": cfg.n_candidates,
                "re-ranker": "user floats x item bits (no float item table)",
            },
        ),
        Arm(
            "rechash + ALS dot",
            rec(reranker=DotReranker(als.user_factors, als.item_factors), pool=pool),
            train_seconds=fit_seconds,
            params={
                **params,
                "candidates": cfg.n_candidates,
                "re-ranker": "the ALS arm's float factors (an external model)",
            },
        ),
    ]
    pairs.append(("rechash + codes-only", "rechash Hamming"))
    if hasher.ranker_ is not None:  # the fit's learned re-ranker, kept by validation: rechash candidates' default
        arms.append(
            Arm(
                "rechash + learned",
                rec(reranker="learned"),
                train_seconds=fit_seconds,
                params={
                    **ranked,
                    "re-ranker": "the fit's learned pool re-ranker (rechash candidates' default)",
                    "features": hasher.ranker_.features,
                },
            )
        )
        pairs.append(("rechash + learned", "rechash + dot"))
    else:
        notes["rechash_learned"] = f"no learned arm: the fit kept no learned re-ranker ({hasher.ranker_info_})"
    sweep = {"train_seconds": fit_seconds, "in_summary": False, "candidate_recall": False}
    for c in sorted(set(cfg.candidates_sweep) - {cfg.n_candidates}):
        arms.append(
            Arm(
                f"rechash + dot candidates={c}",
                rec(reranker="dot", pool=CandidatePolicy.top_k(c)),
                params={**params, "candidates": c},
                group="rechash + dot (candidates)",
                sweep={"candidates": c},
                **sweep,
            )
        )
    radii = (
        auto_radii(hasher.encode_users(refined=False), hasher.encode_items(), seed=cfg.seed)
        if cfg.radius_sweep is None
        else cfg.radius_sweep
    )
    for r in radii:
        arms.append(
            Arm(
                f"rechash + dot radius={r}",
                rec(reranker="dot", pool=CandidatePolicy.fixed_radius(r, cfg.radius_max_candidates)),
                params={**params, "radius": r, "max_candidates": cfg.radius_max_candidates},
                group="rechash + dot (radius)",
                sweep={"radius": r},
                **sweep,
            )
        )
    for b in sorted(set(cfg.bits_sweep) | {cfg.bits}) if cfg.bits_sweep else ():
        if b == cfg.bits:  # the main model is the sweep's point at cfg.bits
            other, seconds = hasher, fit_seconds
        else:
            say(f"training {b}-bit twin towers for the bits sweep")
            other, seconds = _fit_towers(train, valid, cfg, b, opts)
        common = {"train_seconds": seconds, "in_summary": False, "candidate_recall": False, "sweep": {"bits": b}}
        build = lambda **o: CodeRecommender.from_model(other, seen=train.matrix, n_threads=cfg.threads, **o)  # noqa: E731
        arms.append(
            Arm(
                f"rechash Hamming bits={b}",
                build(reranker=None),
                group="rechash Hamming (bits)",
                params={**params, "bits": b},
                **common,
            )
        )
        arms.append(
            Arm(
                f"rechash + dot bits={b}",
                build(reranker="dot"),
                group="rechash + dot (bits)",
                params={**ranked, "bits": b},
                **common,
            )
        )
    if cfg.tower_annoy:
        say("building Annoy over the tower floats")
        towers = FloatEmbeddings(
            hasher.user_floats(), hasher.item_floats(), user_ids=train.user_ids, item_ids=train.item_ids
        )
        arms.append(
            Arm(
                "tower floats + Annoy",
                AnnoyRecommender.build(
                    towers, cfg.annoy_metric, cfg.annoy_trees, cfg.annoy_search_k, cfg.seed, seen=train.matrix
                ),
                train_seconds=fit_seconds,
                params={"metric": cfg.annoy_metric, "n_trees": cfg.annoy_trees, "search_k": cfg.annoy_search_k},
            )
        )
    return arms
