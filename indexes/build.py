"""FAISS indexes built from the catalog's vectors in bounded batches, cached on disk, kept current with it.

One index per modality (plus, when asked, one over everything): "search only videos" is then an exact
restriction instead of a post-filter on a shared ANN index, which loses recall when a modality is rare
(a 1% modality needs ~100x over-fetch); each modality also gets the kind its own size calls for, and
searching several modalities is a `merge_topk` of their results, since all vectors share one space.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from indexes.catalog import Catalog
from indexes.kinds import choose_kind, gpu_available
from indexes.vector_index import EF_SEARCH, IndexFileError, VectorIndex, read_meta

__all__ = ["RESCORE_FACTOR", "build_index", "drop_stale_caches", "index_path", "open_index", "search_exact",
           "subset_index"]

_METRIC_OF_ENCODER = {"cosine": "ip", "ip": "ip", "dot": "ip", "l2": "l2"}

RESCORE_FACTOR = 16
"""Candidates per hit asked of an index that stores lossy codes (PQ, SQ), rescored with the catalog's vectors. On
100k clustered 128-d vectors IVF1024,PQ16 ranked by its codes found 0.26 of the true top 10, its scores up to 0.08
off the cosine; 16 candidates a hit, rescored (FAISS's own refinement, measured by hand), found 0.92. The test
(`tests/test_indexes_build.py`, 4,000 x 24-d, IVF16,PQ4x4) goes from 0.11 to 1.0."""
_CATCH_UP_BATCH = 8192
_KIND_SLACK = 0.1  # kind="auto" keeps a cached index's kind while the collection is within 10 % of choosing it


def build_index(
    catalog: Catalog,
    modality: str | None = None,
    kind: str = "auto",
    *,
    device: str = "auto",
    batch_size: int = 65_536,
    train_size: int | None = None,
    memory_budget: int | None = None,
    nprobe: int | None = None,
    ef_search: int = EF_SEARCH,
    seed: int = 0,
) -> VectorIndex:
    """A VectorIndex over the catalog's vectors (of one modality), tagged with the catalog's fingerprint.

    Reads a pinned version in batches of batch_size, so peak memory is the index plus one batch plus the
    training sample: for kinds that train, a uniform random sample of train_size vectors (default: 40 per
    IVF list, at least 10,000; FAISS itself caps k-means at 256 per centroid).
    """
    snapshot = catalog.pinned()
    n = snapshot.count(modality)
    if kind == "auto":
        kind = choose_kind(n, snapshot.dim, memory_budget, gpu=gpu_available(device))
    index = VectorIndex(snapshot.dim, kind, metric=_metric(snapshot), device=device, nprobe=nprobe,
                        ef_search=ef_search)
    index.fingerprint = snapshot.fingerprint()
    if n and not index.is_trained:
        index.train(_sample(snapshot, modality, n, train_size or _train_size(index), batch_size, seed))
    for ids, vectors in snapshot.iter_vectors(modality, batch_size):
        index.add(ids, vectors)
    return index


def subset_index(catalog: Catalog, modality: str, under: list[str] | tuple[str, ...]) -> VectorIndex:
    """An exact CPU index over one modality's rows at or below the absolute paths `under`, read in one query: for
    searches restricted to a few folders, where they hold few enough rows to score them all."""
    snapshot = catalog.pinned()
    index = VectorIndex(snapshot.dim, "flat", metric=_metric(snapshot), device="cpu")
    index.fingerprint = snapshot.fingerprint()
    index.add(*snapshot.vectors_under(under, modality))
    return index


def _metric(catalog: Catalog) -> str:
    metric = _METRIC_OF_ENCODER.get(catalog.encoder.metric)
    if metric is None:
        raise ValueError(f"encoder metric {catalog.encoder.metric!r} is not one of {sorted(_METRIC_OF_ENCODER)}")
    return metric


def index_path(catalog: Catalog, modality: str | None = None) -> Path:
    """Where the cached index of one modality lives: <collection>/indexes/<modality or 'all'>.faiss."""
    return catalog.directory / "indexes" / f"{modality or 'all'}.faiss"


def drop_stale_caches(catalog: Catalog) -> None:
    """Delete the cached indexes of modalities the catalog no longer holds (as large as their vectors were)."""
    held = {index_path(catalog, m) for m in catalog.modalities()} | {index_path(catalog)}
    for path in (catalog.directory / "indexes").glob("*.faiss"):
        if path not in held:
            path.unlink(missing_ok=True)
            path.with_name(path.name + ".json").unlink(missing_ok=True)


def open_index(
    catalog: Catalog,
    modality: str | None = None,
    kind: str = "auto",
    *,
    device: str = "auto",
    path: str | os.PathLike | None = None,
    max_change: float = 0.2,
    **build_options: Any,
) -> VectorIndex:
    """The cached index of one modality, current with the catalog; saved whenever it had to change.

    Loaded as is when its fingerprint matches. When the catalog moved on by less than max_change of the
    index (rows added, rewritten or deleted since the version it was built from), the cache catches up in
    place: the changed rows are removed and re-added, so IVF lists keep their centroids and HNSW graphs
    grow. Anything else (another kind asked for, "auto" now choosing another kind for a collection more than 10 %
    past its threshold, a damaged cache, a big change) rebuilds it with `build_index`.
    """
    snapshot = catalog.pinned()
    path = Path(path) if path is not None else index_path(snapshot, modality)
    kind = "Flat" if kind == "flat" else kind
    if kind == "auto":
        kind = _auto_kind(snapshot.count(modality), snapshot.dim, path, build_options.get("memory_budget"), device)
    index = _load_cache(path, device, kind, snapshot)
    if index is not None:  # searched as asked now, not as when it was saved (caches of 0.3.0 took efSearch 128)
        index.ef_search = build_options.get("ef_search", EF_SEARCH)
    current = index is not None and index.fingerprint == snapshot.fingerprint()
    if current and not index.upgraded:
        return index
    if index is None or not _catch_up(snapshot, modality, index, max_change):
        index = build_index(snapshot, modality, kind, device=device, **build_options)
    index.fingerprint = snapshot.fingerprint()
    try:
        index.save(path)
    except (OSError, RuntimeError) as error:  # RuntimeError: FAISS's own write failure
        if current and index.upgraded:  # saved again only in a newer format: the cache serves as it is
            return index
        # A read-only copy of a collection, a full disk: the search goes on from memory, the cache as it was.
        why = error.strerror if isinstance(error, OSError) and error.strerror else str(error).strip().splitlines()[-1]
        warnings.warn(f"the search index cache {path} could not be saved ({why}); searching without it (each new "
                      "process builds it again) until the collection's folder can be written", stacklevel=2)
    return index


def _auto_kind(n: int, dim: int, path: Path, budget: int | None, device: str) -> str:
    """What kind="auto" chooses for n vectors, or the cached index's kind while n is within `_KIND_SLACK` of a size
    that chooses it: a collection going back and forth over a threshold (50,000 rows: exact or HNSW) would rebuild
    its index each time it crossed."""
    gpu = gpu_available(device)
    chosen = choose_kind(n, dim, budget, gpu=gpu)
    try:
        meta = read_meta(path)
    except IndexFileError:
        return chosen
    if meta is None or meta.kind == chosen:
        return chosen
    near = {choose_kind(round(n * (1 + slack)), dim, budget, gpu=gpu) for slack in (-_KIND_SLACK, _KIND_SLACK)}
    return meta.kind if meta.kind in near else chosen


def _load_cache(path: Path, device: str, kind: str, catalog: Catalog) -> VectorIndex | None:
    """The cached index when it is readable, of this kind, and from this collection and encoder."""
    try:
        meta = read_meta(path)
        if meta is None or meta.kind != kind or catalog.version_of(meta.fingerprint) is None:
            return None
        return VectorIndex.load(path, device=device)
    except (IndexFileError, RuntimeError):  # a half-written or damaged cache: rebuilt by the caller
        return None


def _catch_up(catalog: Catalog, modality: str | None, index: VectorIndex, max_change: float) -> bool:
    """Apply the rows written or deleted since the index's version; False when a rebuild is the better deal."""
    since = catalog.version_of(index.fingerprint)
    ids, written_in = catalog.row_versions(modality)
    gone = np.setdiff1d(index.ids(), ids, assume_unique=True)
    changed = ids[written_in > since]
    if not index.is_trained or len(gone) + len(changed) > max_change * max(len(index), 1):
        return False
    index.remove(np.union1d(gone, changed))
    for start in range(0, len(changed), _CATCH_UP_BATCH):
        chunk = changed[start : start + _CATCH_UP_BATCH]
        index.add(chunk, catalog.get_vectors(chunk))
    return len(index) == len(ids)  # anything else means the cache missed something: rebuild


def _train_size(index: VectorIndex) -> int:
    return max(10_000, 40 * index.nlist)


def _sample(catalog: Catalog, modality: str | None, n: int, size: int, batch_size: int, seed: int) -> np.ndarray:
    """size rows drawn uniformly without replacement, gathered in one streaming pass: (size, dim) float32."""
    size = min(size, n)
    chosen = np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
    out = np.empty((size, catalog.dim), np.float32)
    filled = start = 0
    for _, vectors in catalog.iter_vectors(modality, batch_size):
        stop = start + len(vectors)
        lo, hi = np.searchsorted(chosen, [start, stop])
        out[filled : filled + hi - lo] = vectors[chosen[lo:hi] - start]
        filled += hi - lo
        start = stop
    return out[:filled]


def search_exact(catalog: Catalog, index: VectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """`index.search(queries, k)` with exact scores: an index of lossy codes (`VectorIndex.lossy`) is asked for
    k x `RESCORE_FACTOR` candidates, which are rescored with the catalog's vectors. scores (n, k) float32, ids (n, k)
    int64, best first, padded with -1."""
    if not index.lossy:
        return index.search(queries, k)
    queries = np.atleast_2d(np.asarray(queries, np.float32))
    _, candidates = index.search(queries, k * RESCORE_FACTOR)
    known = np.unique(candidates[candidates >= 0])
    vectors = catalog.get_vectors(known) if len(known) else np.empty((0, index.dim), np.float32)
    ip = index.metric == "ip"
    scores = np.full((len(queries), k), -np.inf if ip else np.inf, np.float32)
    ids = np.full((len(queries), k), -1, np.int64)
    for row, (query, found) in enumerate(zip(queries, candidates, strict=True)):
        found = found[found >= 0]
        rows = vectors[np.searchsorted(known, found)]
        exact = rows @ query if ip else np.sum((rows - query) ** 2, axis=1)
        order = np.argsort(-exact if ip else exact, kind="stable")[:k]
        scores[row, : len(order)], ids[row, : len(order)] = exact[order], found[order]
    return scores, ids
