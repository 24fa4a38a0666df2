"""Model files, format only: checksums, array archives, id maps, the seen matrix.

Every reader validates what it reads and raises :class:`rechash.errors.ModelError` naming
the file; arrays load with ``allow_pickle=False``. The layouts that use these (the
hasher's directory, every other recommender's) live with their models.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

from rechash.errors import ModelError


def library_versions() -> dict[str, str]:
    """Versions of the libraries that wrote (or read) a model."""
    import scipy
    import torch

    import rechash

    return {
        "rechash": rechash.__version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
        "torch": torch.__version__,
    }


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_seen(f: Path, seen) -> None:
    """Write a users x items CSR's pattern as ``indptr, indices, shape`` (what :func:`read_seen` reads)."""
    import scipy.sparse as sp

    seen = sp.csr_matrix(seen)
    np.savez(
        f,
        indptr=seen.indptr.astype(np.int64),
        indices=seen.indices.astype(np.int32),
        shape=np.array(seen.shape, dtype=np.int64),
    )


def read_npz(f: Path) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` archive, without pickle."""
    try:
        with np.load(f, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile/ValueError variants
        raise ModelError(f"{f}: unreadable array archive ({exc})") from None


def read_seen(f: Path, n_users: int, n_items: int):
    """The seen matrix written by :func:`save_seen`, checked to be ``(n_users, n_items)``."""
    import scipy.sparse as sp

    arrays = read_npz(f)
    try:
        indptr, indices, shape = arrays["indptr"], arrays["indices"], tuple(int(x) for x in arrays["shape"])
        if shape != (n_users, n_items):
            raise ValueError(f"shape {shape}, the model has ({n_users}, {n_items})")
        seen = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
        seen.check_format(full_check=True)
    except (KeyError, ValueError, TypeError) as exc:
        raise ModelError(f"{f}: corrupted seen-items matrix ({exc})") from None
    return seen


def read_json(f: Path):
    """A JSON file's value."""
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{f}: corrupted JSON ({exc})") from None
