"""FAISS indexes built from the catalog's vectors in bounded batches, and cached on disk against its version.

One index per modality (plus, when asked, one over everything): "search only videos" is then an exact
restriction instead of a post-filter on a shared ANN index, which loses recall when a modality is rare
(a 1% modality needs ~100x over-fetch); each modality also gets the kind its own size calls for, and
searching several modalities is a `merge_topk` of their results, since all vectors share one space.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from indexes.catalog import Catalog
from indexes.vector_index import IndexFileError, VectorIndex, choose_kind, read_meta

__all__ = ["build_index", "index_path", "open_index"]

_METRIC_OF_ENCODER = {"cosine": "ip", "ip": "ip", "dot": "ip", "l2": "l2"}


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
    ef_search: int = 64,
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
        kind = choose_kind(n, snapshot.dim, memory_budget)
    metric = _METRIC_OF_ENCODER.get(snapshot.encoder.metric)
    if metric is None:
        raise ValueError(f"encoder metric {snapshot.encoder.metric!r} is not one of {sorted(_METRIC_OF_ENCODER)}")
    index = VectorIndex(snapshot.dim, kind, metric=metric, device=device, nprobe=nprobe, ef_search=ef_search)
    index.fingerprint = snapshot.fingerprint()
    if n and not index.is_trained:
        index.train(_sample(snapshot, modality, n, train_size or _train_size(index), batch_size, seed))
    for ids, vectors in snapshot.iter_vectors(modality, batch_size):
        index.add(ids, vectors)
    return index


def index_path(catalog: Catalog, modality: str | None = None) -> Path:
    """Where the cached index of one modality lives: <collection>/indexes/<modality or 'all'>.faiss."""
    return catalog.directory / "indexes" / f"{modality or 'all'}.faiss"


def open_index(
    catalog: Catalog,
    modality: str | None = None,
    kind: str = "auto",
    *,
    device: str = "auto",
    path: str | os.PathLike | None = None,
    **build_options: object,
) -> VectorIndex:
    """The cached index if its fingerprint (and kind, unless "auto") matches the catalog, else a new one, saved."""
    path = Path(path) if path is not None else index_path(catalog, modality)
    fingerprint = catalog.fingerprint()
    try:
        meta = read_meta(path)
    except IndexFileError:
        meta = None
    if meta is not None and meta.fingerprint == fingerprint and kind in ("auto", meta.kind):
        try:
            return VectorIndex.load(path, device=device)
        except IndexFileError:
            pass  # a half-written cache: rebuild it below
    index = build_index(catalog, modality, kind, device=device, **build_options)
    index.save(path)
    return index


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
