"""The HammingIndex protocol, capability flags, argument checks and the on-disk format.

Every backend answers the same contract (DESIGN.md):

- ``search(queries, k) -> (distances int32, ids int64)`` of shape ``(q, k)``, each row
  sorted by distance then id, padded with -1 / -1;
- ``range_search(queries, radius) -> (lims, distances, ids)``: the results of query ``i``
  are ``ids[lims[i]:lims[i+1]]``, every item with distance ``<= radius`` (inclusive),
  sorted by (distance, id);
- ``save(path)`` / ``load(path)``: a directory holding ``index.json`` (format, kind, bit
  count, parameters) and plain ``.npy`` arrays, loaded with ``np.load(mmap_mode='r')``
  where the backend allows; no pickle anywhere.

Both queries take an optional ``exclude`` CSR matrix (one row per query, columns = item
ids) of items that must not be returned; backends that filter inside the scan say so with
``capabilities.exclude`` (the others filter after the fact, which is exact for radius
search but needs the over-fetch done by :func:`search_excluding`).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import scipy.sparse as sp

from rechash.codes.bits import check_same_bits, validate_packed
from rechash.errors import DataError, ModelError
from rechash.io.atomic import atomic_write

FORMAT = "rechash.hamming-index"
FORMAT_VERSION = 1
HEADER = "index.json"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do; the candidate generator reads these to pick a path."""

    exact: bool = True  #: results equal brute force, ties included
    range_search: bool = True  #: inclusive radius search
    add: bool = True  #: items can be appended after build
    exclude: bool = False  #: ``exclude=`` is applied inside the scan (k stays full)
    mmap: bool = False  #: ``load(path)`` memory-maps the arrays instead of copying them
    sublinear: bool = False  #: radius queries touch fewer than all items
    parallel: bool = False  #: uses several threads (``n_threads``)


