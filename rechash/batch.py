"""Offline jobs over all users: chunked, sharded Parquet output, atomic, resumable.

Layout of a sharded output directory (``pandas.read_parquet(dir)`` and
``pyarrow.dataset`` read it as one table; names starting with ``_`` or ``.`` are
ignored by both)::

    out/part-00000.parquet ... part-NNNNN.parquet   one shard per chunk of users
    out/_manifest.json                               job parameters, shard rows + sha256

Crash safety: each shard is written to a hidden temporary file, flushed to disk and
renamed into place, then the manifest is rewritten the same way; a shard is never
half-written under its final name. Re-running the same job skips every shard the
manifest lists whose file still matches its checksum, so an interrupted run resumes and
ends byte-identical to an uninterrupted one. A directory written by a different job
(other parameters, model or users) is refused rather than mixed.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from rechash.artifacts import sha256
from rechash.errors import RechashError

MANIFEST = "_manifest.json"
FORMAT_VERSION = 1

#: A pure function from a chunk of users to their output table.
ChunkFn = Callable[[np.ndarray], pd.DataFrame]


def job_key(params: dict, users: np.ndarray) -> str:
    """Identity of a job: its JSON parameters and the exact list of users, hashed."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    digest.update(np.asarray(users).astype(str).astype("U").tobytes())
    return digest.hexdigest()


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a hidden temporary file in the same directory, fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RechashError(f"{path}: could not write ({exc.strerror or exc})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_table(frame: pd.DataFrame, path: Path) -> None:
    _atomic_write(path, lambda tmp: pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp))


def _write_manifest(out_dir: Path, manifest: dict) -> None:
    text = json.dumps(manifest, indent=2, sort_keys=True, default=str)
    _atomic_write(out_dir / MANIFEST, lambda tmp: tmp.write_text(text))


def read_manifest(out_dir: str | Path) -> dict:
    """The manifest of a sharded output directory (raises naming the path when unreadable)."""
    path = Path(out_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise RechashError(f"{path}: no manifest; not a rechash output directory") from None
    except (OSError, ValueError) as exc:
        raise RechashError(f"{path}: unreadable manifest ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RechashError(f"{path}: manifest format {manifest.get('format_version')!r}, expected {FORMAT_VERSION}")
    return manifest


def verify(out_dir: str | Path) -> dict:
    """Check that a finished output directory is complete and every shard matches its checksum."""
    out_dir = Path(out_dir)
    manifest = read_manifest(out_dir)
    if not manifest.get("complete"):
        raise RechashError(f"{out_dir}: the job did not finish; re-run it to resume")
    for shard in manifest["shards"]:
        path = out_dir / shard["file"]
        if not path.exists():
            raise RechashError(f"{path}: shard listed in the manifest is missing")
        if sha256(path) != shard["sha256"]:
            raise RechashError(f"{path}: shard is corrupted (checksum mismatch)")
    return manifest


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

    ``params`` (JSON-able) identify the job together with ``users``; re-running with the
    same ones resumes, different ones are refused. Returns the final manifest.
    """
    from tqdm.auto import tqdm

    if shard_size <= 0:
        raise RechashError(f"shard_size must be positive, got {shard_size}")
    out_dir = Path(out_dir)
    users = np.asarray(users)
    key = job_key(params, users)
    n_shards = max(1, -(-len(users) // shard_size))
    manifest = {"format_version": FORMAT_VERSION, "job": key, "params": params,
                "n_users": int(len(users)), "shard_size": shard_size, "n_shards": n_shards,
                "complete": False, "shards": []}
    if (out_dir / MANIFEST).exists():
        previous = read_manifest(out_dir)
        if previous.get("job") != key:
            raise RechashError(f"{out_dir}: holds the output of a different job (other model, parameters or users); "
                               "choose another output directory or delete it")
        manifest["shards"] = [s for s in previous["shards"]
                              if (out_dir / s["file"]).exists() and sha256(out_dir / s["file"]) == s["sha256"]]
    elif out_dir.exists() and any(p.name != MANIFEST for p in out_dir.iterdir()):
        raise RechashError(f"{out_dir}: exists and is not a rechash output directory; refusing to write into it")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RechashError(f"{out_dir}: cannot create output directory ({exc.strerror})") from exc

    done = {s["index"] for s in manifest["shards"]}
    bar = tqdm(total=len(users), unit="user", desc="candidates", disable=not progress)
    bar.update(sum(s["n_users"] for s in manifest["shards"]))
    for index in range(n_shards):
        if index in done:
            continue
        chunk = users[index * shard_size : (index + 1) * shard_size]
        frame = compute(chunk)
        path = out_dir / f"part-{index:05d}.parquet"
        _write_table(frame, path)
        manifest["shards"].append({"index": index, "file": path.name, "n_users": int(len(chunk)),
                                   "rows": int(len(frame)), "sha256": sha256(path)})
        manifest["shards"].sort(key=lambda s: s["index"])
        _write_manifest(out_dir, manifest)
        bar.update(len(chunk))
    bar.close()
    manifest["complete"] = True
    manifest["rows"] = sum(s["rows"] for s in manifest["shards"])
    _write_manifest(out_dir, manifest)
    return manifest


def run_single_file(
    users: np.ndarray, compute: ChunkFn, out_file: str | Path, *, chunk_size: int = 50_000, progress: bool = True
) -> int:
    """Run ``compute`` over ``users`` in chunks into one Parquet file (one row group per chunk).

    The file appears under its name only when complete. Returns the number of rows.
    """
    from tqdm.auto import tqdm

    out_file = Path(out_file)
    users = np.asarray(users)
    rows = 0

    def write(tmp: Path) -> None:
        nonlocal rows
        writer = None
        try:
            with tqdm(total=len(users), unit="user", desc="candidates", disable=not progress) as bar:
                for start in range(0, max(len(users), 1), chunk_size):
                    chunk = users[start : start + chunk_size]
                    table = pa.Table.from_pandas(compute(chunk), preserve_index=False)
                    writer = writer or pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    rows += table.num_rows
                    bar.update(len(chunk))
        finally:
            if writer is not None:
                writer.close()

    if not out_file.parent.exists():
        raise RechashError(f"{out_file.parent}: output directory does not exist")
    _atomic_write(out_file, write)
    return rows
