"""One query against a large collection, with and without what a `Collection` now keeps between searches.

    python benchmarks/collection_search.py --rows 200000 [--dim 384] [--queries 20]

Builds a catalog of `--rows` random unit vectors in three modalities (written in commits of 10,000, then
compacted, as `Collection.add` leaves it) and times `Collection.search_vectors` for one query at a time, all
modalities, k = 10, alternating two ways (medians):
- **every search from scratch**, as each search ran before: the modalities found by scanning the catalog and
  each FAISS index read from its cache file;
- **held**: the modalities and the FAISS indexes kept while the catalog's version does not change
  (`bindsearch serve` and `search --queries` run this way).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch.collection import Collection  # noqa: E402
from indexes import Catalog, EncoderInfo, Item  # noqa: E402


def build(directory: Path, rows: int, dim: int) -> None:
    catalog = Catalog.open(directory, EncoderInfo("bench", "random", dim))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 10_000):
        n = min(10_000, rows - start)
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        modality = ("image", "video", "audio")[start // 10_000 % 3]
        catalog.add([Item(f"/media/{start + i}.bin", modality, 1, 1.0, "-") for i in range(n)], vectors)
    catalog.compact()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-collection-search-"))
    try:
        start = time.perf_counter()
        build(work / "collection", args.rows, args.dim)
        built = time.perf_counter() - start
        collection = Collection.open(work / "collection", device="cpu")
        queries = np.random.default_rng(1).standard_normal((args.queries, args.dim)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        collection.search_vectors(queries[:1], k=10)  # builds and caches the FAISS indexes
        times: dict[str, list[float]] = {"every search from scratch": [], "held": []}
        for query in queries:
            for way in times:
                if way != "held":
                    collection._indexes.clear()
                    collection._present = None
                start = time.perf_counter()
                collection.search_vectors(query[None], k=10)
                times[way].append(time.perf_counter() - start)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.rows} rows x {args.dim}-d in 3 modalities (built in {built:.0f} s); one query, k = 10, "
          f"median of {args.queries}")
    result = {way: statistics.median(t) * 1e3 for way, t in times.items()}
    for way, ms in result.items():
        print(f"{way:<28}{ms:>8.1f} ms")
    print(f"{'ratio':<28}{result['every search from scratch'] / result['held']:>8.1f}x")
    return result


if __name__ == "__main__":
    main()
