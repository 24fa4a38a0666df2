"""Where numba's on-disk cache of rechash's compiled kernels goes.

rechash's kernels are ``@njit(cache=True)``. Left alone, numba writes their cache next to
the source, in the installed package's ``__pycache__`` (a site-packages folder the user
may not own, shared by every user of the install). ``import rechash`` therefore calls
:func:`configure` before any rechash module imports numba, with this rule:

1. ``NUMBA_CACHE_DIR`` set to a non-empty value (numba treats an empty one as unset) is the
   user's choice and is left alone, whatever it holds.
2. Otherwise the cache goes to ``$RECHASH_CACHE_DIR``; else ``$XDG_CACHE_HOME/rechash/numba``
   (only when ``XDG_CACHE_HOME`` is an absolute path, as the XDG spec says); else
   ``~/.cache/rechash/numba``. The directory is created if missing, and ``NUMBA_CACHE_DIR``
   is set to its absolute path for this process (and its children).
3. When that directory cannot be created or is not writable (read-only home, no home),
   ``<tempdir>/rechash-numba-<uid>`` is used instead: created with mode 0700, and used only
   if this user owns it (the cache holds pickled code, so a folder another user made is
   never trusted).
4. When that fails too, ``NUMBA_CACHE_DIR`` stays unset and numba applies its own order:
   the package's ``__pycache__`` if writable, then its user-wide cache dir. Numba has no
   switch that only turns caching off (``NUMBA_DISABLE_JIT`` turns off compiling, far too
   slow), and it raises ``RuntimeError: cannot cache function ...`` when it finds no
   writable place at all, which step 3 is there to avoid.

Numba keeps one subfolder per source directory (its name plus a hash of its path) and, per
file, an index keyed by the source's content hash and the numba version, so one cache
directory serves several installs and versions side by side; deleting it only costs a
recompile. When numba was imported before rechash, its already loaded config
(``numba.core.config.CACHE_DIR``) is updated too. This module imports nothing heavy (no
numba, no pathlib; tempfile only on the fallback path).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

ENV_VAR = "RECHASH_CACHE_DIR"


def default_cache_dir(environ: Mapping[str, str] | None = None) -> str:
    """The directory of step 2 (``$RECHASH_CACHE_DIR``, else the XDG user cache), absolute.

    Pure: looks at ``environ`` (default ``os.environ``) and creates nothing.
    """
    env = os.environ if environ is None else environ
    explicit = env.get(ENV_VAR)
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    xdg = env.get("XDG_CACHE_HOME")
    if xdg and os.path.isabs(xdg):
        base = xdg
    else:
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".cache")
    return os.path.abspath(os.path.join(base, "rechash", "numba"))


def _usable(path: str) -> bool:
    """Create ``path`` if needed; True when this process can write into it."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)


def _temp_cache_dir() -> str | None:
    """``<tempdir>/rechash-numba-<uid>``, private to this user, or None."""
    import tempfile  # only on this fallback path: tempfile imports random, shutil, ...

    uid = os.getuid() if hasattr(os, "getuid") else None
    path = os.path.join(tempfile.gettempdir(), f"rechash-numba-{uid if uid is not None else 'user'}")
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
    except OSError:
        return None
    if uid is not None and st.st_uid != uid:
        return None
    return path if os.access(path, os.W_OK | os.X_OK) else None


def configure() -> str | None:
    """Apply the module's rule; return the cache directory rechash set, or None when it set
    nothing (the user's ``NUMBA_CACHE_DIR`` stands, or no writable place was found)."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return None
    path = default_cache_dir()
    if not _usable(path):
        path = _temp_cache_dir()
        if path is None:
            return None
    os.environ["NUMBA_CACHE_DIR"] = path
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba was imported first: its config is already read
        config.CACHE_DIR = path
    return path
