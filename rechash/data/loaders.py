"""Loaders: interaction logs in their file formats -> validated :class:`Interactions`.

(Core skeleton: adjacency text only; the data layer extends it with every format.)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from rechash import columns as C
from rechash.data.idmap import IdMap
from rechash.data.interactions import Interactions
from rechash.errors import DataError


def _read_adjacency(path: Path) -> pd.DataFrame:
    users: list[int] = []
    counts: list[int] = []
    items: list[np.ndarray] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            try:
                row = np.array(parts, dtype=np.int64)
            except ValueError:
                raise DataError(f"{path}:{lineno}: expected integer ids 'user item item ...', got {line.strip()[:60]!r}") from None
            users.append(int(row[0]))
            counts.append(len(row) - 1)
            items.append(row[1:])
    if not users:
        raise DataError(f"{path}: empty file, expected lines 'user item item ...'")
    return pd.DataFrame(
        {C.USER_ID: np.repeat(np.array(users, dtype=np.int64), counts), C.ITEM_ID: np.concatenate(items)}
    )


def load(path: str | Path, format: str | None = None) -> Interactions:
    """Load one interaction file into :class:`Interactions` (own id maps)."""
    return load_many([path], format=format)[0]


def load_many(paths, format: str | None = None) -> list[Interactions]:
    """Load several files (e.g. train/valid/test) sharing one union of id maps."""
    frames = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise DataError(f"{p}: no such file")
        frames.append((p, _read_adjacency(p)))
    user_ids, _ = IdMap.from_values(pd.concat([f[C.USER_ID] for _, f in frames]))
    item_ids, _ = IdMap.from_values(pd.concat([f[C.ITEM_ID] for _, f in frames]))
    return [
        Interactions.from_arrays(
            user_ids.to_internal(f[C.USER_ID]), item_ids.to_internal(f[C.ITEM_ID]), user_ids, item_ids, source=str(p)
        )
        for p, f in frames
    ]
