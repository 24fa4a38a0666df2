"""The offline candidate job: one pure function over a chunk of users, run locally or on Spark.

:meth:`CandidateJob.run_chunk` maps external user ids (plus, optionally, their
histories) to the candidate table ``user_id, item_id, rank, score, hamming`` in external
ids. The local job (:meth:`CandidateJob.run`, sharded and resumable through
:mod:`rechash.jobs.batch`) and the Spark adapter (:mod:`rechash.jobs.spark`) both call exactly this
function, so the two paths cannot drift.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from rechash import columns as C
from rechash.data.idmap import IdMap, format_id
from rechash.errors import DataError, ModelError
from rechash.index.candidates import CandidatePolicy
from rechash.models.code import CodeRecommender


def output_schema(user_ids: IdMap, item_ids: IdMap) -> pa.Schema:
    """Arrow schema of the candidate table (id types follow the id maps)."""

    def id_type(ids: IdMap) -> pa.DataType:
        return pa.int64() if np.issubdtype(ids.external_ids.dtype, np.integer) else pa.string()

    return pa.schema(
        [
            (C.USER_ID, id_type(user_ids)),
            (C.ITEM_ID, id_type(item_ids)),
            (C.RANK, pa.int32()),
            (C.SCORE, pa.float64()),
            (C.HAMMING, pa.int32()),
        ]
    )


#: the ``--reranker`` choices: auto (the model's learned re-ranker when its fit kept one, else dot), dot, learned, none
RERANKERS = ("auto", "dot", "learned", "none")


@dataclass
class CandidateJob:
    """Top-``k`` candidates per user from a :class:`CodeRecommender`.

    ``history``: interactions (external ids, columns ``user_id, item_id``) excluded in
    addition to the model's training items, and the source of codes for users the model
    does not know (``unknown``: ``"history"``, ``"popular"`` or ``"error"``).
    ``params``: extra identity of the job's output (the model directory's checksum), merged
    into :meth:`key_params`, which derives the rest from the job itself.
    """

    recommender: CodeRecommender
    k: int = 100
    unknown: str = "history"
    filter_seen: bool = True
    history: pd.DataFrame | None = None
    params: dict = field(default_factory=dict)

    @property
    def user_ids(self) -> IdMap:
        return self.recommender.user_ids

    @property
    def schema(self) -> pa.Schema:
        return output_schema(self.recommender.user_ids, self.recommender.item_ids)

    @classmethod
    def from_model_dir(
        cls,
        model_dir: str | Path,
        *,
        k: int = 100,
        radius: int | None = None,
        min_candidates: int | None = None,
        max_candidates: int | None = None,
        exclude: list[str | Path] = (),
        exclude_format: str | None = None,
        unknown: str = "history",
        reranker: str = "auto",
        filter_seen: bool = True,
        n_threads: int | None = None,
    ) -> CandidateJob:
        """Load a model directory and the exclusion files; the pool policy defaults to the
        ``max(2k, 200)`` nearest (``--radius`` or ``--min/--max-candidates`` override it)."""
        from rechash.data import load
        from rechash.io.store import sha256

        if k <= 0:
            raise DataError(f"--k must be positive, got {k}")
        if reranker not in RERANKERS:
            raise DataError(f"--reranker must be one of {', '.join(RERANKERS)}, got {reranker!r}")
        pool = None
        if radius is not None or min_candidates is not None or max_candidates is not None:
            pool = CandidatePolicy.from_options(None, radius, min_candidates, max_candidates)
        recommender = CodeRecommender.load(
            model_dir, reranker=None if reranker == "none" else reranker, pool=pool, n_threads=n_threads
        )
        if filter_seen and recommender.seen is None:
            raise ModelError(
                f"{model_dir}: the model stores no training items (seen.npz), so they cannot be excluded; "
                "refit it (fit and model.save() store them) or pass --keep-seen to keep them"
            )
        config = next(p for p in (Path(model_dir) / "recommender.json", Path(model_dir) / "config.json") if p.is_file())
        frames = [load(p, format=exclude_format).to_frame()[[C.USER_ID, C.ITEM_ID]] for p in exclude]
        history = pd.concat(frames, ignore_index=True) if frames else None
        return cls(recommender, k, unknown, filter_seen, history, {"model": sha256(config)})

    def key_params(self) -> dict:
        """Everything that changes the output besides the users and the shard size (which
        :func:`rechash.jobs.batch.run_sharded` adds): the recommender's codes, floats and id maps,
        the excluded training items, k, pool policy, re-ranker, unknown-user policy and the
        exclusions. A custom re-ranker object counts by its class name only."""
        rec = self.recommender
        if rec.reranker is None:
            reranker = "none"
        elif rec.reranker == "learned":  # the learned re-ranker counts by its saved model too
            reranker = f"learned {_digest(np.frombuffer(rec.ranker.state()[1].encode(), np.uint8))}"
        elif isinstance(rec.reranker, str):
            reranker = rec.reranker
        else:
            reranker = type(rec.reranker).__qualname__
        return {
            **self.params,
            "codes": _digest(
                rec.item_codes,
                rec.user_codes,
                rec.item_floats,
                rec.user_floats,
                rec.item_ids.external_ids,
                rec.user_ids.external_ids,
            ),
            "seen": None if rec.seen is None or not self.filter_seen else _digest(rec.seen.indptr, rec.seen.indices),
            "k": self.k,
            "pool": None if rec.pool is None else asdict(rec.pool),
            "reranker": reranker,
            "unknown": self.unknown,
            "filter_seen": self.filter_seen,
            "exclusions": None
            if self.history is None
            else _digest(pd.util.hash_pandas_object(self.history[[C.USER_ID, C.ITEM_ID]], index=False).to_numpy()),
        }

    def run_chunk(self, users: np.ndarray, history: pd.DataFrame | None = None) -> pd.DataFrame:
        """The pure function: candidate table of ``users`` (external ids), typed by :attr:`schema`."""
        history = self.history if history is None else history
        if history is not None and self.history is not None and history is not self.history:
            history = pd.concat([self.history, history], ignore_index=True)
        if history is not None:
            history = history[history[C.USER_ID].isin(users)]
        frame = self.recommender.recommend_frame(
            np.asarray(users), self.k, history=history, filter_seen=self.filter_seen, unknown=self.unknown
        )
        return frame.astype({C.RANK: "int32", C.SCORE: "float64", C.HAMMING: "Int32"})

    def run(
        self, out: str | Path, users: np.ndarray | None = None, *, shard_size: int = 50_000, progress: bool = True
    ) -> str:
        """Write the candidates of ``users`` (default: every known user) to ``out``:
        a ``.parquet`` file, or a directory of resumable shards. Duplicate users are
        dropped (first occurrence kept). Returns a summary: the rows written, the users by kind
        (known, new encoded from their history, new given the popularity fallback), then
        what was ignored (duplicate users, exclusion rows matching no user of the run or no
        item). ``unknown="error"`` refuses before anything is written."""
        from rechash.jobs.batch import run_sharded, run_single_file

        given = self.user_ids.external_ids if users is None else np.asarray(users)
        users = pd.unique(given) if len(given) else given
        rec = self.recommender
        unmatched = 0
        with_history = np.zeros(len(users), dtype=bool)
        if self.history is not None:
            items = rec.item_ids.to_internal(self.history[C.ITEM_ID].to_numpy(), strict=False)
            unmatched = int((~self.history[C.USER_ID].isin(users).to_numpy() | (items < 0)).sum())
            with_history = pd.Index(users).isin(self.history.loc[items >= 0, C.USER_ID])
        unknown = rec.user_ids.to_internal(users, strict=False) < 0
        if self.unknown == "error" and unknown.any():
            raise DataError(
                f"user {format_id(users[unknown][0])} is unknown to the model ({int(unknown.sum()):,} unknown users)"
            )
        folded = unknown & with_history & (self.unknown == "history") & rec.can_fold_in
        start = time.perf_counter()
        out = Path(out)
        if out.suffix == ".parquet":
            rows = run_single_file(users, self.run_chunk, out, chunk_size=shard_size, progress=progress)
        else:
            rows = run_sharded(
                users, self.run_chunk, out, params=self.key_params(), shard_size=shard_size, progress=progress
            )["rows"]
        seconds = time.perf_counter() - start
        return (
            f"wrote {rows:,} candidates for {len(users):,} users to {out} "
            f"in {seconds:.1f} s ({len(users) / max(seconds, 1e-9):,.0f} users/s)\n"
            f"users: {int((~unknown).sum()):,} known to the model, {int(folded.sum()):,} new users encoded from "
            f"their history, {int((unknown & ~folded).sum()):,} new users given the most popular items\n"
            f"ignored: {len(given) - len(users):,} duplicate user ids, "
            f"{unmatched:,} exclusion rows matching no user of this run or no item of the model"
        )


def _digest(*arrays) -> str:
    """SHA-256 over arrays (dtype, shape and content; None counts as absent)."""
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.asarray(a)
        if a.dtype == object:
            a = a.astype(str)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def read_user_list(path: str | Path, user_ids: IdMap) -> np.ndarray:
    """External user ids from a text file (one per line) or a table with a ``user_id``
    column (csv/tsv/parquet), typed like the model's ids."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif path.suffix in (".csv", ".tsv"):
        frame = pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",", dtype=str)
    else:
        frame = pd.DataFrame({C.USER_ID: [line.strip() for line in path.read_text().splitlines() if line.strip()]})
    if C.USER_ID not in frame.columns:
        raise DataError(f"{path}: expected a column {C.USER_ID!r}, got {list(frame.columns)}")
    values = frame[C.USER_ID]
    if np.issubdtype(user_ids.external_ids.dtype, np.integer):
        numeric = pd.to_numeric(values, errors="coerce")
        bad = numeric.isna() | (numeric != np.floor(numeric))
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise DataError(
                f"{path}: row {line}: user id {values.iloc[line - 1]!r} is not an integer, as the model's ids are"
            )
        return numeric.astype(np.int64).to_numpy()
    return values.astype(str).to_numpy(dtype=object)
