"""FAISS index kinds: which one `kind="auto"` picks for n vectors, building one from its factory string, and what
FAISS's index types can do (remove ids, run on a GPU). The `VectorIndex` of `indexes.vector_index` is made of them."""

from __future__ import annotations

import math
import os

import numpy as np

from indexes._faiss import faiss

__all__ = ["EF_CONSTRUCTION", "EXACT_BELOW", "METRICS", "can_remove", "choose_kind", "default_nprobe", "find_hnsw",
           "gpu_available", "new_faiss_index", "pq_needs_float16_tables", "resolve_device", "stored_ids",
           "suggested_nlist"]

EXACT_BELOW = 50_000
"""`choose_kind` searches exactly below this many vectors: one query scans 50k x 768 in ~30 ms on one core."""

EF_CONSTRUCTION = 80
"""Candidates per insertion while an HNSW graph is built (FAISS's default is 40): about 1.3x the build time, and on
near-duplicate windows recall@10 0.46 -> 0.74 at efSearch 128."""

_HNSW_LINK_BYTES = 2 * 32 * 4 + 16  # HNSW32: 64 int32 neighbours on the base level, plus the upper levels
METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def choose_kind(n: int, dim: int, memory_budget: int | None = None, gpu: bool = False) -> str:
    """The FAISS factory string `kind="auto"` uses for n vectors of dimension dim.

    Rule: exact "Flat" below `EXACT_BELOW` vectors, and on a GPU while the vectors fit `memory_budget` bytes
    (default: half the machine's RAM): brute force there beats any index. Above, on CPU, "HNSW32" while its
    vectors and graph fit the budget, else "IVF{nlist},PQ{dim/8}" (8 dims a byte, 32x smaller). HNSW rather
    than IVF-Flat: on the clustered benchmark (benchmarks/README.md) it reaches a higher recall at the same
    speed, and answers one query in ~2 ms where a flat scan of 1M vectors takes ~0.5 s. It builds slowly
    (minutes per 100k vectors on two cores), but `open_index` catches up on changes instead of rebuilding.
    """
    budget = _default_memory_budget() if memory_budget is None else memory_budget
    if n < EXACT_BELOW or (gpu and n * dim * 4 <= budget):
        return "Flat"
    if n * (dim * 4 + _HNSW_LINK_BYTES) <= budget:
        return "HNSW32"
    return f"IVF{suggested_nlist(n)},PQ{_pq_bytes(dim)}"


def new_faiss_index(dim: int, kind: str, metric: str) -> faiss.Index:
    try:
        index = faiss.index_factory(dim, kind, METRICS[metric])
    except RuntimeError as error:
        detail = str(error).strip().splitlines()[-1]
        raise ValueError(
            f"unknown index kind {kind!r} ({detail}); use 'flat', 'auto' or a FAISS factory string "
            "such as 'IVF1024,Flat', 'HNSW32' or 'IVF4096,PQ64'"
        ) from None
    _skip_polysemous_training(index)
    hnsw = find_hnsw(index)
    if hnsw is not None:
        hnsw.hnsw.efConstruction = EF_CONSTRUCTION
    if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        return index
    # IVF kinds store ids in their inverted lists; everything else gets an id map.
    if faiss.try_extract_index_ivf(index) is not None and isinstance(index, faiss.IndexIVF | faiss.IndexPreTransform):
        return index
    return faiss.IndexIDMap2(index)


def _skip_polysemous_training(index: faiss.Index) -> None:
    """The factory turns on polysemous training for PQ kinds: minutes of annealing that only Hamming search uses."""
    while index is not None:
        index = faiss.downcast_index(index)
        if hasattr(index, "do_polysemous_training"):
            index.do_polysemous_training = False
        index = getattr(index, "index", None)


def can_remove(index: faiss.Index) -> bool:
    try:
        index.remove_ids(faiss.IDSelectorBatch(np.empty(0, np.int64)))
    except RuntimeError:  # FAISS raises "remove_ids not implemented for this type of index"
        return False
    return True


def stored_ids(index: faiss.Index) -> np.ndarray:
    if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    chunks = [np.empty(0, np.int64)]
    for list_no in range(ivf.nlist):
        size = lists.list_size(list_no)
        if size:
            chunks.append(faiss.rev_swig_ptr(lists.get_ids(list_no), size).copy())
    return np.concatenate(chunks).astype(np.int64)


def find_hnsw(index: faiss.Index) -> faiss.IndexHNSW | None:
    while True:
        index = faiss.downcast_index(index)
        if isinstance(index, faiss.IndexHNSW):
            return index
        if isinstance(index, faiss.IndexIDMap | faiss.IndexIDMap2 | faiss.IndexPreTransform):
            index = index.index
        else:
            return None


def gpu_available(device: str = "auto") -> bool:
    """Whether an index asked to run on device ("auto", "cpu", "cuda") may be placed on a GPU."""
    return device in ("auto", "cuda") and hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0


def resolve_device(device: str, kind: str, gpu_capable: bool) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device == "cuda" and gpus == 0:
        raise RuntimeError(
            "device='cuda' but FAISS sees no GPU (faiss-cpu is installed, or no CUDA device is visible); "
            "use device='auto' or 'cpu', or install the gpu extra on a CUDA machine"
        )
    if device == "cpu" or gpus == 0:
        return "cpu"
    if not gpu_capable:
        if device == "cuda":
            raise ValueError(f"FAISS has no GPU version of {kind!r}; use an IVF or Flat kind, or device='cpu'")
        return "cpu"
    return "cuda"


def pq_needs_float16_tables(index: faiss.Index) -> bool:
    ivf = faiss.try_extract_index_ivf(index)
    pq = getattr(faiss.downcast_index(ivf), "pq", None) if ivf is not None else None
    return pq is not None and pq.M > 48  # GPU IVFPQ keeps lookup tables in shared memory: float16 above 48 bytes


def default_nprobe(ivf: faiss.IndexIVF | None) -> int:
    """1/16 of the lists: recall ~0.95+ on clustered embeddings at 1/16 of a flat scan (IVF-Flat; PQ codes rank
    coarser, and `search_exact` rescores their candidates)."""
    return max(1, ivf.nlist // 16) if ivf is not None else 1


def suggested_nlist(n: int) -> int:
    """IVF lists for n vectors: the power of two nearest 4*sqrt(n), with at least 39 training vectors per list."""
    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    while nlist > 1 and 39 * nlist > n:
        nlist //= 2
    return min(nlist, 65536)


def _pq_bytes(dim: int) -> int:
    target = max(1, dim // 8)
    return max(m for m in range(1, target + 1) if dim % m == 0)


def _default_memory_budget() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


