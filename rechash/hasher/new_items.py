"""Items unseen at training: codes from their side features, without retraining.

The item tower is ``z_i = E[i] * known_i + MLP(features_i)`` (:class:`~rechash.hasher.towers.ItemTower`):
an item without training interactions has ``known_i = 0``, so its ID row contributes
nothing and its code is the sign of the feature path alone. A new item is exactly such an
item: :meth:`TwinTowerHasher.encode_new_items` is that forward pass (the ID part is zero,
not a mean embedding: zero is the rule the tower is trained with for items it has no
interactions for, and a mean row would add one shared offset the training never saw, which
moves new items' codes away from their users). The feature path places an item on its own
only when training sent rows through it alone (``item_id_dropout``, e.g. 0.5); otherwise it
learns a residual next to the ID embeddings and added items reach no candidate pool
(experiments/results/new_items.md). Their re-ranking floats: :meth:`TwinTowerHasher.teacher_map`.

Features of new items must be laid out as at training. A model fitted with a
:class:`~rechash.data.SideFeatures` table (``rechash fit`` with a RecBole ``.item`` file or
``--item-features``) keeps its column schema, :class:`ItemFeatureSchema` (names, kinds, the
token vocabulary of every categorical and multi-token column, the mean and standard
deviation of every numeric column), saved as ``item_features.json`` in the model directory.
New items' tables are encoded through it: a token the training items never had is
ignored (counted in the report), a missing numeric value is the training mean (0 after
z-scoring), exactly as :func:`~rechash.hasher.twin_tower._as_features` encodes training items.
A model fitted with a plain array has no schema: its new items are given as arrays in the
same layout.

:func:`read_new_items` reads a side-feature file (RecBole ``.item``, CSV, TSV or Parquet)
for ``rechash add-items``: the rows whose ids the model does not know, the count of those it
does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash.data.features import SideFeatures
from rechash.data.idmap import IdMap, format_id
from rechash.errors import DataError, ModelError

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ItemFeatureSchema:
    """The layout of a model's item feature matrix: one entry per column of the source table,
    in the order :func:`~rechash.hasher.twin_tower._as_features` lays them out (the numeric
    columns first, z-scored; then one block per categorical / multi-token column, one
    column per vocabulary code, code 0 = missing, always 0).

    ``columns``: ``{"name", "kind", "vocab"}`` (categorical, multi: the tokens of codes
    1..) or ``{"name", "kind", "mean", "std"}`` (numeric). ``sep``: the separator of
    multi-token columns (None: whitespace)."""

    columns: tuple[dict, ...]
    sep: str | None = None

    @property
    def width(self) -> int:
        """Columns of the encoded matrix."""
        return sum(1 if c["kind"] == "numeric" else len(c["vocab"]) + 1 for c in self.columns)

    @property
    def names(self) -> list[str]:
        return [c["name"] for c in self.columns]

    def kinds(self) -> dict[str, str]:
        return {c["name"]: c["kind"] for c in self.columns}

    @classmethod
    def from_side(cls, side: SideFeatures, sep: str | None = None) -> ItemFeatureSchema:
        """The schema of the training table ``side`` (statistics as
        :meth:`SideFeatures.numeric_matrix` computes them)."""
        columns = []
        for f in side.features:
            if f.kind == "numeric":
                col = f.values.astype(np.float64)
                finite = np.isfinite(col).any()
                mean = float(np.nanmean(col)) if finite else 0.0
                std = float(np.nanstd(col)) if finite else 1.0
                columns.append({"name": f.name, "kind": "numeric", "mean": mean, "std": std if std > 0 else 1.0})
            else:
                columns.append({"name": f.name, "kind": f.kind, "vocab": [str(t) for t in f.vocab[1:]]})
        return cls(tuple(columns), sep)

    def encode(self, side: SideFeatures) -> tuple[np.ndarray, dict[str, int]]:
        """``(x, unknown)``: ``side``'s rows as a float32 ``(n, width)`` matrix in the training
        layout, and per categorical / multi column the count of tokens the training vocabulary
        lacks (ignored). Columns of ``side`` the schema does not name are ignored; a column it
        names that ``side`` lacks, or of another kind, is an error."""
        n = side.n_rows
        have = {f.name: f for f in side.features}
        missing = [c["name"] for c in self.columns if c["name"] not in have]
        if missing:
            raise DataError(
                f"{side.source}: no column {missing[0]!r}; the model was fitted with item features {self.names}"
            )
        numeric, blocks, unknown = [], [], {}
        for c in self.columns:
            f = have[c["name"]]
            if f.kind != c["kind"]:
                raise DataError(
                    f"{side.source}: column {c['name']!r} is {f.kind}, the model was fitted with it {c['kind']}"
                )
            if c["kind"] == "numeric":
                col = f.values.astype(np.float64)
                z = (np.where(np.isnan(col), c["mean"], col) - c["mean"]) / c["std"]
                numeric.append(z.astype(np.float32))
                continue
            index = {t: k + 1 for k, t in enumerate(c["vocab"])}
            remap = np.array([0] + [index.get(str(t), 0) for t in f.vocab[1:]], dtype=np.int64)
            codes = remap[f.values]
            unknown[c["name"]] = int(((codes == 0) & (f.values > 0)).sum())
            offsets = np.arange(n + 1) if f.offsets is None else f.offsets
            keep = codes > 0
            kept = np.zeros(len(keep) + 1, dtype=np.int64)
            np.cumsum(keep, out=kept[1:])
            m = sp.csr_matrix(
                (np.ones(int(kept[-1]), np.float32), codes[keep], kept[offsets]), shape=(n, len(c["vocab"]) + 1)
            )
            m.sum_duplicates()
            m.data[:] = 1.0
            blocks.append(m)
        parts = [sp.csr_matrix(np.stack(numeric, axis=1) if numeric else np.zeros((n, 0), np.float32))] + blocks
        return np.asarray(sp.hstack(parts, format="csr").toarray(), dtype=np.float32), unknown

    def to_json(self) -> dict:
        return {"version": SCHEMA_VERSION, "sep": self.sep, "columns": [dict(c) for c in self.columns]}

    @classmethod
    def from_json(cls, doc: Any, where: str = "item feature schema") -> ItemFeatureSchema:
        """Parse and check a schema document (``ModelError`` naming ``where`` when invalid)."""

        def bad(what: str) -> ModelError:
            return ModelError(f"{where}: {what}")

        if not isinstance(doc, dict) or doc.get("version") != SCHEMA_VERSION:
            raise bad(f"not a version {SCHEMA_VERSION} item feature schema")
        sep, columns = doc.get("sep"), doc.get("columns")
        if sep is not None and not isinstance(sep, str):
            raise bad(f"sep must be a string or null, got {sep!r}")
        if not isinstance(columns, list):
            raise bad("columns must be a list")
        out = []
        for c in columns:
            if (
                not isinstance(c, dict)
                or not isinstance(c.get("name"), str)
                or c.get("kind") not in ("numeric", "categorical", "multi")
            ):
                raise bad(f"invalid column {c!r}")
            if c["kind"] == "numeric":
                if not all(
                    isinstance(c.get(k), (int, float)) and not isinstance(c.get(k), bool) for k in ("mean", "std")
                ):
                    raise bad(f"numeric column {c['name']!r} needs numbers mean and std")
                if not (np.isfinite(c["mean"]) and np.isfinite(c["std"]) and c["std"] > 0):
                    raise bad(f"numeric column {c['name']!r}: mean and std must be finite, std > 0")
            elif not isinstance(c.get("vocab"), list) or not all(isinstance(t, str) for t in c["vocab"]):
                raise bad(f"column {c['name']!r} needs a vocab list of strings")
            out.append(dict(c))
        return cls(tuple(out), sep)


@dataclass(frozen=True)
class NewItems:
    """What :func:`read_new_items` found: ``ids`` (external, file order) and their
    ``features``, the ``rows`` of the file and how many named ids the model ``known``s."""

    ids: np.ndarray
    features: SideFeatures
    rows: int
    known: int


def read_new_items(path: str | Path, item_ids: IdMap, schema: ItemFeatureSchema, id_col: str | None = None) -> NewItems:
    """The rows of side-feature file ``path`` (RecBole ``.item``, CSV, TSV, Parquet) whose ids
    ``item_ids`` lacks, read as the ``schema`` reads them (its kinds, its separator); rows of
    known ids are skipped and counted. ``id_col`` (default ``item_id``) must exist: a table
    without it is refused rather than read by its first column. New ids must be of the
    model's kind (integers for a model of integer ids)."""
    from rechash.data.features import align_ids
    from rechash.data.files import read_frame

    path = Path(path)
    frame, _, where, id_col = read_frame(path, None, id_col or "item_id")
    raw = frame[id_col]
    null = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
    if null.any():
        raise DataError(f"{where(int(np.argmax(null)))}: empty or missing id in column {id_col!r}")
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r}; the model was fitted with item features {schema.names}")
    keys = align_ids(raw, item_ids)
    known = item_ids.to_internal(keys, strict=False, what="item id") >= 0
    new = pd.unique(pd.Series(keys[~known], dtype=object)) if (~known).any() else np.empty(0, dtype=object)
    kind = item_ids.kind
    if kind == "integer" and len(new):
        wrong = [v for v in new if not isinstance(v, (int, np.integer))]
        if wrong:
            raise DataError(
                f"{path}: item id {format_id(wrong[0])} is not an integer; the model's item ids are integers"
            )
        new = np.asarray(new, dtype=np.int64)
    elif kind == "string" and len(new):
        new = np.asarray([str(v) for v in new], dtype=object)
    ids = IdMap(new)
    side = SideFeatures.from_frame(
        frame[[id_col, *schema.names]], ids, id_col, schema.kinds(), schema.sep, str(path), where
    )
    return NewItems(ids.external_ids, side, int(len(frame)), int(known.sum()))
