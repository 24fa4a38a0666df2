"""Hamming indexes over packed binary codes: one contract, several backends.

>>> index = build(item_codes, kind="exact")        # numba blocked scan (the fast default)
>>> dist, ids = index.search(user_codes, k=200)    # (q, k), by (distance, id), -1 padded
>>> lims, dist, ids = index.range_search(user_codes, 8)   # inclusive radius, CSR
>>> index.save("items.idx"); index = load("items.idx")    # .npy + JSON, memory-mapped

Kinds: ``"exact"`` (:class:`ExactIndex`, numba), ``"numpy"`` (:class:`NumpyIndex`, the
reference), ``"faiss"`` (:class:`FaissIndex`, needs ``rechash[faiss]``), ``"mih"``
(:class:`MultiIndexHashing`, exact sub-linear radius search). See :mod:`rechash.index.base`
for the contract every kind passes (tests/index/ holds the shared conformance suite), and
:mod:`rechash.index.candidates` for the per-user pool policies (top-k, radius, adaptive) over them.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from rechash.errors import DataError
from rechash.index.base import Capabilities, HammingIndex, read_header

#: kind -> (module, class)
KINDS = {
    "exact": ("rechash.index.flat", "ExactIndex"),
    "numpy": ("rechash.index.numpy_index", "NumpyIndex"),
    "faiss": ("rechash.index.faiss_index", "FaissIndex"),
    "mih": ("rechash.index.mih", "MultiIndexHashing"),
}

__all__ = [
    "KINDS",
    "Capabilities",
    "ExactIndex",
    "FaissIndex",
    "HammingIndex",
    "MultiIndexHashing",
    "NumpyIndex",
    "build",
    "build_index",
    "index_class",
    "load",
    "load_index",
]


def index_class(kind: str) -> type:
    """The backend class of ``kind`` (imports it, and faiss only for ``"faiss"``)."""
    if kind not in KINDS:
        raise DataError(f"unknown index kind {kind!r}; expected one of {sorted(KINDS)}")
    module, name = KINDS[kind]
    return getattr(importlib.import_module(module), name)


def build(codes: np.ndarray, kind: str = "exact", **opts) -> HammingIndex:
    """Index packed codes (uint8, ``(n, B/8)``) with the backend ``kind``.

    ``opts`` go to the backend: ``n_threads`` (exact, faiss, mih), ``qblock`` / ``iblock``
    (exact), ``n_substrings`` / ``max_delta`` / ``budget`` (mih).
    """
    return index_class(kind).from_codes(codes, **opts)


def load(path: str | Path, mmap: bool = True) -> HammingIndex:
    """Load any saved index; arrays are memory-mapped when the kind allows (``mmap``)."""
    return index_class(read_header(path)["kind"]).load(path, mmap=mmap)


#: names under which the package root exports these (``rechash.build_index``)
build_index = build
load_index = load


def __getattr__(name: str):
    for kind, (module, cls) in KINDS.items():
        if name == cls:
            return index_class(kind)
    raise AttributeError(f"module 'rechash.index' has no attribute {name!r}")
