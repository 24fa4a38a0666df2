"""The offline candidate job: one pure function over a chunk of users, run locally or on Spark.

:meth:`CandidateJob.run_chunk` maps external user ids (plus, optionally, their
histories) to the candidate table ``user_id, item_id, rank, score, hamming`` in external
ids. The local job (:meth:`CandidateJob.run`, sharded and resumable through
:mod:`rechash.batch`) and the Spark adapter (:mod:`rechash.spark`) both call exactly this
function, so the two paths cannot drift.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from rechash import columns as C
from rechash.candidates import CandidatePolicy
from rechash.data.idmap import IdMap
from rechash.errors import DataError
from rechash.recommend import CodeRecommender

def output_schema(user_ids: IdMap, item_ids: IdMap) -> pa.Schema:
    """Arrow schema of the candidate table (id types follow the id maps)."""
    def id_type(ids: IdMap) -> pa.DataType:
        return pa.int64() if np.issubdtype(ids.external_ids.dtype, np.integer) else pa.string()

    return pa.schema([
        (C.USER_ID, id_type(user_ids)), (C.ITEM_ID, id_type(item_ids)),
        (C.RANK, pa.int32()), (C.SCORE, pa.float64()), (C.HAMMING, pa.int32()),
    ])


@dataclass
class CandidateJob:
    """Top-``k`` candidates per user from a :class:`CodeRecommender`.

    ``history``: interactions (external ids, columns ``user_id, item_id``) excluded in
    addition to the model's training items, and the source of codes for users the model
    does not know (``unknown``: ``"history"``, ``"popular"`` or ``"error"``).
    ``params``: what identifies the job's output (model checksum, k, pool, inputs).
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
        reranker: str = "dot",
        filter_seen: bool = True,
        n_threads: int | None = None,
    ) -> "CandidateJob":
        """Load a model directory and the exclusion files; the pool policy defaults to the
        ``max(2k, 200)`` nearest (``--radius`` or ``--min/--max-candidates`` override it)."""
        from rechash.artifacts import load_seen, model_checksum
        from rechash.data import load
        from rechash.model import TwinTowerHasher

        if k <= 0:
            raise DataError(f"--k must be positive, got {k}")
        if reranker not in ("dot", "none"):
            raise DataError(f"--reranker must be 'dot' or 'none', got {reranker!r}")
        pool = None
        if radius is not None or min_candidates is not None or max_candidates is not None:
            pool = CandidatePolicy.from_options(None, radius, min_candidates, max_candidates)
        model = TwinTowerHasher.load(model_dir)
        recommender = CodeRecommender.from_model(
            model,
            seen=load_seen(model_dir) if filter_seen else None,
            reranker="dot" if reranker == "dot" else None,
            pool=pool,
            n_threads=n_threads,
        )
        frames = [load(p, format=exclude_format).to_frame()[[C.USER_ID, C.ITEM_ID]] for p in exclude]
        history = pd.concat(frames, ignore_index=True) if frames else None
        params = {
            "model": model_checksum(model_dir), "k": k, "pool": None if pool is None else pool.__dict__,
            "reranker": reranker, "unknown": unknown, "filter_seen": filter_seen,
            "exclude": [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in exclude],
        }
        return cls(recommender, k, unknown, filter_seen, history, params)

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

    def run(self, out: str | Path, users: np.ndarray | None = None, *, shard_size: int = 50_000, progress: bool = True) -> str:
        """Write the candidates of ``users`` (default: every known user) to ``out``:
        a ``.parquet`` file, or a directory of resumable shards. Returns a summary line."""
        from rechash.batch import run_sharded, run_single_file

        users = self.user_ids.external_ids if users is None else np.asarray(users)
        start = time.perf_counter()
        out = Path(out)
        if out.suffix == ".parquet":
            rows = run_single_file(users, self.run_chunk, out, chunk_size=shard_size, progress=progress)
        else:
            rows = run_sharded(users, self.run_chunk, out, params=self.params, shard_size=shard_size, progress=progress)["rows"]
        seconds = time.perf_counter() - start
        return (f"wrote {rows:,} candidates for {len(users):,} users to {out} "
                f"in {seconds:.1f} s ({len(users) / max(seconds, 1e-9):,.0f} users/s)")


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
            raise DataError(f"{path}: row {line}: user id {values.iloc[line - 1]!r} is not an integer, as the model's ids are")
        return numeric.astype(np.int64).to_numpy()
    return values.astype(str).to_numpy(dtype=object)
