"""Identical vectors in an HNSW index: FAISS's graph of every vector against `VectorIndex`, which stores each once.

    python benchmarks/hnsw_copies.py                 # about a minute on 2 cores
    python benchmarks/hnsw_copies.py --rows 200000 --threads 2

Copies come from one photo under several names, or from the silent or black windows of many recordings. Three
collections of `--rows` 64-d unit vectors: one vector copied 5 % of the rows over, 100 vectors copied 30 times
each, and no copies (what storing once costs when there is nothing to save). For each, FAISS's IndexHNSWFlat
under an id map with our build and search settings ("every vector"), then `VectorIndex("HNSW32")` ("once"), side
by side in one run: build seconds, recall@10 (ties counted by score) of 300 random queries and of 300 queries
near stored vectors, the share of a copied vector's copies a search for it returns (k = copies + 100), and
milliseconds a query (300 at once, the median of 5 runs).
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np

from indexes import VectorIndex
from indexes.kinds import EF_CONSTRUCTION
from indexes.vector_index import EF_SEARCH


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class EveryVector:
    """FAISS's HNSW32 over every vector, built and searched as `VectorIndex` builds and searches (efSearch raised
    to k), which is what `VectorIndex` did before it stored copies once."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        graph = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = EF_CONSTRUCTION
        self.index = faiss.IndexIDMap2(graph)
        self.index.add_with_ids(vectors, ids)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k, params=faiss.SearchParametersHNSW(efSearch=max(EF_SEARCH, k)))


def once(ids: np.ndarray, vectors: np.ndarray) -> VectorIndex:
    index = VectorIndex(vectors.shape[1], "HNSW32", device="cpu")
    index.add(ids, vectors)
    return index


def recall_by_score(found_rows: np.ndarray, scores: np.ndarray) -> float:
    """Share of the k found rows (n, k) scoring at least the true k-th best of scores (n, rows): copies tie, and
    any of them counts."""
    k = found_rows.shape[1]
    kth = np.partition(scores, -k, axis=1)[:, -k]
    got = np.where(found_rows >= 0, np.take_along_axis(scores, np.maximum(found_rows, 0), 1), -np.inf)
    return float(np.mean(got >= kth[:, None] - 1e-5))


def collection(kind: str, rows: int, rng: np.random.Generator) -> tuple[np.ndarray, list[np.ndarray]]:
    """(rows, 64) vectors, and the rows of each copied vector's copies."""
    vectors = unit(rng.standard_normal((rows, 64)))
    groups: list[np.ndarray] = []
    if kind == "one vector x 5 %":
        groups = [rng.choice(rows, rows // 20, replace=False)]
    elif kind == "100 vectors x 30":
        groups = list(rng.choice(rows, (100, 30), replace=False))
    for group in groups:
        vectors[group] = vectors[group[0]]
    return vectors, groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60_000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    print(f"# {args.rows:,} x 64-d; HNSW32, efConstruction {EF_CONSTRUCTION}, efSearch {EF_SEARCH}; "
          f"{args.threads} threads; 300 queries, k = 10")
    print(f"{'copies':18s} {'stored':13s} {'build s':>8s} {'recall random':>14s} {'recall near':>12s} "
          f"{'copies found':>13s} {'ms/query':>9s}")
    for kind in ("one vector x 5 %", "100 vectors x 30", "none"):
        vectors, groups = collection(kind, args.rows, rng)
        ids = rng.permutation(args.rows).astype(np.int64)
        row_of = np.empty(args.rows, np.int64)
        row_of[ids] = np.arange(args.rows)
        random_queries = unit(rng.standard_normal((300, 64)))
        near_queries = unit(vectors[rng.integers(0, args.rows, 300)] + 0.3 * unit(rng.standard_normal((300, 64))))
        for name, build in (("every vector", EveryVector), ("once", once)):
            start = time.perf_counter()
            index = build(ids, vectors)
            built = time.perf_counter() - start
            recalls = []
            for queries in (random_queries, near_queries):
                _, found = index.search(queries, 10)
                found_rows = np.where(found >= 0, row_of[np.maximum(found, 0)], -1)
                recalls.append(recall_by_score(found_rows, queries @ vectors.T))
            times = []
            for _ in range(5):
                start = time.perf_counter()
                index.search(random_queries, 10)
                times.append(time.perf_counter() - start)
            per_query = float(np.median(times)) / len(random_queries) * 1e3
            shares = []
            for group in groups[:10]:
                _, found = index.search(vectors[group[:1]], len(group) + 100)
                shares.append(np.isin(found[0], ids[group]).sum() / len(group))
            found_text = f"{np.mean(shares):.3f}" if shares else "-"
            print(f"{kind:18s} {name:13s} {built:8.1f} {recalls[0]:14.3f} {recalls[1]:12.3f} {found_text:>13s} "
                  f"{per_query:9.3f}")


if __name__ == "__main__":
    main()
