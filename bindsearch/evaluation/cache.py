"""An on-disk embedding cache for benchmarks: re-running a metric re-encodes nothing.

One SQLite file per encoder identity (spec, checkpoint fingerprint, dimension), arithmetic (fp32, bf16, fp16) and
bindsearch version (preprocessing may change between versions) under `$BINDSEARCH_HOME/cache/` (default
`~/.cache/bindsearch/cache/`). A file's vector is keyed by its absolute
path, size and modification time, so an edited or replaced file is encoded again; a text's by the text.
Files that fail to decode are not cached: they are tried again next time (a newly installed decoder may read them).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bindsearch import __version__
from bindsearch.media import MediaError
from bindsearch.models.base import EmbeddingModel, EncoderIdentity
from bindsearch.pipeline import encode_files

__all__ = ["EmbeddingCache", "EncodedFiles", "cache_dir", "encode_files_cached", "encode_texts_cached"]

_QUERY_CHUNK = 500  # keys per SELECT: SQLite caps the number of bound parameters


def cache_dir() -> Path:
    """`$BINDSEARCH_HOME/cache`; without BINDSEARCH_HOME, `$XDG_CACHE_HOME/bindsearch/cache` (~/.cache): vectors
    that can be made again belong with caches, while collections go with data (`bindsearch.home`)."""
    home = os.environ.get("BINDSEARCH_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bindsearch" / "cache"


class EmbeddingCache:
    """Vectors of one encoder, per (modality, key): `(d,)` float32 unit rows stored as bytes in SQLite."""

    def __init__(self, identity: EncoderIdentity, directory: str | Path | None = None, *,
                 precision: str = "float32", version: str = __version__):
        self.identity = identity
        described = json.dumps([identity.spec, identity.checkpoint, identity.dim, identity.metric, precision, version])
        digest = hashlib.sha256(described.encode()).hexdigest()[:16]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", identity.spec)[:48]
        directory = Path(directory) if directory is not None else cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{slug}-{digest}.sqlite"
        self._db = sqlite3.connect(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS vectors (modality TEXT, key TEXT, vector BLOB, "
                         "PRIMARY KEY (modality, key))")
        self._db.execute("CREATE TABLE IF NOT EXISTS encoder (identity TEXT)")
        if self._db.execute("SELECT COUNT(*) FROM encoder").fetchone()[0] == 0:
            self._db.execute("INSERT INTO encoder VALUES (?)", (described,))
        self._db.commit()

    @staticmethod
    def file_key(path: str | Path) -> str:
        """'absolute path <tab> size <tab> mtime_ns' of an existing file."""
        path = Path(path).resolve()
        stat = path.stat()
        return f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}"

    def lookup(self, modality: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached `(d,)` float32 vector of each key that has one."""
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _QUERY_CHUNK):
            chunk = unique[start:start + _QUERY_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(f"SELECT key, vector FROM vectors WHERE modality = ? AND key IN ({marks})",
                                    (modality, *chunk))
            for key, blob in rows:
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.size == self.identity.dim:
                    found[key] = vector
        return found

    def store(self, modality: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Save `(n, d)` float32 `vectors` under `keys` (replacing older entries)."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        rows = [(modality, key, vector.tobytes()) for key, vector in zip(keys, vectors, strict=True)]
        self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)", rows)
        self._db.commit()

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class EncodedFiles:
    """Vectors of n files: `(n, d)` float32 unit rows (NaN rows where `ok` is False), and what failed."""

    vectors: np.ndarray
    ok: np.ndarray  # (n,) bool
    failures: list[MediaError] = field(default_factory=list)
    hits: int = 0
    encoded: int = 0


def encode_files_cached(model: EmbeddingModel, modality: str, paths: Sequence[str | Path],
                        cache: EmbeddingCache | None = None, *, batch_size: int | None = None,
                        workers: int | None = None, progress: bool = False) -> EncodedFiles:
    """Embed files through the cache: cached ones are read, the rest decoded in workers, encoded and stored.

    Files with the same bytes get the same vector: one of them is encoded, or its cached vector reused. (A vector
    differs in its last bits with the batch it was encoded in, so two copies encoded apart would not tie exactly,
    and a benchmark's numbers would move with what the cache held.) A file that cannot be decoded is reported in
    `failures` (and its row left NaN); it never stops the run.
    """
    modality = model.check_modality(modality)
    paths = [Path(p) for p in paths]
    vectors = np.full((len(paths), model.dim), np.nan, dtype=np.float32)
    ok = np.zeros(len(paths), dtype=bool)
    failures: list[MediaError] = []
    keys: list[str | None] = []
    for path in paths:
        try:
            keys.append(EmbeddingCache.file_key(path))
        except OSError:
            keys.append(None)
    cached = cache.lookup(modality, [k for k in keys if k is not None]) if cache is not None else {}
    rows_of: dict[Path, list[int]] = {}
    for row, (path, key) in enumerate(zip(paths, keys, strict=True)):
        if key is not None and key in cached:
            vectors[row], ok[row] = cached[key], True
        else:
            rows_of.setdefault(path, []).append(row)
    read = ok.copy()
    copies = _share_copies(paths, vectors, ok, rows_of)
    shared = [row for row in np.flatnonzero(ok & ~read) if keys[row] is not None]
    if cache is not None and shared:  # a copy's vector, under its own key from now on
        cache.store(modality, [keys[row] for row in shared], vectors[shared])
    hits = int(ok.sum())
    todo = list(rows_of)
    unread = 0  # files of `todo` that failed; `failures` also names their copies, which were never encoded
    with _progress_bar(len(todo), f"{modality}: decode + encode", "file", progress) as bar:
        for batch in encode_files(model, modality, todo, batch_size=batch_size, workers=workers):
            batch_vectors = batch.vectors.numpy()
            for path, vector in zip(batch.paths, batch_vectors, strict=True):
                for row in rows_of[path]:
                    vectors[row], ok[row] = vector, True
            unread += len(batch.failures)
            failures.extend(batch.failures)
            failures.extend(MediaError(copy, f.cause) for f in batch.failures for copy in copies.get(Path(f.path), []))
            if cache is not None and batch.paths:  # under the key of each file its vector serves (copies too)
                stored = [(key, i) for i, p in enumerate(batch.paths)
                          for key in dict.fromkeys(keys[row] for row in rows_of[p]) if key is not None]
                if stored:
                    cache.store(modality, [key for key, _ in stored], batch_vectors[[i for _, i in stored]])
            bar.update(len(batch.paths) + len(batch.failures))
    return EncodedFiles(vectors, ok, failures, hits=hits, encoded=len(todo) - unread)


def _share_copies(paths: list[Path], vectors: np.ndarray, ok: np.ndarray, rows_of: dict[Path, list[int]]
                  ) -> dict[Path, list[Path]]:
    """Files to encode (`rows_of`: path -> rows) that hold the bytes of a file read from the cache take its vector;
    of several such files to encode, one is encoded for all (the others' rows join its own). Only files that share a
    size with another are hashed. Returns file encoded -> the copies it stands for (who fail with it)."""
    from bindsearch.files import content_hash

    copies: dict[Path, list[Path]] = {}
    if not rows_of:  # everything read from the cache: nothing to share
        return copies
    sizes: dict[Path, int | None] = {}
    digests: dict[Path, str | None] = {}

    def size(path: Path) -> int | None:
        if path not in sizes:
            try:
                sizes[path] = path.stat().st_size
            except OSError:
                sizes[path] = None
        return sizes[path]

    def digest(path: Path) -> str | None:
        if path not in digests:
            try:
                digests[path] = content_hash(path)
            except OSError:
                digests[path] = None
        return digests[path]

    cached = [int(row) for row in np.flatnonzero(ok)]
    to_encode = Counter(size(path) for path in rows_of)
    held = {size(paths[row]) for row in cached}
    suspects = [p for p in rows_of if size(p) is not None and (to_encode[size(p)] > 1 or size(p) in held)]
    if not suspects:  # every file to encode has a size of its own: no copies (the usual case)
        return copies
    by_digest: dict[str, int | Path] = {}  # bytes -> a row read from the cache, or the file encoded for all
    for row in cached:
        if size(paths[row]) in to_encode and (d := digest(paths[row])) is not None:
            by_digest.setdefault(d, row)
    for path in suspects:
        if (d := digest(path)) is None or (first := by_digest.setdefault(d, path)) == path:
            continue
        rows = rows_of.pop(path)
        if isinstance(first, Path):
            rows_of[first].extend(rows)
            copies.setdefault(first, []).append(path)
        else:
            vectors[rows], ok[rows] = vectors[first], True
    return copies


def encode_texts_cached(model: EmbeddingModel, texts: Sequence[str], cache: EmbeddingCache | None = None, *,
                        batch_size: int | None = None, progress: bool = False) -> tuple[np.ndarray, int, int]:
    """`(n,)` strings -> (`(n, d)` float32 unit rows, cache hits, texts encoded); each distinct text encoded once."""
    unique = list(dict.fromkeys(texts))
    known = cache.lookup("text", unique) if cache is not None else {}
    todo = [t for t in unique if t not in known]
    size = batch_size or model.batch_size.get("text", 256)
    with _progress_bar(len(todo), "text: encode", "text", progress) as bar:
        for start in range(0, len(todo), size):
            chunk = todo[start:start + size]
            encoded = model.encode("text", chunk, batch_size=size).numpy()
            known.update(zip(chunk, encoded, strict=True))
            if cache is not None:
                cache.store("text", chunk, encoded)
            bar.update(len(chunk))
    if not texts:
        return np.empty((0, model.dim), dtype=np.float32), 0, 0
    return np.stack([known[t] for t in texts]).astype(np.float32), len(unique) - len(todo), len(todo)


def _progress_bar(total: int, description: str, unit: str, enabled: bool):
    """A tqdm bar on stderr, or a silent stand-in when `enabled` is False or there is nothing to do."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: decoding on one torch thread needs the program to have one
    return tqdm(total=total, desc=description, unit=unit, file=sys.stderr, leave=False,
                disable=not enabled or total == 0)
