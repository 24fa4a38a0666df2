"""Writing interactions: adjacency text or Parquet (:func:`save`).

Below :mod:`rechash.data.splits` (whose :func:`~rechash.data.splits.save_split` writes each
part with it) and re-exported as :func:`rechash.data.save` and ``rechash.data.loaders.save``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rechash.data.interactions import Interactions
from rechash.errors import DataError


def save(inter: Interactions, path: str | Path, format: str | None = None) -> Path:
    """Write interactions as adjacency text (``.txt``) or Parquet (``.parquet``).

    Adjacency text writes the external ids, one line per user with interactions, and keeps
    neither weights nor timestamps; it needs non-negative integer ids. Parquet keeps
    everything: ``user_id, item_id, weight[, timestamp]`` in external ids.
    """
    path = Path(path)
    format = format or ("parquet" if path.suffix.lower() in (".parquet", ".pq") else "adjacency")
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "parquet":
        pq.write_table(pa.Table.from_pandas(inter.to_frame(), preserve_index=False), path)
        return path
    if format != "adjacency":
        raise DataError(f"{path}: can write adjacency or parquet, not {format!r}")
    for what, ids in (("user", inter.user_ids), ("item", inter.item_ids)):
        ext = ids.external_ids
        if ext.dtype.kind not in "iu" or (len(ext) and ext.min() < 0):
            raise DataError(f"{path}: adjacency text needs non-negative integer {what} ids; write Parquet instead")
    m = inter.matrix
    users = inter.user_ids.external_ids
    items = inter.item_ids.external_ids[m.indices].astype(str)
    with open(path, "w", encoding="utf-8") as fh:
        for u in np.flatnonzero(np.diff(m.indptr)):
            fh.write(f"{users[u]} {' '.join(items[m.indptr[u] : m.indptr[u + 1]])}\n")
    return path
