"""Named public datasets, downloaded from their public origin, checked and cached.

``load("ml-100k")`` / ``load("ml-1m")`` (or the name wherever the CLI takes a path)
downloads the GroupLens archive once, verifies its checksum (the MD5 that GroupLens
publishes beside each archive), extracts the ratings file and caches it under
``$RECHASH_DATA`` (default ``~/.cache/rechash``). A failed or offline download raises a
one-line :class:`DataError` that names ``--data PATH`` (pass a local copy instead); a
checksum mismatch raises and caches nothing.

These are the original explicit ratings with timestamps (``u.data``, ``ratings.dat``),
not the LightGCN implicit splits that ``../shared/data/ml-1m`` holds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rechash.errors import DataError

_GROUPLENS = "https://files.grouplens.org/datasets/movielens"


@dataclass(frozen=True)
class NamedDataset:
    """A downloadable dataset: archive URL, ``algo:hexdigest`` checksum, ratings member."""

    name: str
    url: str
    checksum: str
    member: str
    format: str
    description: str


DATASETS: dict[str, NamedDataset] = {
    "ml-100k": NamedDataset(
        "ml-100k",
        f"{_GROUPLENS}/ml-100k.zip",
        "md5:0e33842e24a9c977be4e0107933c0723",
        "ml-100k/u.data",
        "movielens",
        "MovieLens 100K: 100,000 ratings (1-5) of 943 users on 1,682 movies",
    ),
    "ml-1m": NamedDataset(
        "ml-1m",
        f"{_GROUPLENS}/ml-1m.zip",
        "md5:c4d9eecfca2ab87c1945afe126590906",
        "ml-1m/ratings.dat",
        "movielens",
        "MovieLens 1M: 1,000,209 ratings (1-5) of 6,040 users on 3,706 movies",
    ),
}


def cache_dir() -> Path:
    """Where downloads live: ``$RECHASH_DATA``, else ``~/.cache/rechash``."""
    return Path(os.environ.get("RECHASH_DATA") or Path.home() / ".cache" / "rechash")


def _urlopen(url: str, timeout: float = 30.0):
    """Network access, one place (tests replace it)."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - public https/file URLs only


def checksum(path: Path, algo: str = "md5") -> str:
    """Hex digest of a file."""
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, expected: str) -> None:
    """Raise :class:`DataError` unless ``path`` has the ``algo:hexdigest`` checksum ``expected``."""
    algo, _, digest = expected.partition(":")
    got = checksum(path, algo)
    if got != digest.lower():
        raise DataError(
            f"{path}: {algo} checksum mismatch (expected {digest}, got {got}); the download is corrupt or changed"
        )


def fetch(name: str) -> Path:
    """Path of the cached ratings file of a named dataset, downloading it when needed."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; named datasets: {', '.join(DATASETS)}")
    spec = DATASETS[name]
    target = cache_dir() / name / Path(spec.member).name
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / Path(spec.url).name
        try:
            with _urlopen(spec.url) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except (OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc)).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{name}: cannot download {spec.url} ({reason}); offline? pass a local copy with --data PATH"
            ) from None
        verify(archive, spec.checksum)
        try:
            with zipfile.ZipFile(archive) as zf, zf.open(spec.member) as src, open(Path(tmp) / "member", "wb") as dst:
                shutil.copyfileobj(src, dst)
        except (KeyError, zipfile.BadZipFile) as exc:
            raise DataError(f"{name}: {archive.name} has no readable {spec.member} ({exc})") from None
        os.replace(Path(tmp) / "member", target)
    return target
