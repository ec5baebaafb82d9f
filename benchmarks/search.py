"""Search speed and recall@k: our FAISS index kinds and LanceDB's own vector indexes, against exact search.

    python benchmarks/search.py --sizes 100000,1000000 --queries 1000 --out search.json
    python benchmarks/search.py --quick                       # a smoke run on small sizes
    python benchmarks/search.py --data random,clustered --sizes 100000

Vectors are 768-d unit vectors, stored once in a bindsearch catalog (a LanceDB table). Every FAISS index is
built from that catalog with `indexes.build_index`, so build times include streaming the vectors out of it;
LanceDB's IVF_PQ and IVF_HNSW_SQ indexes are built on the same table. Ground truth is a blocked numpy brute
force. `--data random` (the default) draws uniformly on the sphere: the hardest case for any ANN index, since
every point is nearly equidistant from every query; `--data clustered` draws Gaussian clusters in a random
64-d subspace, overlapping (within-cluster spread twice the spread of the centres): intrinsic dimension 64,
nearest neighbours at cosine ~0.5, still hard for graphs and inverted lists at 1M; `--data embedding` draws
well-separated clusters (spread 0.5) in a 32-d subspace, the low intrinsic dimension (~20-30) reported for
CLIP-like embeddings, where approximate indexes do what they are built for.
Queries are timed as one batch per engine (LanceDB takes a list of vectors) after a small warm-up, best of
`--repeat` runs (other processes may share the cores). Prints one table, writes JSON (`--out`).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import lancedb
import numpy as np
from lancedb.index import HnswSq, IvfPq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from indexes import Catalog, EncoderInfo, Item, build_index, suggested_nlist  # noqa: E402

# isort: split
import faiss  # noqa: E402  after `indexes`, which points the OpenBLAS inside FAISS's wheel at this CPU's kernels


@dataclass
class Row:
    """One measured configuration."""

    size: int
    data: str
    engine: str
    index: str
    params: str
    build_s: float
    qps: float
    recall: float
    single_qps: float | None = None  # queries issued one at a time (FAISS rows)


def random_unit(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) float32 uniform on the unit sphere."""
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@dataclass
class Clusters:
    """Embedding-like data: Gaussian clusters in a random 64-d subspace of R^dim, plus a little full-rank noise."""

    centres: np.ndarray  # (c, 64) float32
    basis: np.ndarray  # (64, dim) float32

    spread: float = 2.0  # within-cluster standard deviation (centres have 1)

    @classmethod
    def make(cls, n: int, dim: int, rng: np.random.Generator, latent: int = 64, spread: float = 2.0) -> Clusters:
        latent = min(latent, dim)
        centres = rng.standard_normal((max(10, n // 100), latent), dtype=np.float32)
        return cls(centres, rng.standard_normal((latent, dim), dtype=np.float32) / np.sqrt(latent), spread)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, dim) float32 unit vectors; nearest neighbours sit at cosine ~0.4-0.5, as in cross-modal search."""
        z = self.centres[rng.integers(len(self.centres), size=n)] + self.spread * rng.standard_normal(
            (n, self.centres.shape[1]), dtype=np.float32
        )
        x = z @ self.basis
        x += (
            0.05
            * np.linalg.norm(x, axis=1, keepdims=True)
            / np.sqrt(x.shape[1])
            * rng.standard_normal(x.shape, dtype=np.float32)
        )
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def unit_vectors(n: int, dim: int, rng: np.random.Generator, clusters: Clusters | None) -> np.ndarray:
    """(n, dim) float32 unit vectors, uniform or from `clusters`, generated in chunks of 100k."""
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        out[start : start + m] = random_unit(m, dim, rng) if clusters is None else clusters.sample(m, rng)
    return out


def exact_top_k(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids (nq, k) int64 of the k largest inner products, by blocked numpy brute force."""
    best_scores = np.full((len(queries), k), -np.inf, np.float32)
    best_ids = np.full((len(queries), k), -1, np.int64)
    for start in range(0, len(vectors), 50_000):
        scores = queries @ vectors[start : start + 50_000].T
        top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        scores = np.concatenate([best_scores, np.take_along_axis(scores, top, 1)], axis=1)
        ids = np.concatenate([best_ids, top + start], axis=1)
        keep = np.argsort(-scores, axis=1)[:, :k]
        best_scores, best_ids = np.take_along_axis(scores, keep, 1), np.take_along_axis(ids, keep, 1)
    return best_ids


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of the true top k among the k found."""
    hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True))
    return hits / truth.size


def fill_catalog(directory: Path, vectors: np.ndarray) -> Catalog:
    """A bindsearch catalog holding vectors under ids 0..n-1."""
    catalog = Catalog.open(directory, EncoderInfo("benchmark:random", "none", vectors.shape[1], "cosine"))
    for start in range(0, len(vectors), 100_000):
        chunk = vectors[start : start + 100_000]
        catalog.add([Item(f"/bench/{i}", "image", 0, 0.0, "", id=i) for i in range(start, start + len(chunk))], chunk)
    return catalog


def timed_search(search, queries: np.ndarray, repeat: int) -> tuple[np.ndarray, float]:
    """(ids (nq, k), queries per second) of one batch, best of `repeat` runs after a 10-query warm-up."""
    search(queries[:10])
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        found = search(queries)
        best = min(best, time.perf_counter() - start)
    return found, len(queries) / best


def single_rate(search, queries: np.ndarray, repeat: int) -> float:
    """Queries per second when each query is its own call (an interactive user), after a warm-up: the best of
    `repeat` passes, as for the batched rate (one pass gave exact search 128 or 5,000 q/s by the machine's load)."""
    search(queries[:1])
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        for i in range(len(queries)):
            search(queries[i : i + 1])
        best = max(best, len(queries) / (time.perf_counter() - start))
    return best


def _times(ratio: float) -> str:
    """A ratio as read: 25x, 1.4x, 0.72x (not rounded to '1x' either side of one)."""
    return f"{ratio:,.0f}x" if ratio >= 10 else f"{ratio:.2f}x"


def _wanted(kind: str, wanted: list[str] | None) -> bool:
    """Whether a FAISS kind is asked for: 'flat' is exact search alone (not IVF...,Flat), others by substring."""
    return wanted is None or any(kind == "Flat" if w == "flat" else w in kind.lower() for w in wanted)


def faiss_configs(n: int, dim: int) -> list[tuple[str, str, list]]:
    """(kind, knob, values) for Flat, IVF-Flat, HNSW and IVF-PQ, the knobs spanning recall 0.5 .. 0.99."""
    nlist = suggested_nlist(n)
    pq = max(m for m in range(1, dim // 8 + 1) if dim % m == 0)
    probes = sorted({max(1, nlist // d) for d in (256, 128, 64, 32, 16, 4)})
    return [
        ("Flat", "nprobe", [None]),
        (f"IVF{nlist},Flat", "nprobe", probes),
        ("HNSW32", "efSearch", [16, 32, 64, 128, 256]),
        (f"IVF{nlist},PQ{pq}", "nprobe", sorted({max(1, nlist // 16), max(1, nlist // 4)})),
    ]


def faiss_rows(
    catalog: Catalog, queries: np.ndarray, truth: np.ndarray, k: int, repeat: int, kinds: str = "all"
) -> Iterator[Row]:
    """Each FAISS kind (filtered by `kinds`, substrings such as "flat,hnsw"), built from the catalog, at
    several search settings: batched queries per second, and one query at a time on 200 of them (20 for Flat)."""
    n = len(catalog)
    wanted = None if kinds == "all" else kinds.lower().split(",")
    for kind, knob, values in faiss_configs(n, catalog.dim):
        if not _wanted(kind, wanted):
            continue
        start = time.perf_counter()
        index = build_index(catalog, kind=kind, device="cpu")
        build_s = time.perf_counter() - start
        for value in values:
            if value is not None:
                setattr(index, "nprobe" if knob == "nprobe" else "ef_search", value)
            search = lambda q, index=index: index.search(q, k)[1]  # noqa: E731
            found, qps = timed_search(search, queries, repeat)
            single = single_rate(search, queries[: 20 if value is None else 200], repeat)
            params = "exact" if value is None else f"{knob}={value}"
            yield Row(n, "", "faiss", kind, params, build_s, qps, recall_at_k(found, truth), single)
        del index
        gc.collect()


def lancedb_rows(catalog: Catalog, queries: np.ndarray, truth: np.ndarray, k: int, repeat: int) -> Iterator[Row]:
    """LanceDB's brute force, IVF_PQ (nprobes, refine_factor) and IVF_HNSW_SQ (ef) on the catalog's own table."""
    table, n, dim = catalog.table, len(catalog), catalog.dim
    nlist = suggested_nlist(n)
    pq = max(m for m in range(1, dim // 8 + 1) if dim % m == 0)

    def search(
        q: np.ndarray, nprobes: int | None = None, refine: int | None = None, ef: int | None = None, exact: bool = False
    ) -> np.ndarray:
        query = table.search(list(q)).distance_type("dot").limit(k).select(["id", "_distance"])
        if exact:
            query = query.bypass_vector_index()
        if nprobes:
            query = query.nprobes(nprobes)
        if refine:
            query = query.refine_factor(refine)
        if ef:
            query = query.ef(ef)
        result = query.to_arrow()
        found = np.full((len(q), k), -1, np.int64)
        which = result["query_index"].to_numpy() if "query_index" in result.column_names else np.zeros(len(result), int)
        order = np.lexsort((result["_distance"].to_numpy(), which))
        rows, ids = which[order], result["id"].to_numpy()[order]
        rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
        found[rows, rank] = ids
        return found

    few = min(len(queries), 100)  # brute force scans the table once per query
    found, qps = timed_search(lambda q: search(q, exact=True), queries[:few], repeat)
    yield Row(n, "", "lancedb", "no index (flat scan)", "exact", 0.0, qps, recall_at_k(found, truth[:few]))

    start = time.perf_counter()
    # k-means as FAISS does it in build_index: 40 training vectors per list, 10 iterations. LanceDB's defaults
    # (256 per list, 50 iterations) take about an hour at 1M on two cores.
    ivf_pq = IvfPq(distance_type="dot", num_partitions=nlist, num_sub_vectors=pq, sample_rate=40, max_iterations=10)
    table.create_index("vector", config=ivf_pq)
    build_s = time.perf_counter() - start
    settings = [(max(1, nlist // 16), None), *((max(1, nlist // d), 10) for d in (64, 16, 4)), (max(1, nlist // 4), 50)]
    for nprobes, refine in settings:
        found, qps = timed_search(lambda q, p=nprobes, r=refine: search(q, nprobes=p, refine=r), queries, repeat)
        params = f"nprobes={nprobes}" + (f",refine={refine}" if refine else "")
        yield Row(n, "", "lancedb", f"IVF_PQ({nlist},{pq})", params, build_s, qps, recall_at_k(found, truth))

    partitions = max(1, n // 250_000)  # one HNSW graph per 250k rows keeps the build within memory and time
    start = time.perf_counter()
    config = HnswSq(distance_type="dot", num_partitions=partitions, ef_construction=150)
    table.create_index("vector", config=config, replace=True)
    build_s = time.perf_counter() - start
    for ef in (64, 256):
        found, qps = timed_search(lambda q, ef=ef: search(q, nprobes=partitions, ef=ef), queries, repeat)
        yield Row(n, "", "lancedb", f"IVF_HNSW_SQ({partitions})", f"ef={ef}", build_s, qps, recall_at_k(found, truth))


def hardware() -> str:
    """'AMD EPYC, 2 cores, avx512' from /proc/cpuinfo (platform.processor() is often empty)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    simd = [name for name in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if name in flags]
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    blas = os.environ.get("OPENBLAS_CORETYPE", "detected")
    return f"{model}, {os.cpu_count()} cores, {'/'.join(simd) or 'no AVX'}, {gpus} GPU(s), OpenBLAS core {blas}"


def format_table(rows: list[Row]) -> str:
    """Rows as a fixed-width text table."""
    header = ("N", "data", "engine", "index", "search params", "build s", "queries/s", "one at a time/s", "recall@10")
    cells = [
        (
            f"{r.size:,}",
            r.data,
            r.engine,
            r.index,
            r.params,
            f"{r.build_s:.1f}",
            f"{r.qps:,.0f}",
            "" if r.single_qps is None else f"{r.single_qps:,.1f}",
            f"{r.recall:.3f}",
        )
        for r in rows
    ]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def targets(rows: list[Row], recall: float = 0.95) -> list[str]:
    """Per (size, data): the fastest FAISS index at recall >= `recall` against exact search one query at a
    time (both one query at a time) and against LanceDB's fastest setting at that recall (both batched)."""
    lines = []
    for size, data in sorted({(r.size, r.data) for r in rows}):
        group = [r for r in rows if (r.size, r.data) == (size, data)]
        exact = next((r for r in group if r.engine == "faiss" and r.params == "exact"), None)
        ann = [r for r in group if r.engine == "faiss" and r.params != "exact" and r.recall >= recall]
        lance = [r for r in group if r.engine == "lancedb" and r.recall >= recall]
        head = f"{size:,} {data}: "
        if not ann:
            lines.append(head + f"no FAISS setting reached recall {recall}")
            continue
        one = max(ann, key=lambda r: r.single_qps or 0.0)
        batch = max(ann, key=lambda r: r.qps)
        text = f"{one.index} {one.params} (recall {one.recall:.3f}) {one.single_qps:,.0f} q/s one at a time"
        if exact is not None and exact.single_qps:
            text += f" = {_times(one.single_qps / exact.single_qps)} exact ({exact.single_qps:,.1f} q/s)"
        text += f"; batched {batch.index} {batch.params} (recall {batch.recall:.3f}) {batch.qps:,.0f} q/s"
        if lance:  # LanceDB's fastest setting at >= recall, against our fastest at no lower recall than it
            best = max(lance, key=lambda r: r.qps)
            ours = max((r for r in ann if r.recall >= best.recall), key=lambda r: r.qps, default=None)
            text += f"; LanceDB {best.index} {best.params} {best.qps:,.0f} q/s at recall {best.recall:.3f}"
            if ours is not None:
                text += f", FAISS {ours.index} {ours.params} {ours.qps:,.0f} q/s at recall {ours.recall:.3f}"
                text += f" = {ours.qps / best.qps:,.1f}x"
        elif any(r.engine == "lancedb" for r in group):
            text += f"; no LanceDB setting reached recall {recall}"
        lines.append(head + text)
    return lines


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=None, help="comma-separated collection sizes (default 100000,1000000)")
    parser.add_argument("--queries", type=int, default=None, help="number of queries (default 1000; 100 with --quick)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--data", default="random", help="random, clustered, embedding, or several: random,embedding")
    parser.add_argument("--quick", action="store_true", help="small sizes (2000,10000) for a smoke run")
    parser.add_argument("--no-lancedb", action="store_true", help="skip LanceDB's own indexes")
    parser.add_argument("--kinds", default="all",
                        help="FAISS kinds to run: flat (exact), hnsw, ivf, pq, comma-separated")
    parser.add_argument("--workdir", type=Path, default=None, help="where the catalog goes (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=2, help="time each search this many times, keep the best")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ("2000,10000" if args.quick else "100000,1000000")).split(",")]
    n_queries = args.queries or (100 if args.quick else 1000)

    datasets = args.data.split(",")
    if not set(datasets) <= {"random", "clustered", "embedding"}:
        parser.error(f"--data takes random, clustered and/or embedding, got {args.data!r}")

    rows: list[Row] = []
    for size, data in itertools.product(sizes, datasets):
        rng = np.random.default_rng(args.seed)
        clusters = None
        if data == "clustered":
            clusters = Clusters.make(size, args.dim, rng)
        elif data == "embedding":
            clusters = Clusters.make(size, args.dim, rng, latent=32, spread=0.5)
        vectors = unit_vectors(size, args.dim, rng, clusters)
        queries = unit_vectors(n_queries, args.dim, rng, clusters)
        truth = exact_top_k(vectors, queries, args.k)
        workdir = Path(tempfile.mkdtemp(prefix="bench-search-", dir=args.workdir))
        try:
            catalog = fill_catalog(workdir / "collection", vectors)
            del vectors
            gc.collect()
            measured = faiss_rows(catalog, queries, truth, args.k, args.repeat, args.kinds)
            if not args.no_lancedb:
                measured = itertools.chain(measured, lancedb_rows(catalog, queries, truth, args.k, args.repeat))
            for row in measured:  # progress for humans on stderr; the table goes to stdout at the end
                row.data = data
                rows.append(row)
                print(
                    f"{row.size:>9,} {row.engine:8} {row.index:24} {row.params:20} build {row.build_s:7.1f}s "
                    f"{row.qps:9,.0f} q/s  recall {row.recall:.3f}",
                    file=sys.stderr,
                    flush=True,
                )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"# {hardware()}; faiss {faiss.__version__}, lancedb {lancedb.__version__}; "
        f"{n_queries} queries, dim {args.dim}, k {args.k}"
    )
    print(format_table(rows))
    print("\n".join(["", "targets (recall@10 >= 0.95):", *targets(rows)]))
    if args.out:
        report = {
            "hardware": hardware(),
            "faiss": faiss.__version__,
            "lancedb": lancedb.__version__,
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [asdict(r) for r in rows],
            "targets": targets(rows),
        }
        args.out.write_text(json.dumps(report, indent=2))
    return rows


if __name__ == "__main__":
    main()
