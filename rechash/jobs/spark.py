"""The candidate job on Apache Spark (``pip install 'rechash[spark]'``).

Users are partitioned across executors; the :class:`~rechash.jobs.candidates.CandidateJob` (item
codes, item floats, id maps, the training-items matrix: a few bytes per item and per
interaction) is broadcast once; every partition runs the same pure function as the local
job, :meth:`CandidateJob.run_chunk`, through ``mapInPandas``. The output is a Parquet
dataset with the local job's schema (``user_id, item_id, rank, score, hamming``).

Cluster run (the driver loads the model; executors need rechash installed)::

    spark-submit --master yarn --num-executors 50 --executor-cores 4 --executor-memory 8g \\
        --conf spark.sql.execution.arrow.maxRecordsPerBatch=20000 \\
        my_job.py   # calls rechash.jobs.spark.spark_candidates(spark, job, "s3://.../candidates")
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rechash import columns as C
from rechash.errors import require
from rechash.jobs.candidates import CandidateJob

HISTORY = "history"


def _ddl(job: CandidateJob) -> str:
    names = {"int64": "bigint", "string": "string", "int32": "int", "double": "double"}
    return ", ".join(f"{f.name} {names[str(f.type)]}" for f in job.schema)


def _frame(spark, data: Any, what: str):
    """A Spark DataFrame from a DataFrame, a Parquet path or a pandas frame."""
    if isinstance(data, str):
        return spark.read.parquet(data)
    if isinstance(data, pd.DataFrame):
        return spark.createDataFrame(data)
    if hasattr(data, "mapInPandas"):
        return data
    raise TypeError(
        f"{what}: expected a Spark DataFrame, a pandas DataFrame or a Parquet path, got {type(data).__name__}"
    )


def spark_candidates(
    spark,
    job: CandidateJob,
    out: str | None = None,
    *,
    users: Any = None,
    histories: Any = None,
    partitions: int | None = None,
    mode: str = "errorifexists",
):
    """Run ``job`` on Spark for ``users`` (a frame with ``user_id``; default: every user the
    model knows) with optional ``histories`` (``user_id, item_id`` rows: extra items to
    exclude and the codes of users the model has never seen). Writes Parquet to ``out``
    when given and returns the (lazy) Spark DataFrame of candidates.
    """
    require("pyspark", "spark", "The Spark candidate job")
    from pyspark.sql import functions as F

    if users is None:
        users = pd.DataFrame({C.USER_ID: job.user_ids.external_ids})
    frame = _frame(spark, users, "users").select(C.USER_ID)
    if histories is not None:
        grouped = _frame(spark, histories, "histories").groupBy(C.USER_ID).agg(F.collect_list(C.ITEM_ID).alias(HISTORY))
        frame = frame.join(grouped, on=C.USER_ID, how="left")
    if partitions:
        frame = frame.repartition(partitions, C.USER_ID)
    shared = spark.sparkContext.broadcast(job)

    def run(batches):
        local = shared.value
        for batch in batches:
            history = None
            if HISTORY in batch.columns:
                lists = batch[HISTORY].apply(lambda x: [] if x is None else list(x))
                lengths = lists.map(len).to_numpy()
                history = pd.DataFrame(
                    {
                        C.USER_ID: np.repeat(batch[C.USER_ID].to_numpy(), lengths),
                        C.ITEM_ID: np.concatenate([np.asarray(x) for x in lists] or [np.array([])]),
                    }
                )
            yield local.run_chunk(batch[C.USER_ID].to_numpy(), history)

    result = frame.mapInPandas(run, schema=_ddl(job))
    if out is not None:
        result.write.mode(mode).parquet(out)
    return result
