"""Offline jobs: ``candidates`` (:class:`CandidateJob`, every user's lists from a model
directory), ``batch`` (sharded, resumable, atomic Parquet) and ``spark`` (the same job on Spark)."""
