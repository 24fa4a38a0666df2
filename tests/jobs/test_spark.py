"""The Spark path equals the local job row for row (local[2] session), and names its extra."""

from __future__ import annotations

import os
import shutil
import sys

import pandas as pd
import pytest

from rechash import columns as C
from rechash.errors import MissingExtraError

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark():
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (rechash[spark])")
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.skip("no Java runtime for Spark")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        pyspark.sql.SparkSession.builder.master("local[2]")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.pyspark.python", sys.executable)
        .getOrCreate()
    )
    yield session
    session.stop()


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame[list(C.CANDIDATE_COLUMNS)].sort_values([C.USER_ID, C.RANK]).reset_index(drop=True)
    return frame.astype({C.RANK: "int32", C.HAMMING: "Int32"})


def test_spark_output_equals_local_job(spark, small_job, tmp_path) -> None:
    from rechash.jobs.spark import spark_candidates

    job, new_users = small_job
    local = job.run_chunk(job.user_ids.external_ids)
    spark_candidates(spark, job, str(tmp_path / "spark"), partitions=3)
    remote = pd.read_parquet(tmp_path / "spark")
    pd.testing.assert_frame_equal(_sorted(remote), _sorted(local), check_dtype=False)
    assert len(remote) == len(job.user_ids) * job.k


def test_spark_histories_give_codes_to_new_users(spark, small_job) -> None:
    from rechash.jobs.spark import spark_candidates

    job, history = small_job
    users = pd.DataFrame({C.USER_ID: history[C.USER_ID].unique()})
    local = job.run_chunk(users[C.USER_ID].to_numpy(), history)
    remote = spark_candidates(spark, job, users=users, histories=history).toPandas()
    pd.testing.assert_frame_equal(_sorted(remote), _sorted(local), check_dtype=False)
    seen = set(zip(history[C.USER_ID], history[C.ITEM_ID]))
    assert not seen & set(zip(remote[C.USER_ID], remote[C.ITEM_ID]))


def test_missing_pyspark_names_the_extra(monkeypatch, small_job) -> None:
    from rechash.jobs.spark import spark_candidates

    monkeypatch.setitem(sys.modules, "pyspark", None)  # makes `import pyspark` fail
    with pytest.raises(MissingExtraError, match=r"pip install 'rechash\[spark\]'"):
        spark_candidates(None, small_job[0])
