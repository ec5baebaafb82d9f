"""A FAISS index over int64 ids: exact or approximate inner-product search, on GPU when asked and available.

Kinds are named by FAISS factory strings ("Flat", "IVF1024,Flat", "HNSW32", "IVF4096,PQ64", "OPQ64,IVF4096,PQ64"),
plus "flat" (exact) and "auto" (chosen by `choose_kind`). The CPU index is the master copy: every add and
remove lands there, and a GPU replica, when there is one, is refreshed before the next search. Kinds that
FAISS cannot remove from (graph kinds such as HNSW) remember removed ids as tombstones, filtered out during
the search by an ID selector on internal positions (so a removed id may come back at once), and are rebuilt
without them once tombstones pass `COMPACT_RATIO` of the stored vectors. Graph kinds also store each distinct
vector once, whatever the number of ids that bring it, since copies tangle a graph (`indexes.copies`).
"""

from __future__ import annotations

import glob
import json
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexes._faiss import faiss
from indexes.copies import CodeTable, Copies, distinct_rows
from indexes.kinds import (
    METRICS,
    can_remove,
    choose_kind,
    default_nprobe,
    find_hnsw,
    gpu_available,
    new_faiss_index,
    pq_needs_float16_tables,
    resolve_device,
    stored_ids,
)

if TYPE_CHECKING:
    from indexes.gemm import GemmSearch

__all__ = [
    "COMPACT_RATIO",
    "EF_SEARCH",
    "GEMM_BATCH",
    "IndexFileError",
    "IndexMeta",
    "VectorIndex",
    "merge_topk",
    "read_meta",
]

GEMM_BATCH = 32
"""Batched exact searches with `precision="bf16"` use `GemmSearch` from this many queries on."""

COMPACT_RATIO = 0.1
"""Tombstoned kinds are rebuilt once removed ids exceed this fraction of the stored vectors."""

EF_SEARCH = 256
"""HNSW candidates per query (raised to k when k is larger). The windows of one long video lie close together
(cosine ~0.97), and a graph search with few candidates stays among them: on 30k rows, 100 windows a file, random
queries reach recall@10 0.74 at 128 and 0.89 at 256 with `EF_CONSTRUCTION` (`benchmarks/README.md`, "HNSW
defaults")."""

_FORMAT = 2  # 2: the sidecar lists ids sharing a stored vector ("copies"); older versions rebuild such an index
_READS = (1, 2)
_GPU_MAX_K = 2048  # FAISS GPU kernels select (and IVF probes) at most 2048: beyond, the CPU master searches.
_LOSSY_CODES = ("PQ", "SQ", "LSH", "RaBitQ")  # in FAISS factory strings: encodings that do not keep the vectors


class IndexFileError(ValueError):
    """A saved index is missing, unreadable or does not match its metadata sidecar."""


@dataclass(frozen=True)
class IndexMeta:
    """What the json sidecar of a saved index records."""

    kind: str
    dim: int
    metric: str
    count: int
    fingerprint: str
    nprobe: int
    ef_search: int


