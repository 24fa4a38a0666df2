"""Offline jobs over all users: chunked, sharded Parquet output, atomic, resumable.

Layout of a sharded output directory (``pandas.read_parquet(dir)`` and
``pyarrow.dataset`` read it as one table; names starting with ``_`` or ``.`` are
ignored by both)::

    out/part-00000.parquet ... part-NNNNN.parquet   one shard per chunk of users
    out/_manifest.json                               job parameters, shard rows + sha256

Crash safety: each shard is written to a hidden temporary file, flushed to disk and
renamed into place, then the manifest is rewritten the same way; a shard is never
half-written under its final name. Re-running the same job skips every shard the
manifest lists whose file still matches its checksum, so a run killed at any moment
(even before its first manifest) resumes and ends byte-identical to an uninterrupted
one; the job's own leftovers (temporary files, shards the manifest does not list) are
removed. The job key covers the parameters, the exact list of users and the shard size:
a directory written by a different job is refused, naming the first difference, rather
than mixed. A run holds an exclusive lock on the directory, so a second concurrent run
into it is refused at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rechash import columns as C
from rechash.errors import RechashError
from rechash.io.atomic import atomic_write, crash_point, exclusive_lock
from rechash.io.store import sha256

MANIFEST = "_manifest.json"
FORMAT_VERSION = 1
#: every name a sharded job writes: shards, the manifest and their temporary files
_OWN = re.compile(r"(part-\d{5}\.parquet|_manifest\.json)|\.(part-\d{5}\.parquet|_manifest\.json)\..*tmp")

#: A pure function from a chunk of users to their output table.
ChunkFn = Callable[[np.ndarray], pd.DataFrame]


#: users per ``compute`` call within a shard / chunk: the progress bar moves by these
#: batches (a 50k-user shard reports ~10 times), never below this many users per call
PROGRESS_BATCH = 5_000


def _compute_in_batches(compute: ChunkFn, chunk: np.ndarray, bar) -> pd.DataFrame:
    """``compute(chunk)``, called on batches of the chunk when it is large, so ``bar``
    advances by users as batches finish (not once per shard). The batches' tables are
    concatenated in order: ``compute`` is a pure per-user function, so the result holds the
    rows of one call over the whole chunk (float scores may differ in the last bit, as they
    do between shard sizes). The batches follow from the chunk alone: a resumed job computes
    exactly what an uninterrupted one does."""
    step = max(PROGRESS_BATCH, -(-len(chunk) // 10))
    if len(chunk) <= step:
        frame = compute(chunk)
        bar.update(len(chunk))
        return frame
    parts = []
    for start in range(0, len(chunk), step):
        part = chunk[start : start + step]
        parts.append(compute(part))
        bar.update(len(part))
    kept = [f for f in parts if len(f)] or parts[:1]  # an empty table must not change the column types
    return kept[0] if len(kept) == 1 else pd.concat(kept, ignore_index=True)


def job_key(params: dict) -> str:
    """Identity of a job: its JSON parameters (users and shard size included), hashed."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def _users_digest(users: np.ndarray) -> str:
    """SHA-256 of the exact list of users (order included)."""
    return hashlib.sha256(np.asarray(users).astype(str).astype("U").tobytes()).hexdigest()


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    atomic_write(path, lambda tmp: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp))


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    atomic_write(out_dir / MANIFEST, lambda tmp: tmp.write_text(text))


def _show(value) -> str:
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{64}", value):
        return value[:12]
    text = "absent" if value is None else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def first_difference(old: dict, new: dict) -> str:
    """``"KEY: OLD there, NEW here"`` for the first parameter that differs (``new``'s order)."""
    for key in [*new, *(k for k in old if k not in new)]:
        if old.get(key) != new.get(key):
            return f"{key}: {_show(old.get(key))} there, {_show(new.get(key))} here"
    return "format: the manifest was written by another rechash version"


