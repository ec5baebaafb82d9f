"""HNSW's build and search defaults (`EF_CONSTRUCTION`, `EF_SEARCH`) on the windows of long files.

    python benchmarks/hnsw_defaults.py                       # about a minute on 2 cores
    python benchmarks/hnsw_defaults.py --files 600 --threads 2

A long video or recording is indexed as windows whose vectors lie close together (cosine ~0.97 between windows
of one file): a graph search with few candidates circles among them. Here `--files` files of `--windows`
windows each (64-d), and random unit queries; beside them, clustered 768-d vectors with queries from the same
clusters, where every setting is exact. Prints recall@10 (against brute force), build seconds and search
milliseconds a query for each efConstruction x efSearch, FAISS's default efConstruction (40) included.
"""

from __future__ import annotations

import argparse
import time

import faiss
import numpy as np


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--windows", type=int, default=100, help="windows per file")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ef-construction", default="40,64,80")
    parser.add_argument("--ef-search", default="128,256")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    files = unit(rng.standard_normal((args.files, 64)))
    noise = unit(rng.standard_normal((len(files) * args.windows, 64)))
    windows = unit(np.repeat(files, args.windows, 0) + 0.15 * noise)
    centres = unit(rng.standard_normal((200, 768)))
    clustered = unit(centres[rng.integers(0, 200, 20_000)] + 0.7 * unit(rng.standard_normal((20_000, 768))))
    cases = [(f"windows {len(windows):,} x 64", windows, unit(rng.standard_normal((100, 64)))),
             ("clustered 20,000 x 768", clustered,
              unit(centres[rng.integers(0, 200, 100)] + 0.7 * unit(rng.standard_normal((100, 768)))))]
    within = float(np.mean(np.sum(windows[:-1] * windows[1:], axis=1)))
    print(f"# windows of one file at cosine {within:.2f} to the next on average; 100 queries, k = 10")
    print(f"{'data':24s} {'efC':>4s} {'build s':>8s} " + " ".join(
        f"{'ef ' + e + ' recall':>15s} {'ms/q':>6s}" for e in args.ef_search.split(",")))
    for name, vectors, queries in cases:
        truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
        for efc in map(int, args.ef_construction.split(",")):
            index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = efc
            start = time.perf_counter()
            index.add(vectors)
            built = time.perf_counter() - start
            cells = []
            for ef in map(int, args.ef_search.split(",")):
                index.hnsw.efSearch = ef
                start = time.perf_counter()
                _, found = index.search(queries, 10)
                cells.append(f"{recall(found, truth):15.3f} {(time.perf_counter() - start) / len(queries) * 1e3:6.2f}")
            print(f"{name:24s} {efc:4d} {built:8.1f} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
