"""Crash-safe outputs: atomic files and directories, output-path checks, an exclusive lock.

A file appears under its name only when complete: it is written to a hidden sibling
(``.NAME.XXXX.tmp``), flushed to disk and renamed. A directory output (a model, a split,
exported codes) is filled as a hidden sibling directory and renamed into place, replacing
the previous output of the same kind, so it only ever holds the files of one run and a
kill at any moment leaves the old output or the new one, never a mix (at worst with a
hidden ``.NAME.*.tmp`` sibling left over; in the instant between the two renames the old
output lies in a hidden ``.NAME.*.old`` sibling). Output paths are checked before any
work starts.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from rechash.errors import RechashError

#: ``RECHASH_CRASH_AT=POINT[#N]`` kills the process (SIGKILL) the N-th time it passes POINT.
CRASH_ENV = "RECHASH_CRASH_AT"
_passes: dict[str, int] = {}


def crash_point(point: str) -> None:
    """Test hook: simulate a ``kill -9`` at an exact stage (see :data:`CRASH_ENV`).

    Points: ``write:NAME`` (a file's temporary copy is complete, not yet renamed),
    ``wrote:NAME`` (just renamed), ``dir:NAME`` (a directory output is filled, not yet
    renamed into place) and the stages named by :mod:`rechash.jobs.batch`."""
    target, _, count = os.environ.get(CRASH_ENV, "").partition("#")
    if target != point:
        return
    _passes[point] = _passes.get(point, 0) + 1
    if _passes[point] >= int(count or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _sibling(path: Path, parent: Path | None = None) -> Path:
    """A fresh hidden name beside ``path`` (or in ``parent``): ``.NAME.PID.RANDOM.tmp``."""
    return (parent or path.parent) / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a hidden temporary file beside ``path``, fsync, rename.

    OS errors become one-line :class:`RechashError` naming ``path``; on any failure the
    temporary file is removed."""
    path = Path(path)
    tmp = _sibling(path)
    try:
        write(tmp)
        _fsync(tmp)
        crash_point(f"write:{path.name}")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RechashError(f"{path}: could not write ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    crash_point(f"wrote:{path.name}")


def check_output_path(path: str | Path, owned: Callable[[Path], bool], what: str) -> Path:
    """Check that directory output ``path`` can be (re)written, before any work starts.

    Refused: an existing file, a path under a file, an existing directory holding any
    entry ``owned`` does not recognise (it is not a ``what``), a location that cannot be
    written. Raises a one-line :class:`RechashError` naming the path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RechashError(f"{path}: exists and is not a directory; choose another output path")
    if path.is_dir():
        foreign = sorted(p.name for p in path.iterdir() if not owned(p))
        if foreign:
            raise RechashError(
                f"{path}: holds {foreign[0]!r}, which is not part of a {what}; "
                "refusing to replace it (choose another output path or empty it)"
            )
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise RechashError(f"{path}: {parent} is a file, not a directory")
    try:  # a real probe: os.access says yes to root even on read-only directories
        probe = _sibling(path, parent)
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise RechashError(f"{path}: cannot write in {parent} ({exc.strerror or exc})") from None
    return path


def replace_directory(path: str | Path, fill: Callable[[Path], None], owned: Callable[[Path], bool], what: str) -> Path:
    """Write the directory ``path`` atomically: ``fill(tmp)`` writes every file into a hidden
    sibling, which is fsynced and renamed into place, replacing a previous ``what`` there
    (checked with :func:`check_output_path`). Returns ``path``."""
    path = check_output_path(path, owned, what)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _sibling(path)
        tmp.mkdir()
    except OSError as exc:
        raise RechashError(f"{path}: could not write ({exc.strerror or exc})") from exc
    try:
        fill(tmp)
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
        crash_point(f"dir:{path.name}")
        _swap(tmp, path)
        _fsync(path.parent)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RechashError(f"{path}: could not write ({exc.strerror or exc})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _swap(tmp: Path, path: Path) -> None:
    """Rename directory ``tmp`` to ``path``, moving a previous ``path`` aside and deleting it."""
    old: Path | None = tmp.with_suffix(".old")
    try:
        os.replace(path, old)
    except FileNotFoundError:
        old = None
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if old is not None:
            os.replace(old, path)
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            raise RechashError(f"{path}: another run wrote it at the same time; run again") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextmanager
def exclusive_lock(directory: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``directory`` (no lock file; released when the process
    dies); a second holder is refused at once with a one-line :class:`RechashError`."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RechashError(
                f"{directory}: another rechash run is writing into this directory; "
                "wait for it to finish or choose another output"
            ) from None
        yield
    finally:
        os.close(fd)
