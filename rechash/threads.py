"""One thread setting for every kernel: the Hamming scan, numba, torch and BLAS/OpenMP.

``thread_limit(n)`` bounds, for the duration of a ``with`` block, every pool rechash
touches: the scan's own thread pool (via :func:`current_threads`), numba's parallel
kernels (``numba.set_num_threads``), torch's intra-op pool and the BLAS/OpenMP pools
that threadpoolctl finds (implicit's ALS, scikit-learn). Modules that are not imported
yet are not imported here (numba and torch are only limited when already loaded, and
read the limit when they start work). ``set_threads(n)`` does the same for the rest of
the process (the CLI's ``--threads``). ``None`` means every core this process may use.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterator

_LOCAL = threading.local()
_PROCESS: list[int | None] = [None]


def available_cores() -> int:
    """Cores this process may use (its CPU affinity)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def current_threads(requested: int | None = None) -> int:
    """The thread count a kernel should use: ``requested`` when given, else the innermost
    :func:`thread_limit`, else the process setting, else every available core."""
    for value in (requested, getattr(_LOCAL, "limit", None), _PROCESS[0]):
        if value is not None:
            return max(1, int(value))
    return available_cores()


def _check(n: int | None) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer or None, got {n!r}")
    return min(n, available_cores())


def _apply(n: int) -> list:
    """Limit the loaded libraries to ``n`` threads; returns undo callbacks."""
    undo = []
    numba = sys.modules.get("numba")
    if numba is not None:
        old = numba.get_num_threads()
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        undo.append(lambda: numba.set_num_threads(old))
    torch = sys.modules.get("torch")
    if torch is not None:
        old_t = torch.get_num_threads()
        torch.set_num_threads(n)
        undo.append(lambda: torch.set_num_threads(old_t))
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a core dependency
        pass
    else:
        limiter = threadpool_limits(n)
        undo.append(limiter.restore_original_limits)
    return undo


@contextlib.contextmanager
def thread_limit(n: int | None) -> Iterator[int]:
    """Bound every kernel to ``n`` threads inside the block (``None``: no change); yields
    the effective count."""
    n = _check(n)
    if n is None:
        yield current_threads()
        return
    previous = getattr(_LOCAL, "limit", None)
    _LOCAL.limit = n
    undo = _apply(n)
    try:
        yield n
    finally:
        for fn in reversed(undo):
            fn()
        _LOCAL.limit = previous


def set_threads(n: int | None) -> int:
    """Bound every kernel to ``n`` threads for the rest of the process; returns the count."""
    n = _check(n)
    _PROCESS[0] = n
    if n is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(n))
        _apply(n)
    return current_threads()
