"""Side features (user or item attributes) aligned to an :class:`IdMap`.

A :class:`SideFeatures` table has one row per internal id of its id map (row ``r`` =
internal id ``r``) and a tuple of :class:`Feature` columns, each of one kind:

* ``"categorical"`` (one token per row): ``values`` int32 ``(n_rows,)``, codes into
  ``vocab``; code 0 means missing/unknown (``vocab[0] is None``), so an embedding table
  of ``feature.cardinality`` rows fits;
* ``"multi"`` (a set of tokens per row, RecBole ``token_seq``): CSR layout, the tokens of
  row ``r`` are ``values[offsets[r]:offsets[r + 1]]`` (int32 codes >= 1 into ``vocab``,
  in their order in the source), ready for ``torch.nn.EmbeddingBag(values, offsets[:-1])``;
* ``"numeric"``: ``values`` float32 ``(n_rows,)``, NaN where missing
  (:meth:`SideFeatures.numeric_matrix` standardizes and fills them).

Ids of the map without a row in the source get code 0 / no tokens / NaN and are counted
in ``missing``; source rows whose id is not in the map are dropped and counted in
``unmatched``; a source id that appears twice is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from rechash.data.files import read_frame
from rechash.data.idmap import IdMap
from rechash.data.tables import CANONICAL_INT, show
from rechash.errors import DataError

KINDS = ("categorical", "multi", "numeric")


@dataclass(frozen=True, eq=False)
class Feature:
    """One feature column; see the module docstring for the layout of each kind."""

    name: str
    kind: str
    values: np.ndarray
    offsets: np.ndarray | None = None
    vocab: np.ndarray | None = None

    @property
    def cardinality(self) -> int:
        """Rows an embedding table needs (codes 0..cardinality-1); 0 for numeric."""
        return 0 if self.vocab is None else len(self.vocab)

    def to_csr(self) -> sp.csr_matrix:
        """One-hot (categorical) or multi-hot (multi) float32 matrix ``(n_rows, cardinality)``;
        the missing code 0 is left out."""
        if self.kind == "numeric":
            raise DataError(f"feature {self.name!r} is numeric, it has no one-hot form")
        offsets = np.arange(len(self.values) + 1) if self.offsets is None else self.offsets
        keep = self.values > 0
        kept = np.zeros(len(keep) + 1, dtype=np.int64)
        np.cumsum(keep, out=kept[1:])
        m = sp.csr_matrix(
            (np.ones(int(kept[-1]), np.float32), self.values[keep], kept[offsets]),
            shape=(len(offsets) - 1, self.cardinality),
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m

    def take(self, rows: np.ndarray) -> Feature:
        """The feature for the given rows, in that order."""
        rows = np.asarray(rows, dtype=np.int64)
        if self.kind != "multi":
            return Feature(self.name, self.kind, self.values[rows], None, self.vocab)
        lengths = np.diff(self.offsets)[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        starts = np.repeat(self.offsets[rows] - offsets[:-1], lengths)
        return Feature(self.name, self.kind, self.values[starts + np.arange(offsets[-1])], offsets, self.vocab)


@dataclass(frozen=True, eq=False)
class SideFeatures:
    """Feature columns aligned to ``ids`` (row r = internal id r); see the module docstring."""

    ids: IdMap
    features: tuple[Feature, ...]
    missing: int = 0
    unmatched: int = 0
    source: str = "<memory>"

    @property
    def n_rows(self) -> int:
        return len(self.ids)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    def __len__(self) -> int:
        return len(self.features)

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.features)

    def __getitem__(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(f"no feature {name!r}; features: {self.names}")

    def take(self, rows: np.ndarray, ids: IdMap) -> SideFeatures:
        """Rows re-ordered/subset to match a new id map ``ids`` (row k = old row ``rows[k]``)."""
        return SideFeatures(ids, tuple(f.take(rows) for f in self.features), self.missing, self.unmatched, self.source)

    def numeric_matrix(self, standardize: bool = True) -> np.ndarray:
        """Numeric features as float32 ``(n_rows, n_numeric)``: z-scored when
        ``standardize``, missing values replaced by the column mean (0 after z-scoring)."""
        cols = [f.values.astype(np.float64) for f in self.features if f.kind == "numeric"]
        out = np.zeros((self.n_rows, len(cols)), dtype=np.float32)
        for j, col in enumerate(cols):
            mean = np.nanmean(col) if np.isfinite(col).any() else 0.0
            std = np.nanstd(col) if np.isfinite(col).any() else 1.0
            filled = np.where(np.isnan(col), mean, col)
            out[:, j] = (filled - mean) / (std if std > 0 else 1.0) if standardize else filled
        return out

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        ids: IdMap,
        id_col: str,
        kinds: Mapping[str, str] | None = None,
        sep: str | None = None,
        source: str = "<memory>",
        where: Callable[[int], str] | None = None,
    ) -> SideFeatures:
        """Build from a table with one row per id in ``id_col``; the other columns become
        features. ``kinds`` names a kind per column (default: numeric dtypes are
        ``numeric``, others ``categorical``); ``multi`` columns split on ``sep``
        (whitespace by default). ``where(row)`` locates a row in error messages."""
        where = where or (lambda row: f"{source}: row {row + 1}")
        frame = frame.reset_index(drop=True)
        if id_col not in frame.columns:
            raise DataError(f"{source}: missing id column {id_col!r}; columns are {list(frame.columns)}")
        kinds = dict(kinds or {})
        unknown = set(kinds) - set(frame.columns)
        if unknown:
            raise DataError(f"{source}: kinds name columns that do not exist: {sorted(unknown)}")
        raw = frame[id_col]
        null = raw.isna().to_numpy() | (raw.astype(str).str.strip() == "").to_numpy()
        if null.any():
            raise DataError(f"{where(int(np.argmax(null)))}: empty or missing id in column {id_col!r}")
        keys = align_ids(raw, ids)
        rows = ids.to_internal(keys, strict=False)
        dup = pd.Series(rows[rows >= 0]).duplicated().to_numpy()
        if dup.any():
            k = int(np.flatnonzero(rows >= 0)[np.argmax(dup)])
            raise DataError(f"{where(k)}: id {show(raw.iloc[k])} appears twice in column {id_col!r}")
        matched = rows >= 0
        features = []
        for name in frame.columns:
            if name == id_col:
                continue
            col = frame[name]
            kind = kinds.get(name) or ("numeric" if pd.api.types.is_numeric_dtype(col.dtype) else "categorical")
            if kind not in KINDS:
                raise DataError(f"{source}: column {name!r}: kind must be one of {KINDS}, got {kind!r}")
            features.append(_feature(name, kind, col[matched], rows[matched], len(ids), sep, where))
        return cls(ids, tuple(features), int(len(ids) - matched.sum()), int((~matched).sum()), source)


def align_ids(raw: pd.Series, ids: IdMap) -> np.ndarray:
    """Source ids in the type of the id map: for an integer map, text ids that are
    canonical integers (the loaders' rule, so ``"007"`` stays text) become ints."""
    values = raw.to_numpy()
    int_map = ids.external_ids.dtype.kind in "iu"
    if int_map and values.dtype.kind not in "iuf":
        text = raw.astype(str).str.strip()
        canonical = text.str.fullmatch(CANONICAL_INT.strip("^$")).to_numpy(dtype=bool)
        out = text.to_numpy(dtype=object)
        out[canonical] = text[canonical].astype(np.int64).to_numpy().astype(object)
        return out
    if (
        int_map
        and values.dtype.kind == "f"
        and np.all(values == np.floor(values))
        and np.all(np.abs(values) <= 2.0**53)
    ):
        return values.astype(np.int64)
    if not int_map and values.dtype.kind in "iu":
        return raw.astype(str).to_numpy(dtype=object)
    if not int_map and values.dtype.kind not in "iuf":  # text ids: whitespace around them stripped
        return raw.astype(str).str.strip().to_numpy(dtype=object)
    return values


def _feature(name, kind, col: pd.Series, rows: np.ndarray, n: int, sep, where) -> Feature:
    if kind == "numeric":
        num = pd.to_numeric(col, errors="coerce")
        bad = (num.isna() & col.notna() & (col.astype(str).str.strip() != "")).to_numpy()
        if bad.any():
            raise DataError(
                f"{where(int(col.index[np.argmax(bad)]))}: column {name!r}: "
                f"expected a number, got {show(col[bad].iloc[0])}"
            )
        values = np.full(n, np.nan, dtype=np.float32)
        values[rows] = num.to_numpy(dtype=np.float64, na_value=np.nan)
        return Feature(name, kind, values)
    text = col.astype("string").fillna("")
    if kind == "categorical":
        text = text.str.strip()
        codes, vocab = pd.factorize(text.where(text != "", None), sort=True)
        values = np.zeros(n, dtype=np.int32)
        values[rows] = codes + 1  # -1 (missing) -> 0
        return Feature(name, kind, values, None, np.concatenate([[None], np.asarray(vocab, dtype=object)]))
    tokens = text.str.split(sep).explode()
    tokens = tokens[tokens.notna() & (tokens != "")]
    owner = rows[col.index.get_indexer(tokens.index)] if len(tokens) else np.empty(0, np.int64)
    codes, vocab = pd.factorize(tokens.to_numpy(dtype=object), sort=True)
    order = np.argsort(owner, kind="stable")
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(owner, minlength=n), out=offsets[1:])
    return Feature(
        name,
        kind,
        (codes[order] + 1).astype(np.int32),
        offsets,
        np.concatenate([[None], np.asarray(vocab, dtype=object)]),
    )


def load_side_features(
    path: str | Path,
    ids: IdMap,
    *,
    id_col: str | None = None,
    kinds: Mapping[str, str] | None = None,
    sep: str | None = None,
    format: str | None = None,
) -> SideFeatures:
    """Side features from a RecBole ``.user``/``.item`` file (kinds from the typed header:
    token -> categorical, token_seq -> multi, float -> numeric) or a CSV/TSV/Parquet table.

    ``id_col`` defaults to ``user_id``/``item_id`` when present, else the first column.
    """
    frame, typed, where, id_col = read_frame(Path(path), format, id_col)
    merged = {**typed, **dict(kinds or {})}
    merged.pop(id_col, None)
    return SideFeatures.from_frame(frame, ids, id_col, merged, sep, str(path), where)
