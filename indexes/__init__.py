"""Vector index and catalog layer: FAISS indexes (CPU/GPU) over int64 ids, and the LanceDB catalog they are built from.

Knows nothing of models or media: vectors arrive as (n, dim) float32 arrays, unit length for the "ip" metric.
"""

from indexes.build import build_index, index_path, open_index
from indexes.catalog import Catalog, CatalogError, EncoderInfo, EncoderMismatchError, Item
from indexes.gemm import GemmSearch
from indexes.lock import CollectionLock, LockTimeout
from indexes.vector_index import (
    COMPACT_RATIO,
    EXACT_BELOW,
    IndexFileError,
    IndexMeta,
    VectorIndex,
    choose_kind,
    gpu_available,
    merge_topk,
    read_meta,
    suggested_nlist,
)

__all__ = [
    "COMPACT_RATIO",
    "EXACT_BELOW",
    "Catalog",
    "CatalogError",
    "CollectionLock",
    "EncoderInfo",
    "EncoderMismatchError",
    "GemmSearch",
    "IndexFileError",
    "IndexMeta",
    "Item",
    "LockTimeout",
    "VectorIndex",
    "build_index",
    "choose_kind",
    "gpu_available",
    "index_path",
    "merge_topk",
    "open_index",
    "read_meta",
    "suggested_nlist",
]
