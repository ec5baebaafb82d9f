"""Vector index and catalog layer: FAISS indexes (CPU/GPU) over int64 ids, and the LanceDB catalog they are built from.

Knows nothing of models or media: vectors arrive as (n, dim) float32 arrays, unit length for the "ip" metric.
Names are imported on first use, so `from indexes.gemm import GemmSearch` needs neither FAISS nor LanceDB.
"""

from importlib import import_module

from indexes.cpu import pick_openblas_core

pick_openblas_core()  # before anything imports FAISS, whose OpenBLAS reads it once (indexes/cpu.py)


class FaissNotInstalled(ImportError):
    """No FAISS wheel in this environment (`indexes._faiss`); defined here, in a module that stays imported."""


_EXPORTS = {
    "build_index": "indexes.build",
    "drop_stale_caches": "indexes.build",
    "index_path": "indexes.build",
    "open_index": "indexes.build",
    "search_exact": "indexes.build",
    "RESCORE_FACTOR": "indexes.build",
    "subset_index": "indexes.build",
    "Catalog": "indexes.catalog",
    "CatalogError": "indexes.catalog",
    "EncoderInfo": "indexes.catalog",
    "EncoderMismatchError": "indexes.catalog",
    "Item": "indexes.catalog",
    "GemmSearch": "indexes.gemm",
    "CollectionLock": "indexes.lock",
    "LockTimeout": "indexes.lock",
    **dict.fromkeys(("EXACT_BELOW", "choose_kind", "gpu_available", "suggested_nlist"), "indexes.kinds"),
    **dict.fromkeys(("COMPACT_RATIO", "IndexFileError", "IndexMeta", "VectorIndex", "merge_topk", "read_meta"),
                    "indexes.vector_index"),
}

__all__ = sorted([*_EXPORTS, "FaissNotInstalled"])


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'indexes' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