@runtime_checkable
class HammingIndex(Protocol):
    """An index over packed binary codes (see the module docstring for the contract)."""

    kind: ClassVar[str]
    capabilities: ClassVar[Capabilities]
    n_bits: int

    @property
    def ntotal(self) -> int:
        """Number of indexed items (ids are ``0 .. ntotal-1`` in insertion order)."""
        ...

    @property
    def codes(self) -> np.ndarray:
        """The indexed packed codes ``(ntotal, B/8)`` uint8."""
        ...

    def add(self, codes: np.ndarray) -> None:
        """Append packed codes; they get ids ``ntotal, ntotal+1, ...``."""
        ...

    def search(
        self, queries: np.ndarray, k: int, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` per query: ``(distances int32, ids int64)`` of shape ``(q, k)``."""
        ...

    def range_search(
        self, queries: np.ndarray, radius: int | np.ndarray, *, exclude: sp.csr_matrix | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every item within ``radius`` (inclusive): ``(lims int64, distances int32, ids int64)``."""
        ...

    def save(self, path: str | Path) -> Path:
        """Write the index to the directory ``path``."""
        ...

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True) -> HammingIndex:
        """Read an index written by :meth:`save`."""
        ...


# ---- argument checks shared by every backend -------------------------------------------
def check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise DataError(f"k must be a positive integer, got {k!r}")
    return int(k)


def check_radius(radius: int | np.ndarray, n_queries: int, n_bits: int) -> np.ndarray:
    """Radius per query as int64 (a scalar is broadcast); must be integers >= 0."""
    if isinstance(radius, (int, np.integer)) and not isinstance(radius, bool) and radius >= 0:
        return np.full(n_queries, min(int(radius), n_bits), dtype=np.int64)
    r = np.asarray(radius)
    if r.dtype.kind not in "iu" or (r.ndim == 1 and len(r) != n_queries) or r.ndim > 1:
        raise DataError(f"radius must be an integer or one integer per query ({n_queries}), got {radius!r}")
    if r.size and r.min() < 0:
        raise DataError(f"radius must be >= 0, got {int(r.min())}")
    return np.broadcast_to(np.minimum(r.astype(np.int64), n_bits), (n_queries,)).copy()


def check_exclude(exclude: sp.spmatrix | None, n_queries: int) -> tuple[np.ndarray, np.ndarray] | None:
    """``exclude`` as CSR arrays ``(indptr int64, indices int64)`` with sorted rows, or None."""
    if exclude is None:
        return None
    if not sp.issparse(exclude):
        raise DataError("exclude must be a scipy sparse matrix (one row per query, columns = item ids)")
    m = sp.csr_matrix(exclude)
    if m.shape[0] != n_queries:
        raise DataError(f"exclude has {m.shape[0]} rows for {n_queries} queries")
    if not m.has_sorted_indices:
        m = m.sorted_indices()
    return m.indptr.astype(np.int64), m.indices.astype(np.int64)


def empty_search(n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n_queries, k), -1, dtype=np.int32), np.full((n_queries, k), -1, dtype=np.int64)


def empty_range(n_queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(n_queries + 1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)


def sort_range_rows(lims: np.ndarray, dist: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Order every CSR row by (distance, id)."""
    rows = np.repeat(np.arange(len(lims) - 1), np.diff(lims))
    order = np.lexsort((ids, dist, rows))
    return dist[order].astype(np.int32), ids[order].astype(np.int64)


def padded_from_csr(lims: np.ndarray, dist: np.ndarray, ids: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``width`` entries of each CSR row as -1 padded ``(q, width)`` arrays."""
    n = len(lims) - 1
    out_d, out_i = empty_search(n, width)
    counts = np.minimum(np.diff(lims), width)
    rows = np.repeat(np.arange(n), counts)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    src = np.repeat(lims[:-1], counts) + cols
    out_d[rows, cols] = dist[src]
    out_i[rows, cols] = ids[src]
    return out_d, out_i


def csr_from_padded(dist: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Drop the -1 padding of ``(q, k)`` arrays and return CSR ``(lims, dist, ids)``."""
    valid = ids >= 0
    lims = np.zeros(len(ids) + 1, dtype=np.int64)
    np.cumsum(valid.sum(axis=1), out=lims[1:])
    return lims, dist[valid].astype(np.int32), ids[valid].astype(np.int64)


def search_excluding(index: Any, queries: np.ndarray, k: int, exclude: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` without the excluded items for a backend that cannot exclude in its
    scan: over-fetch ``k`` plus the row's excluded count, then filter (always enough)."""
    ex = check_exclude(exclude, len(queries))
    assert ex is not None
    indptr, indices = ex
    extra = int(np.diff(indptr).max(initial=0))
    d, i = index.search(queries, k + extra)
    rows = np.broadcast_to(np.arange(len(queries))[:, None], i.shape)
    banned = _pair_keys(np.repeat(np.arange(len(queries)), np.diff(indptr)), indices)
    keep = (i >= 0) & ~np.isin(_pair_keys(rows, i), banned)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    d, i = np.take_along_axis(d, order, axis=1), np.take_along_axis(i, order, axis=1)
    gone = ~np.take_along_axis(keep, order, axis=1)
    d[gone], i[gone] = -1, -1
    return d, i


def _pair_keys(rows: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64) * np.int64(1 << 40) + np.asarray(ids, dtype=np.int64)


def filter_range(lims: np.ndarray, dist: np.ndarray, ids: np.ndarray, exclude: sp.csr_matrix) -> tuple:
    """Remove excluded items from a CSR radius result (order is kept)."""
    ex = check_exclude(exclude, len(lims) - 1)
    assert ex is not None
    indptr, indices = ex
    n = len(lims) - 1
    rows = np.repeat(np.arange(n), np.diff(lims))
    keep = ~np.isin(_pair_keys(rows, ids), _pair_keys(np.repeat(np.arange(n), np.diff(indptr)), indices))
    new_lims = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows[keep], minlength=n), out=new_lims[1:])
    return new_lims, dist[keep], ids[keep]


# ---- persistence ------------------------------------------------------------------------
def write_index(
    path: str | Path, kind: str, n_bits: int, ntotal: int, params: dict, arrays: dict[str, np.ndarray]
) -> Path:
    """Write ``arrays`` as ``NAME.npy`` files and the JSON header into directory ``path``."""
    from rechash import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.save(path / _array_file(path / HEADER, name), np.ascontiguousarray(arr), allow_pickle=False)
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "n_bits": int(n_bits),
        "ntotal": int(ntotal),
        "params": params,
        "arrays": sorted(arrays),
        "rechash_version": __version__,
    }
    text = json.dumps(header, indent=2) + "\n"
    atomic_write(path / HEADER, lambda tmp: tmp.write_text(text))  # last: a header means a complete index
    return path


