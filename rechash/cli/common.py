"""Conventions every command shares, each defined once.

- :class:`InputOptions` / :func:`reads_interactions`: the column options (``--user-col``,
  ``--item-col``, ``--weight-col``, ``--timestamp-col``, ``--sep``, ``--timestamp-unit``) of
  every command that reads interaction files, generated from the dataclass's fields and
  handed to the loaders (:func:`rechash.data.load` and friends) as keyword options.
- :data:`THREADS_HELP` / :func:`command_threads`: ``--threads N`` of every command that computes,
  default every core, applied with :func:`rechash.threads.set_threads` for the command.
- :func:`configure_logging`: ``-v`` / ``-vv`` / ``-q`` of the root command over :mod:`logging`.
- :func:`kernel_notice`: one line before numba compiles kernels that have no on-disk cache.
- :func:`escape_help`: help texts are Rich markup for typer; square brackets (``rechash[faiss]``)
  are escaped so they print literally.
- :func:`plain_values`: numpy scalar reprs (``np.int64(99999)``) in messages print as plain values.

Nothing here imports numpy, pandas, torch or numba at module level: ``rechash --help`` stays fast.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import logging
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Optional

import typer


# ---- input columns -------------------------------------------------------------------------
def _col(flag: str, help: str, default=None):
    return field(default=default, metadata={"flag": flag, "help": help})


@dataclass(frozen=True)
class InputOptions:
    """How to read the columns of interaction files (CSV/TSV/Parquet/RecBole); ``None``:
    detected (the loaders' aliases, see :mod:`rechash.data.loaders`)."""

    user_col: str | None = _col("--user-col", "User id column of CSV/TSV/Parquet/RecBole inputs.")
    item_col: str | None = _col("--item-col", "Item id column.")
    weight_col: str | None = _col("--weight-col", "Optional weight column (e.g. rating).")
    timestamp_col: str | None = _col("--timestamp-col", "Optional timestamp column (seconds or dates).")
    sep: str | None = _col("--sep", "Delimiter of CSV/TSV inputs.")
    timestamp_unit: str = _col(
        "--timestamp-unit", "Unit of numeric timestamps: s, ms, us, ns or auto (by magnitude).", "auto"
    )

    def loader_options(self) -> dict:
        """Keyword options of :func:`rechash.data.load` / ``load_many`` / ``load_split``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def reads_interactions(fn):
    """Give a command the :class:`InputOptions` options; it receives them as ``inputs``.

    ``fn`` declares a keyword parameter ``inputs``; the wrapper's signature replaces it with
    one typer option per field (so typer lists ``--user-col`` etc. after the command's own)."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "inputs"]
    names = [f.name for f in fields(InputOptions)]
    extra = [
        inspect.Parameter(
            f.name,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Optional[str],  # noqa: UP045 - typer reads it at runtime
            default=typer.Option(
                f.default, f.metadata["flag"], help=f.metadata["help"], show_default=f.default is not None
            ),
        )
        for f in fields(InputOptions)
    ]

    @functools.wraps(fn)
    def command(*args, **kwargs):
        inputs = InputOptions(**{n: kwargs.pop(n) for n in names})
        return fn(*args, inputs=inputs, **kwargs)

    command.__signature__ = inspect.Signature(own + extra)
    return command


# ---- threads ---------------------------------------------------------------------------------
THREADS_HELP = "CPU threads of every kernel: numba, torch, BLAS/OpenMP and the Hamming scan (default: all cores)."


def threads_option():
    """The ``--threads`` option of every command that computes (default: every core)."""
    return typer.Option(None, "--threads", min=1, help=THREADS_HELP)


@contextlib.contextmanager
def command_threads(n: int | None) -> Iterator[int]:
    """Bound every kernel to ``n`` threads (``None``: every core) while the command runs;
    yields the effective count (an int, for APIs that take an explicit thread count).

    numba and torch are loaded first so the limit reaches them; on exit the libraries, the
    process setting and ``OMP_NUM_THREADS`` are put back (a command run in-process, e.g. by
    the tests, leaves the process as it found it)."""
    from rechash.threads import current_threads, set_threads, thread_limit

    if n is None:
        yield current_threads()
        return
    import numba  # noqa: F401
    import torch  # noqa: F401

    env = os.environ.get("OMP_NUM_THREADS")
    with thread_limit(n):  # undoes the numba, torch and BLAS limits on exit
        try:
            yield set_threads(n)
        finally:
            set_threads(None)
            if env is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = env


# ---- logging ---------------------------------------------------------------------------------
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` (resolved at every record, so a replaced stream is
    followed) through ``tqdm.write`` when tqdm is loaded, so log lines do not break a bar."""

    _rechash = True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            tqdm = sys.modules.get("tqdm")
            if tqdm is not None:
                tqdm.tqdm.write(text, file=sys.stderr)
            else:
                sys.stderr.write(text + "\n")
                sys.stderr.flush()
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


#: verbosity of the running command: -1 quiet, 0 default, 1 -v, 2 -vv
VERBOSITY = [0]


def configure_logging(verbose: int = 0, quiet: bool = False) -> int:
    """Log level of the ``rechash`` loggers: WARNING by default, INFO with ``-v``, DEBUG with
    ``-vv``, ERROR with ``-q``; returns it. One handler on the root logger (added once; other
    libraries show their warnings and errors, ERROR only with ``-q``)."""
    level = (
        logging.ERROR if quiet else logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    )
    VERBOSITY[0] = -1 if quiet else min(int(verbose), 2)
    root = logging.getLogger()
    if not any(getattr(h, "_rechash", False) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(logging.ERROR if quiet else logging.WARNING)
    logging.getLogger("rechash").setLevel(level)
    return level


@contextlib.contextmanager
def logging_scope() -> Iterator[None]:
    """Run a command with the default verbosity (until the root callback reads ``-v``/``-q``)
    and put the log levels back afterwards, so ``main()`` called in-process (tests, notebooks)
    leaves the levels as it found them (the handler, added once, stays)."""
    saved = (logging.getLogger().level, logging.getLogger("rechash").level, VERBOSITY[0])
    configure_logging()
    try:
        yield
    finally:
        logging.getLogger().setLevel(saved[0])
        logging.getLogger("rechash").setLevel(saved[1])
        VERBOSITY[0] = saved[2]


def quiet() -> bool:
    """``-q`` was given: no status lines, no progress bars."""
    return VERBOSITY[0] < 0


def status(message: str) -> None:
    """A status line on stderr (not with ``-q``)."""
    if not quiet():
        typer.echo(message, err=True)


# ---- the first-run kernel notice -------------------------------------------------------------
_PACKAGE = Path(os.path.abspath(__file__)).parents[1]  # as numba sees the sources (not resolved)
#: numba modules of each kind of work (paths under the rechash package)
KERNELS = {
    "data": ("data/_kernels.py",),
    "search": ("index/kernels.py", "rerank/dot.py"),
}


def _cache_dirs(source: Path) -> list[Path]:
    """Where numba keeps the on-disk cache of ``source`` (its locators, in order)."""
    sub = f"{source.parent.name}_{hashlib.sha1(str(source.parent).encode()).hexdigest()}"
    if os.environ.get("NUMBA_CACHE_DIR"):
        return [Path(os.environ["NUMBA_CACHE_DIR"]) / sub]
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba" / sub
    return [source.parent / "__pycache__", user]


def kernels_cold(*kinds: str) -> bool:
    """True when a numba module of ``kinds`` has no cache index on disk (its kernels will be
    compiled on first use, which takes seconds). Cheap (a few directory listings); a cache that exists
    but is stale (a changed source) is not detected."""
    for kind in kinds:
        for rel in KERNELS[kind]:
            source = _PACKAGE / rel
            stem = source.stem
            if not any(d.is_dir() and any(d.glob(f"{stem}.*.nbi")) for d in _cache_dirs(source)):
                return True
    return False


def kernel_notice(*kinds: str) -> None:
    """Print ``compiling kernels (first run only)...`` when the kernels of ``kinds`` are not
    cached yet (not with ``-q``)."""
    if os.environ.get("NUMBA_DISABLE_JIT", "0") not in ("", "0"):
        return
    if not quiet() and kernels_cold(*kinds):
        status("compiling kernels (first run only)...")


# ---- messages ----------------------------------------------------------------------------------
_RICH_TAG = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def _escape_markup(text: str) -> str:
    """``rich.markup.escape`` (same rule, without importing rich): ``[faiss]`` -> ``\\[faiss]``."""
    text = _RICH_TAG.sub(lambda m: f"{m.group(1)}{m.group(1)}\\{m.group(2)}", text)
    return text + "\\" if text.endswith("\\") and not text.endswith("\\\\") else text


def escape_help(command) -> None:
    """Escape the Rich markup of every help text of a built (click) command tree in place, so
    ``rechash[faiss]`` prints literally; nothing to do when typer renders help without Rich."""
    from typer import core

    if not core.HAS_RICH or getattr(command, "rich_markup_mode", "rich") != "rich":
        return
    stack = [command]
    while stack:
        cmd = stack.pop()
        for attr in ("help", "short_help", "epilog"):
            if getattr(cmd, attr, None):
                setattr(cmd, attr, _escape_markup(getattr(cmd, attr)))
        for param in getattr(cmd, "params", ()):
            if getattr(param, "help", None):
                param.help = _escape_markup(param.help)
        stack.extend(getattr(cmd, "commands", {}).values())


_NUMPY_SCALAR = re.compile(
    r"\bnp\.(?:u?int\d*|float\d*|complex\d*|bool_?|str_|bytes_|longlong|ulonglong|intc|uintc|datetime64|timedelta64)"
    r"\(([^()]*)\)"
)


def plain_values(message: str) -> str:
    """``np.int64(99999)`` -> ``99999``, ``np.str_('u1')`` -> ``'u1'``: numpy >= 2 scalar reprs
    that reached a message (the library formats ids with :func:`rechash.data.idmap.format_id`;
    this is the CLI's safety net)."""
    return _NUMPY_SCALAR.sub(r"\1", message)