def merge_topk(results: list[tuple[np.ndarray, np.ndarray]], k: int, metric: str = "ip"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Best k of several (scores (n, k_i) float32, ids (n, k_i) int64) results over the same n queries: the
    highest inner products, or with `metric="l2"` the smallest distances. Missing places are (worst score, -1).

    Ties go by id, lowest first, whatever order the results came in: FAISS hands equal scores back in reverse
    order, so copies of one file would come back in another order at another k (a second page reshuffled)."""
    if not results:
        raise ValueError("merge_topk needs at least one result")
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
    scores = np.concatenate([s for s, _ in results], axis=1)
    ids = np.concatenate([i for _, i in results], axis=1)
    if scores.shape[1] < k:
        pad = k - scores.shape[1]
        scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf if metric == "ip" else np.inf)
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
    order = np.lexsort((ids, -scores if metric == "ip" else scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)


def read_meta(path: str | os.PathLike) -> IndexMeta | None:
    """The sidecar of the index saved at path, or None when there is none (a cheap staleness check)."""
    raw = _read_sidecar(Path(path))
    if raw is None:
        return None
    return IndexMeta(**{name: raw[name] for name in IndexMeta.__dataclass_fields__})


class VectorIndex:
    """Vectors (n, dim) float32 under int64 ids >= 0; `search` returns (n, k) scores and ids padded with -1."""

    def __init__(
        self,
        dim: int,
        kind: str = "flat",
        *,
        metric: str = "ip",
        device: str = "auto",
        expected_size: int | None = None,
        memory_budget: int | None = None,
        nprobe: int | None = None,
        ef_search: int = EF_SEARCH,
        precision: str = "fp32",
    ) -> None:
        """An empty index; kind="auto" needs `expected_size` (the collection size) to choose.

        `precision="bf16"` makes exact ("Flat") CPU searches of `GEMM_BATCH` or more queries one bf16 matrix
        product with fp32 rescoring (`indexes.gemm.GemmSearch`), 1.7x FAISS's fp32 search on a CPU with
        AVX512-BF16, for half the vectors' memory again (on one without bf16 units about 0.2x, and a warning says
        so); "fp32" (the default) leaves every search to FAISS.
        """
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer):  # FAISS's SWIG said "wrong number or type"
            raise TypeError(f"dim takes a whole number, not {type(dim).__name__}")
        if dim < 1:
            raise ValueError(f"dim must be positive, got {dim}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
        if kind == "auto":
            if expected_size is None:
                raise ValueError("kind='auto' chooses by collection size: pass expected_size")
            kind = choose_kind(expected_size, dim, memory_budget, gpu=gpu_available(device))
        elif kind == "flat":
            kind = "Flat"
        cpu = new_faiss_index(dim, kind, metric)
        ivf = faiss.try_extract_index_ivf(cpu)
        self._setup(cpu, kind, metric, device, nprobe or default_nprobe(ivf), ef_search)
        self.precision = precision
        self._live = np.empty(0, np.int64)  # sorted ids that searches can return
        self._dead = np.empty(0, np.int64)  # sorted internal positions of tombstoned vectors

    def _setup(self, cpu: faiss.Index, kind: str, metric: str, device: str, nprobe: int, ef_search: int) -> None:
        self.dim = cpu.d
        self.kind = kind
        self.metric = metric
        self.fingerprint = ""
        self._cpu = cpu
        self._removable = can_remove(cpu)
        self._gpu: faiss.Index | None = None
        self._gpu_resources = None
        self._gpu_stale = True
        self._selector: tuple[faiss.IDSelector, faiss.IDSelector] | None = None
        self._asked_device = device
        self.device = resolve_device(device, kind, gpu_capable=self._removable)
        self._gemm: GemmSearch | None = None
        self._copies = Copies()
        self._codes: CodeTable | None = None  # the stored codes by content, built at the first add of a graph kind
        self.upgraded = False  # `load` changed it from what the file holds (copies merged): worth saving again
        self.nprobe = nprobe
        self.ef_search = ef_search

    @property
    def nprobe(self) -> int:
        """IVF lists visited per query (ignored by non-IVF kinds): more is slower and more exact."""
        return self._nprobe

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        self._nprobe = _at_least_one(value, "nprobe")  # 0 failed in FAISS's C++ at the next search
        ivf = faiss.try_extract_index_ivf(self._cpu)
        if ivf is not None:
            ivf.nprobe = self._nprobe
        if self._gpu is not None and faiss.try_extract_index_ivf(self._gpu) is not None:
            # FAISS's GPU IVF probes at most 2048 lists; beyond, `_searchable` searches the CPU master.
            faiss.GpuParameterSpace().set_index_parameter(self._gpu, "nprobe", min(self._nprobe, _GPU_MAX_K))

    @property
    def ef_search(self) -> int:
        """HNSW candidate-list size per query (ignored by non-HNSW kinds); raised to k when k is larger."""
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = _at_least_one(value, "ef_search")
        hnsw = find_hnsw(self._cpu)
        if hnsw is not None:
            hnsw.hnsw.efSearch = self._ef_search

    @property
    def precision(self) -> str:
        """Arithmetic of batched exact searches on the CPU: "fp32" (FAISS) or "bf16" (`GemmSearch`)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {value!r}")
        self._precision = value
        self._gemm = None

    @property
    def lossy(self) -> bool:
        """Whether the index stores compressed codes (PQ, SQ), so its scores only approximate the vectors' own:
        `indexes.search_exact` rescores its candidates."""
        return any(code in self.kind for code in _LOSSY_CODES)

    @property
    def nlist(self) -> int:
        """Number of IVF lists; 0 for kinds without them."""
        ivf = faiss.try_extract_index_ivf(self._cpu)
        return ivf.nlist if ivf is not None else 0

    @property
    def is_trained(self) -> bool:
        """False for IVF/PQ kinds until `train` (or the first `add`) has seen vectors."""
        return bool(self._cpu.is_trained)

    @property
    def tombstones(self) -> int:
        """Removed vectors still stored (kinds FAISS cannot remove from), filtered out of searches until `compact`."""
        return len(self._dead)

    def __len__(self) -> int:
        """Number of live (searchable) vectors."""
        return len(self._live)

    def ids(self) -> np.ndarray:
        """Live ids, (n,) int64, sorted."""
        return self._live.copy()

    def train(self, vectors: np.ndarray) -> None:
        """Train IVF centroids / PQ codebooks on vectors (n, dim) float32; a no-op for kinds that need none."""
        vectors = self._check_vectors(vectors, "training vectors")
        if self._cpu.is_trained:
            if self._cpu.ntotal:
                raise ValueError(f"{self.kind} index already holds {self._cpu.ntotal} vectors; build a new one")
            return
        try:
            self._cpu.train(vectors)
        except RuntimeError as error:
            detail = str(error).strip().splitlines()[-1].split("failed: ")[-1]  # drop FAISS's C++ location
            raise ValueError(
                f"cannot train {self.kind!r} on {len(vectors)} vectors ({detail}); give it more vectors, "
                "name a smaller index (fewer IVF lists) or use kind='flat' or 'auto'"
            ) from None
        self._gpu_stale = True

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add vectors (n, dim) float32 under new ids (n,) int64 >= 0; an untrained index trains on them first."""
        vectors = self._check_vectors(vectors, "vectors")
        ids = _check_ids(ids)
        if len(ids) != len(vectors):
            raise ValueError(f"got {len(ids)} ids for {len(vectors)} vectors")
        if len(np.unique(ids)) != len(ids):
            raise ValueError("ids within one add must be unique")
        taken = ids[np.isin(ids, self._live)]
        if len(taken):
            raise ValueError(f"ids already in the index: {taken[:5].tolist()}; remove them first")
        if len(ids) == 0:
            return
        if not self._cpu.is_trained:
            self.train(vectors)
        if self._storage() is not None:
            self._add_once(ids, vectors)
        else:
            self._cpu.add_with_ids(vectors, ids)
        added = np.sort(ids)  # none live (checked above): merged in place of a union1d, 100x faster at 500k ids
        self._live = np.insert(self._live, np.searchsorted(self._live, added), added)
        self._gpu_stale = True
        self._gemm = None  # it reads FAISS's storage, which adding may have moved

    def remove(self, ids: np.ndarray) -> int:
        """Remove ids (n,) int64 wherever present; returns how many were live. Unknown ids are ignored."""
        ids = np.unique(_check_ids(ids))
        present = ids[np.isin(ids, self._live)]
        if len(present) == 0:
            return 0
        if self._removable:
            self._cpu.remove_ids(faiss.IDSelectorBatch(present))
            self._gpu_stale = True
            self._gemm = None
        else:
            self._tombstone(present)
        self._live = np.setdiff1d(self._live, present, assume_unique=True)
        if len(self._dead) > COMPACT_RATIO * self._cpu.ntotal:
            self.compact()
        return len(present)

    def compact(self) -> None:
        """Rebuild a tombstoned index without its removed ids, re-inserting the stored (maybe quantized) vectors."""
        if len(self._dead) == 0:
            return
        inner = self._inner()
        keep = np.ones(inner.ntotal, bool)
        keep[self._dead] = False
        kept = np.flatnonzero(keep)
        keep_ids = self._id_map()[kept]
        for position, ids in self._copies.groups.items():  # a shared position goes on under its first live id
            keep_ids[np.searchsorted(kept, position)] = ids[0]
        vectors = inner.reconstruct_n(0, inner.ntotal)[keep]
        fresh = new_faiss_index(self.dim, self.kind, self.metric)
        if not fresh.is_trained:  # keep the trained codec: retrained on the survivors, it would code copies apart
            fresh = faiss.clone_index(self._cpu)
            fresh.reset()
        if len(vectors):
            fresh.add_with_ids(vectors, keep_ids)
        self._cpu = fresh
        self.nprobe, self.ef_search = self._nprobe, self._ef_search
        self._copies, self._codes = self._copies.renumbered(kept), None
        self._dead = np.empty(0, np.int64)
        self._selector = None
        self._gpu_stale = True

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k for queries (n, dim) or (dim,) float32: scores (n, k) float32, ids (n, k) int64; pads -inf / -1."""
        queries = self._check_vectors(queries, "queries")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a whole number of at least 1, got {k!r}")
        k = int(k)  # FAISS's bindings take a Python int only: np.int64(3) named no argument
        pad_score = -np.inf if self.metric == "ip" else np.inf
        if len(self) == 0 or len(queries) == 0:
            return np.full((len(queries), k), pad_score, np.float32), np.full((len(queries), k), -1, np.int64)
        if self._use_gemm(len(queries)):
            scores, positions = self._gemm_search().search(queries, k)
            ids = np.where(positions >= 0, self._id_map()[np.maximum(positions, 0)], -1)
        elif self._copies:
            scores, positions = self._inner().search(queries, k, params=self._filtered_params(k))
            scores, ids = self._copies.expand(scores, positions, self._id_map(), k, descending=self.metric == "ip")
        elif len(self._dead) or (k > self.ef_search and find_hnsw(self._cpu) is not None):
            scores, positions = self._inner().search(queries, k, params=self._filtered_params(k))
            ids = np.where(positions >= 0, self._id_map()[np.maximum(positions, 0)], -1)
        else:
            scores, ids = self._searchable(k).search(queries, k)
        scores[ids < 0] = pad_score
        return scores.astype(np.float32, copy=False), ids.astype(np.int64, copy=False)

    def save(self, path: str | os.PathLike, fingerprint: str | None = None) -> None:
        """Write the CPU form to path and a json sidecar next to it (path + '.json'), each atomically."""
        path = Path(path)
        if fingerprint is not None:
            self.fingerprint = fingerprint
        path.parent.mkdir(parents=True, exist_ok=True)
        writer = f"{os.getpid()}-{threading.get_ident()}"  # two threads saving at once write apart
        index_tmp = path.with_name(f".{path.name}.{writer}.tmp")
        meta_path = _sidecar_path(path)
        meta_tmp = meta_path.with_name(f".{meta_path.name}.{writer}.tmp")
        _sweep_leftovers(path.parent, [path.name, meta_path.name])
        # One save of a path at a time in this process: two threads' renames interleaved put one's index beside
        # the other's sidecar (another process's save is told apart by the sidecar's size and mtime, and rebuilt).
        with _SAVING.setdefault(str(path.absolute()), threading.Lock()):
            self._save(path, index_tmp, meta_path, meta_tmp)

    def _save(self, path: Path, index_tmp: Path, meta_path: Path, meta_tmp: Path) -> None:
        try:
            faiss.write_index(self._cpu, str(index_tmp))
            _fsync(index_tmp)
            stat = index_tmp.stat()
            meta = {
                "format": _FORMAT,
                "kind": self.kind,
                "dim": self.dim,
                "metric": self.metric,
                "count": len(self),
                "fingerprint": self.fingerprint,
                "nprobe": self.nprobe,
                "ef_search": self.ef_search,
                "tombstones": self._dead.tolist(),
                "copies": self._copies.to_json(),
                # Rename keeps size and mtime, so a crash between the two renames shows as a mismatch on load.
                "index_size": stat.st_size,
                "index_mtime_ns": stat.st_mtime_ns,
            }
            meta_tmp.write_text(json.dumps(meta))
            _fsync(meta_tmp)
            os.replace(index_tmp, path)
            os.replace(meta_tmp, meta_path)
            _fsync(path.parent)
            self.upgraded = False
        finally:
            index_tmp.unlink(missing_ok=True)
            meta_tmp.unlink(missing_ok=True)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto", precision: str = "fp32") -> VectorIndex:
        """The index saved at path, placed on device; IndexFileError when it is missing or half-written."""
        path = Path(path)
        meta = _read_sidecar(path)
        if meta is None or not path.exists():
            raise IndexFileError(f"no saved index at {path} (or its {_sidecar_path(path).name} sidecar)")
        stat = path.stat()
        if (stat.st_size, stat.st_mtime_ns) != (meta["index_size"], meta["index_mtime_ns"]):
            raise IndexFileError(f"{path} does not match its sidecar (an interrupted save?); rebuild the index")
        cpu = faiss.read_index(str(path))
        if cpu.d != meta["dim"]:
            raise IndexFileError(f"{path} holds {cpu.d}-d vectors but its sidecar says {meta['dim']}")
        self = cls.__new__(cls)
        self._setup(cpu, meta["kind"], meta["metric"], device, meta["nprobe"], meta["ef_search"])
        self.fingerprint = meta["fingerprint"]
        self.precision = precision
        self._dead = np.asarray(meta["tombstones"], np.int64)
        self._copies = Copies.from_json(meta.get("copies", []))
        # The id map says who is at each position but a tombstoned or shared one, whose ids `_copies` lists.
        alone = np.delete(stored_ids(cpu), np.union1d(self._dead, list(self._copies.groups)).astype(np.int64))
        self._live = np.sort(np.concatenate([alone, np.fromiter(self._copies.position_of, np.int64)]))
        if meta["format"] < 2 and self._storage() is not None:
            self._merge_copies()
            self.upgraded = True  # to be saved as format 2: no later load looks for copies (2 s at 1M x 768)
        return self

    def __repr__(self) -> str:
        return f"VectorIndex(dim={self.dim}, kind={self.kind!r}, count={len(self)}, device={self.device!r})"

    def _check_vectors(self, vectors: np.ndarray, what: str) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            got = vectors.shape[-1] if vectors.ndim == 2 else f"shape {vectors.shape}"
            raise ValueError(f"{what}: expected dimension {self.dim}, got {got}")
        if not np.isfinite(vectors).all():
            raise ValueError(f"{what} contain NaN or infinite values")
        return np.ascontiguousarray(vectors)

    def _filtered_params(self, k: int) -> faiss.SearchParameters:
        """Search parameters of the inner index: tombstones passed over, and at least k HNSW candidates."""
        selector = None
        if len(self._dead):
            if self._selector is None:
                removed = faiss.IDSelectorBatch(self._dead)
                self._selector = (removed, faiss.IDSelectorNot(removed))  # keep `removed` alive with its wrapper
            selector = self._selector[1]
        if faiss.try_extract_index_ivf(self._inner()) is not None:
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.nprobe)
        if find_hnsw(self._inner()) is not None:
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, k))
        return faiss.SearchParameters(sel=selector)

    def _inner(self) -> faiss.Index:
        """The index under the id map, whose labels are positions: tombstoned kinds always have an id map."""
        return faiss.downcast_index(self._cpu.index)

    def _id_map(self) -> np.ndarray:
        """(ntotal,) int64 view of position -> id; valid until the next add."""
        size = self._cpu.id_map.size()
        return faiss.rev_swig_ptr(self._cpu.id_map.data(), size) if size else np.empty(0, np.int64)

    def _storage(self) -> faiss.IndexFlatCodes | None:
        """The codes of a graph kind (HNSW), which stores each distinct one once; None for other kinds."""
        if self._removable:
            return None
        inner = self._inner()
        if not isinstance(inner, faiss.IndexHNSW):
            return None
        storage = faiss.downcast_index(inner.storage)
        return storage if isinstance(storage, faiss.IndexFlatCodes) else None

    def _stored_codes(self) -> np.ndarray:
        """(ntotal, code_size) uint8 view of the graph's stored codes; valid until the next add."""
        storage = self._storage()
        if storage.ntotal == 0:
            return np.empty((0, storage.code_size), np.uint8)
        size = storage.ntotal * storage.code_size
        return faiss.rev_swig_ptr(storage.codes.data(), size).reshape(storage.ntotal, storage.code_size)

    def _add_once(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add to a graph kind each distinct code once: ids whose code is stored already, under a live id or a
        tombstone, are listed at that position (`indexes.copies`), a tombstone coming back to life."""
        codes = self._storage().sa_encode(vectors)
        first, which = distinct_rows(codes)
        if self._codes is None:
            self._codes = CodeTable(self._stored_codes())
        positions = self._codes.find(codes[first], self._stored_codes())
        new = positions < 0
        positions[new] = self._cpu.ntotal + np.arange(new.sum())
        was_dead = np.isin(positions, self._dead)
        if new.any():
            self._cpu.add_with_ids(vectors[first[new]], ids[first[new]])
            self._codes.extend(codes[first[new]], positions[new])
        counts = np.bincount(which, minlength=len(first))
        by_code = ids[np.argsort(which, kind="stable")]  # the ids of each distinct code in turn
        starts = np.cumsum(counts) - counts
        id_map = self._id_map()
        for distinct in np.flatnonzero((counts > 1) | ~new):
            position, mapped = int(positions[distinct]), int(id_map[positions[distinct]])
            there = [] if new[distinct] else self._copies.ids_at(position, mapped, bool(was_dead[distinct]))
            arriving = by_code[starts[distinct] : starts[distinct] + counts[distinct]].tolist()
            if not (there == [] and arriving == [mapped]):  # the mapped id back alone at its tombstone: no entry
                self._copies.join(position, there, arriving)
        if was_dead.any():
            self._dead = np.setdiff1d(self._dead, positions[was_dead], assume_unique=True)
            self._selector = None

    def _merge_copies(self) -> None:
        """Store once the copies a graph saved before format 2 kept apart: the live ids of each code's positions
        listed at its first, the graph rebuilt without the others (and without its tombstones)."""
        codes = self._stored_codes()
        first, which = distinct_rows(codes)
        if len(first) == len(codes):
            return
        live = np.ones(len(codes), bool)
        live[self._dead] = False
        order = np.argsort(which, kind="stable")
        counts = np.bincount(which, minlength=len(first))
        starts, id_map = np.cumsum(counts) - counts, self._id_map()
        for distinct in np.flatnonzero(counts > 1):
            positions = order[starts[distinct] : starts[distinct] + counts[distinct]]
            positions = np.sort(positions[live[positions]])
            if len(positions) > 1:
                self._copies.join(int(positions[0]), [], id_map[positions].tolist())
                self._dead = np.union1d(self._dead, positions[1:])
        # Rebuilt even where the only copies are tombstones: a new copy would bring one back beside its live twin.
        self._selector = None
        self.compact()

    def _tombstone(self, ids: np.ndarray) -> None:
        """Filter live ids out of a kind FAISS cannot remove from: positions left with no id become tombstones."""
        emptied, alone = [], ids
        if self._copies:
            where = self._copies.position_of
            shared = np.fromiter((id_ in where for id_ in ids.tolist()), bool, len(ids))
            alone = ids[~shared]
            leaving: dict[int, set[int]] = {}
            for id_ in ids[shared].tolist():
                leaving.setdefault(where[id_], set()).add(id_)
            emptied = [position for position, gone in leaving.items() if not self._copies.leave(position, gone)]
        positions = np.flatnonzero(np.isin(self._id_map(), alone))  # earlier places of a re-added id: dead already
        positions = positions[~self._copies.listed(positions)]  # listed: its mapped id left, others are there
        self._dead = np.union1d(self._dead, np.union1d(positions, np.asarray(emptied, np.int64)))
        self._selector = None

    def _use_gemm(self, n_queries: int) -> bool:
        return (
            self._precision == "bf16"
            and self.kind == "Flat"
            and self.metric == "ip"
            and self.device == "cpu"
            and n_queries >= GEMM_BATCH
        )

    def _gemm_search(self) -> GemmSearch:
        if self._gemm is None:
            from indexes.gemm import GemmSearch  # torch, imported only when a batch search needs it

            flat = faiss.downcast_index(self._inner())
            stored = faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(flat.ntotal, self.dim)
            self._gemm = GemmSearch(stored, precision="bf16")  # reads FAISS's fp32 vectors in place
        return self._gemm

    def _searchable(self, k: int) -> faiss.Index:
        if self.device != "cuda" or k > _GPU_MAX_K or self._nprobe > _GPU_MAX_K:
            return self._cpu
        if self._gpu_stale:
            self._place_on_gpu()
        return self._gpu if self._gpu is not None else self._cpu

    def _place_on_gpu(self) -> None:
        try:
            if self._gpu_resources is None:
                self._gpu_resources = faiss.StandardGpuResources()
            options = faiss.GpuClonerOptions()
            options.useFloat16 = pq_needs_float16_tables(self._cpu)
            self._gpu = faiss.index_cpu_to_gpu(self._gpu_resources, 0, self._cpu, options)  # copies nprobe
        except (RuntimeError, AttributeError) as error:
            if self._asked_device == "cuda":
                raise RuntimeError(f"cannot place {self.kind!r} on the GPU ({error}); use device='cpu'") from None
            warnings.warn(f"{self.kind!r} stays on the CPU: FAISS cannot place it on the GPU ({error})", stacklevel=3)
            self.device, self._gpu = "cpu", None
        self._gpu_stale = False


def _check_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"ids must be a 1-d array, got shape {ids.shape}")
    if len(ids) and not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be integers, got {ids.dtype}")
    ids = ids.astype(np.int64, copy=False)
    if len(ids) and ids.min() < 0:
        raise ValueError("ids must be >= 0 (-1 marks padding in search results)")
    return ids


_SAVING: dict[str, threading.Lock] = {}  # a lock a path saved in this process (`VectorIndex.save`)


def _sweep_leftovers(folder: Path, names: list[str]) -> None:
    """Delete the temporary files of saves (`.NAME.PID-THREAD.tmp`) whose process is gone: killed mid-save (SIGKILL
    skips `finally`), it left a file as large as the index."""
    for name in names:
        for leftover in folder.glob(f".{glob.escape(name)}.*.tmp"):
            pid = leftover.name[len(name) + 2:-len(".tmp")].partition("-")[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _at_least_one(value: object, name: str) -> int:
    """A search parameter as a Python int of at least 1, or a one-line error naming it."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} takes a whole number, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1, not {value}")
    return int(value)


def _sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_sidecar(path: Path) -> dict | None:
    meta_path = _sidecar_path(path)
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as error:
        raise IndexFileError(f"cannot read {meta_path} ({error}); delete it and rebuild the index") from None
    if meta.get("format") not in _READS:
        raise IndexFileError(f"{meta_path} has format {meta.get('format')}, expected {_FORMAT}; rebuild the index")
    return meta


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