def _array_file(header: Path, name: object) -> str:
    """``NAME.npy`` for an array name that is a plain file name (no path, no traversal)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", name):
        raise ModelError(f"{header}: array name {name!r} is not a plain file name")
    return f"{name}.npy"


def read_header(path: str | Path) -> dict:
    """The validated JSON header of a saved index directory."""
    file = Path(path) / HEADER
    if not file.is_file():
        raise ModelError(f"{path}: not a saved rechash index (missing {HEADER})")
    try:
        header = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ModelError(f"{file}: line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ModelError(f"{file}: format is {found!r}, expected {FORMAT!r}")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise ModelError(
            f"{file}: format_version {header['format_version']} is newer than this rechash reads ({FORMAT_VERSION})"
        )
    return header


def read_arrays(path: str | Path, header: dict, mmap: bool) -> dict[str, np.ndarray]:
    """Load the header's arrays (memory-mapped when ``mmap``), never unpickling."""
    out = {}
    names = header.get("arrays", [])
    if not isinstance(names, list):
        raise ModelError(f"{Path(path) / HEADER}: 'arrays' must be a list of names, got {names!r}")
    for name in names:
        file = Path(path) / _array_file(Path(path) / HEADER, name)
        if not file.is_file():
            raise ModelError(f"{path}: missing array file {file.name}")
        try:
            # copy-on-write mapping: shared, read from disk lazily, and typed writable, so
            # the numba kernels need no second compiled signature for read-only arrays
            out[name] = np.load(file, mmap_mode="c" if mmap else None, allow_pickle=False)
        except ValueError as exc:
            raise ModelError(f"{file}: unreadable array ({exc})") from exc
    return out


class BaseIndex:
    """Shared plumbing: bit count, query validation, header-based save/load."""

    kind: ClassVar[str] = "base"
    capabilities: ClassVar[Capabilities] = Capabilities()

    def __init__(self, n_bits: int) -> None:
        self.n_bits = int(n_bits)

    @classmethod
    def from_codes(cls, codes: np.ndarray, **opts):
        """A new index of this kind over packed ``codes`` (options go to the constructor)."""
        index = cls(validate_packed(codes), **opts)
        index.add(codes)
        return index

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, n_bits={self.n_bits}, ntotal={self.ntotal})"

    def __len__(self) -> int:
        return self.ntotal

    @property
    def ntotal(self) -> int:  # pragma: no cover - every backend overrides
        raise NotImplementedError

    def _queries(self, queries: np.ndarray) -> np.ndarray:
        return check_same_bits(queries, self.n_bits)

    def _new_codes(self, codes: np.ndarray) -> np.ndarray:
        bits = validate_packed(codes, "codes")
        if bits != self.n_bits:
            raise DataError(f"codes have {bits} bits but the index holds {self.n_bits}-bit codes")
        return np.ascontiguousarray(codes)

    def _params(self) -> dict:
        return {}

    def _arrays(self) -> dict[str, np.ndarray]:  # pragma: no cover - every backend overrides
        raise NotImplementedError

    def save(self, path: str | Path) -> Path:
        """Write the index to directory ``path`` (``index.json`` + ``.npy`` arrays)."""
        return write_index(path, self.kind, self.n_bits, self.ntotal, self._params(), self._arrays())

    @classmethod
    def load(cls, path: str | Path, mmap: bool = True):
        """Read an index of this kind written by :meth:`save`."""
        header = read_header(path)
        if header["kind"] != cls.kind:
            raise ModelError(f"{path}: holds a {header['kind']!r} index, not {cls.kind!r}")
        arrays = read_arrays(path, header, mmap and cls.capabilities.mmap)
        return cls._from_arrays(header, arrays)

    @classmethod
    def _from_arrays(cls, header: dict, arrays: dict[str, np.ndarray]):  # pragma: no cover
        raise NotImplementedError


def capabilities_dict(index: Any) -> dict:
    """Capability flags of an index as a plain dict (for reports)."""
    return asdict(index.capabilities)
