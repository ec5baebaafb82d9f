"""One query against a large collection, with and without what a `Collection` now keeps between searches.

    python benchmarks/collection_search.py --rows 200000 [--dim 384] [--queries 20]

Builds a catalog of `--rows` random unit vectors in three modalities (written in commits of 10,000, then
compacted, as `Collection.add` leaves it) and times `Collection.search_vectors` for one query at a time, all
modalities, k = 10, alternating two ways (medians):
- **every search from scratch**, as each search ran before: the modalities found by scanning the catalog and
  each FAISS index read from its cache file;
- **held**: the modalities and the FAISS indexes kept while the catalog's version does not change
  (`bindsearch serve` and `search --queries` run this way).

Then, held, searches restricted to folders (`under`; the rows lie in 100 folders of equal size):
- **one folder (1 %), a new one each query**: its rows read from the catalog and scored alone;
- **the same folder again**: that exact index held;
- **40 folders (40 %)**: more rows than `SUBSET_ROWS` (at 200,000 rows), so the modality's index is searched and
  the rows outside passed over.
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

FOLDERS = 100


def build(directory: Path, rows: int, dim: int) -> None:
    catalog = Catalog.open(directory, EncoderInfo("bench", "random", dim))
    rng = np.random.default_rng(0)
    for start in range(0, rows, 10_000):
        n = min(10_000, rows - start)
        vectors = rng.standard_normal((n, dim)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        modality = ("image", "video", "audio")[start // 10_000 % 3]
        catalog.add([Item(f"/media/f{(start + i) % FOLDERS}/{start + i}.bin", modality, 1, 1.0, "-")
                     for i in range(n)], vectors)
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
                    collection._facts = ("", {})
                start = time.perf_counter()
                collection.search_vectors(query[None], k=10)
                times[way].append(time.perf_counter() - start)
        under = {"under one folder, a new one each query": lambda i: [f"/media/f{i % FOLDERS}"],
                 "under the same folder again": lambda i: ["/media/f0"],
                 "under 40 folders": lambda i: [f"/media/f{j}" for j in range(40)]}
        for way in under:
            times[way] = []
        collection.search_vectors(queries[:1], k=10, under=["/media/f0"])
        for i, query in enumerate(queries, 1):
            for way, folders in under.items():
                start = time.perf_counter()
                hits = collection.search_vectors(query[None], k=10, under=folders(i))[0]
                times[way].append(time.perf_counter() - start)
                assert len(hits) == 10 and all(h.path.startswith(tuple(f + "/" for f in folders(i))) for h in hits)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{args.rows} rows x {args.dim}-d in 3 modalities (built in {built:.0f} s); one query, k = 10, "
          f"median of {args.queries}")
    result = {way: statistics.median(t) * 1e3 for way, t in times.items()}
    for way, ms in result.items():
        print(f"{way:<40}{ms:>8.1f} ms")
        if way == "held":
            print(f"{'ratio':<40}{result['every search from scratch'] / result['held']:>8.1f}x")
    return result


if __name__ == "__main__":
    main()