def read_manifest(out_dir: str | Path) -> dict:
    """The manifest of a sharded output directory (raises naming the path when unreadable)."""
    path = Path(out_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise RechashError(f"{path}: no manifest; not a rechash output directory") from None
    except (OSError, ValueError) as exc:
        raise RechashError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        version = manifest.get("format_version") if isinstance(manifest, dict) else None
        raise RechashError(f"{path}: manifest format {version!r}, expected {FORMAT_VERSION}")
    _check_manifest(path, manifest)
    return manifest


def _shard_name(index: int) -> str:
    return f"part-{index:05d}.parquet"


def _check_manifest(path: Path, manifest: dict) -> None:
    """The manifest's fields have their types; shard files are named by their index only."""
    for key, kind in (("job", str), ("params", dict), ("n_users", int), ("n_shards", int)):
        if not isinstance(manifest.get(key), kind):
            raise RechashError(f"{path}: {key!r} must be {kind.__name__}, got {manifest.get(key)!r}")
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not all(
        isinstance(s, dict)
        and all(isinstance(s.get(f), int) for f in ("index", "n_users", "rows"))
        and s.get("file") == _shard_name(s["index"])
        and isinstance(s.get("sha256"), str)
        for s in shards
    ):
        raise RechashError(
            f"{path}: malformed shard list (each shard is {{index, file: part-NNNNN.parquet, n_users, rows, sha256}})"
        )


def verify(out_dir: str | Path) -> dict:
    """Check that a finished output directory is complete and consistent; returns its manifest.

    Every shard ``0 .. n_shards-1`` is present and matches its checksum and row count; the
    shards cover every user of the job; a user's rows lie in one shard, no ``(user, item)``
    pair appears twice and no user has more than ``k`` rows (when the job has a ``k``)."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if not manifest.get("complete"):
        raise RechashError(f"{out_dir}: the job did not finish; re-run it to resume")
    shards = manifest["shards"]
    if [s["index"] for s in shards] != list(range(manifest["n_shards"])):
        raise RechashError(
            f"{out_dir / MANIFEST}: lists shards {[s['index'] for s in shards]}, expected 0..{manifest['n_shards'] - 1}"
        )
    covered = sum(s["n_users"] for s in shards)
    if covered != manifest["n_users"]:
        raise RechashError(f"{out_dir / MANIFEST}: shards cover {covered:,} users, the job has {manifest['n_users']:,}")
    k = manifest["params"].get("k")
    users_seen: list[np.ndarray] = []
    for shard in shards:
        path = out_dir / shard["file"]
        if not path.exists():
            raise RechashError(f"{path}: shard listed in the manifest is missing")
        if sha256(path) != shard["sha256"]:
            raise RechashError(f"{path}: shard is corrupted (checksum mismatch)")
        frame = pq.read_table(path, columns=[C.USER_ID, C.ITEM_ID]).to_pandas()
        if len(frame) != shard["rows"]:
            raise RechashError(f"{path}: {len(frame):,} rows, the manifest says {shard['rows']:,}")
        dup = frame.duplicated([C.USER_ID, C.ITEM_ID]).to_numpy()
        if dup.any():
            row = frame.iloc[int(np.flatnonzero(dup)[0])]
            raise RechashError(f"{path}: (user, item) ({row[C.USER_ID]}, {row[C.ITEM_ID]}) appears twice")
        counts = frame[C.USER_ID].value_counts()
        if len(counts) > shard["n_users"]:
            raise RechashError(f"{path}: rows for {len(counts):,} users, the shard has {shard['n_users']:,}")
        if isinstance(k, int) and len(counts) and counts.iloc[0] > k:
            raise RechashError(f"{path}: user {counts.index[0]} has {counts.iloc[0]} rows, more than k={k}")
        users_seen.append(counts.index.to_numpy())
    every = pd.Series(np.concatenate(users_seen) if users_seen else [])
    if every.duplicated().any():
        raise RechashError(f"{out_dir}: user {every[every.duplicated()].iloc[0]} has rows in two shards")
    if manifest.get("rows") != sum(s["rows"] for s in shards):
        raise RechashError(f"{out_dir / MANIFEST}: total rows {manifest.get('rows')} disagree with its shards")
    return manifest


def _own_state(out_dir: Path, key: str, params: dict) -> list[dict]:
    """Shards of this job already in ``out_dir`` (verified); refuses foreign content and
    another job's output; removes this job's leftovers (temporary files, unlisted shards)."""
    foreign = sorted(p.name for p in out_dir.iterdir() if not (_OWN.fullmatch(p.name) and p.is_file()))
    if foreign:
        raise RechashError(
            f"{out_dir}: holds {foreign[0]!r}; it is not a rechash output directory, refusing to write into it"
        )
    shards: list[dict] = []
    if (out_dir / MANIFEST).exists():
        previous = read_manifest(out_dir)
        if previous["job"] != key:
            raise RechashError(
                f"{out_dir}: holds the output of a different job "
                f"({first_difference(previous['params'], params)}); "
                "choose another output directory or delete it"
            )
        shards = [
            s
            for s in previous["shards"]
            if (out_dir / s["file"]).exists() and sha256(out_dir / s["file"]) == s["sha256"]
        ]
    keep = {MANIFEST} | {s["file"] for s in shards}
    for p in out_dir.iterdir():
        if p.name not in keep:
            p.unlink()
    return shards


def run_sharded(
    users: np.ndarray,
    compute: ChunkFn,
    out_dir: str | Path,
    *,
    params: dict,
    shard_size: int = 50_000,
    progress: bool = True,
) -> dict:
    """Run ``compute`` over ``users`` in shards of ``shard_size`` into ``out_dir``; resumable.

    ``params`` (JSON-able) identify the job together with ``users`` and ``shard_size``;
    re-running with the same ones resumes, different ones are refused naming the first
    difference. Returns the final manifest.
    """
    from tqdm.auto import tqdm

    if isinstance(shard_size, bool) or not isinstance(shard_size, (int, np.integer)) or shard_size <= 0:
        raise RechashError(f"--shard-size must be a positive integer, got {shard_size!r}")
    out_dir = Path(out_dir)
    users = np.asarray(users)
    params = json.loads(
        json.dumps(
            {**params, "users": _users_digest(users), "n_users": int(len(users)), "shard_size": int(shard_size)},
            default=str,
        )
    )
    key = job_key(params)
    n_shards = max(1, -(-len(users) // shard_size))
    manifest = {
        "format_version": FORMAT_VERSION,
        "job": key,
        "params": params,
        "n_users": int(len(users)),
        "shard_size": int(shard_size),
        "n_shards": n_shards,
        "complete": False,
        "shards": [],
    }
    if out_dir.exists() and not out_dir.is_dir():
        raise RechashError(f"{out_dir}: exists and is not a directory; choose another output path")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RechashError(f"{out_dir}: cannot create output directory ({exc.strerror})") from exc

    with exclusive_lock(out_dir):
        manifest["shards"] = _own_state(out_dir, key, params)
        crash_point("job:start")
        done = {s["index"] for s in manifest["shards"]}
        resumed = sum(s["n_users"] for s in manifest["shards"])
        bar = tqdm(
            total=len(users),
            initial=resumed,
            unit="user",
            desc="candidates",
            disable=not progress,
            dynamic_ncols=True,
            smoothing=0.1,
        )
        for index in range(n_shards):
            if index in done:
                continue
            chunk = users[index * shard_size : (index + 1) * shard_size]
            frame = _compute_in_batches(compute, chunk, bar)
            path = out_dir / _shard_name(index)
            _write_table(frame, path)
            manifest["shards"].append(
                {
                    "index": index,
                    "file": path.name,
                    "n_users": int(len(chunk)),
                    "rows": int(len(frame)),
                    "sha256": sha256(path),
                }
            )
            manifest["shards"].sort(key=lambda s: s["index"])
            _write_manifest(out_dir, manifest)
        bar.close()
        manifest["complete"] = True
        manifest["rows"] = sum(s["rows"] for s in manifest["shards"])
        _write_manifest(out_dir, manifest)
    return manifest


def run_single_file(
    users: np.ndarray, compute: ChunkFn, out_file: str | Path, *, chunk_size: int = 50_000, progress: bool = True
) -> int:
    """Run ``compute`` over ``users`` in chunks into one Parquet file (one row group per chunk).

    The file appears under its name only when complete (each run writes its own hidden
    temporary file, so of two concurrent runs the last to finish wins, never a mix).
    Returns the number of rows.
    """
    from tqdm.auto import tqdm

    out_file = Path(out_file)
    users = np.asarray(users)
    rows = 0

    def write(tmp: Path) -> None:
        nonlocal rows
        writer = None
        try:
            with tqdm(
                total=len(users),
                unit="user",
                desc="candidates",
                disable=not progress,
                dynamic_ncols=True,
                smoothing=0.1,
            ) as bar:
                for start in range(0, max(len(users), 1), chunk_size):
                    chunk = users[start : start + chunk_size]
                    table = pa.Table.from_pandas(_compute_in_batches(compute, chunk, bar), preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    rows += table.num_rows
        finally:
            if writer is not None:
                writer.close()

    if not out_file.parent.is_dir():
        raise RechashError(f"{out_file.parent}: output directory does not exist")
    if out_file.is_dir():
        raise RechashError(f"{out_file}: is a directory; choose another output file")
    atomic_write(out_file, write)
    return rows
