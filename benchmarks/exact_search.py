"""Exact search as one GEMM: 1,000 queries against 1M x 768 vectors, against the machine's own GEMM rate.

    python benchmarks/exact_search.py                       # 1M vectors, 1000 queries, 3 rounds
    python benchmarks/exact_search.py --n 100000 --rounds 1 # quick

The bound is measured in the same run on the same shapes: the bare matrix products (queries x blocks of
the vectors, no top-k) in fp32 and in bf16. Against it: FAISS's flat index (fp32 sgemm + heaps), and
`indexes.GemmSearch` in fp32 and in bf16 (bf16 product, fp32 rescoring of k + max(64, k) candidates per query, and a
second pass for the queries whose top k that cannot certify: their share is printed).
Every engine runs once per round, in turn, and keeps its best round, so machine noise hits all alike.
Also printed: exact search one query at a time (the rate an approximate index must beat) and recall@k of
each engine against a numpy brute force. Writes JSON with `--out`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from search import exact_top_k, hardware, random_unit, recall_at_k  # noqa: E402

from indexes import GemmSearch  # noqa: E402

# isort: split
import faiss  # noqa: E402  after `indexes`, which points the OpenBLAS inside FAISS's wheel at this CPU's kernels


def gemm_only(queries: np.ndarray, vectors: torch.Tensor, block: int) -> float:
    """Seconds for the bare products queries @ vectors.T block by block (the bound), dtype of `vectors`."""
    q = torch.from_numpy(queries).to(vectors.dtype)
    out = torch.empty(len(queries), block, dtype=vectors.dtype)
    start = time.perf_counter()
    for first in range(0, len(vectors), block):
        part = vectors[first : first + block]
        torch.matmul(q, part.T, out=out[:, : len(part)])
    return time.perf_counter() - start


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--block", type=int, default=16384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--single", type=int, default=20, help="queries timed one at a time")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    vectors = np.empty((args.n, args.dim), np.float32)
    for first in range(0, args.n, 100_000):
        vectors[first : first + 100_000] = random_unit(min(100_000, args.n - first), args.dim, rng)
    queries = random_unit(args.queries, args.dim, rng)
    flops = 2.0 * args.queries * args.n * args.dim

    flat = faiss.IndexFlatIP(args.dim)
    flat.add(vectors)
    engines = {
        "gemm fp32 (bound)": lambda: gemm_only(queries, torch.from_numpy(vectors), args.block),
        "gemm bf16 (bound)": None,  # filled below, once the bf16 copy exists
        "faiss Flat fp32": lambda: flat.search(queries, args.k)[1],
        "GemmSearch fp32": None,
        "GemmSearch bf16": None,
    }
    searchers = {
        name: GemmSearch(vectors, precision=p, block=args.block)
        for name, p in (("GemmSearch fp32", "fp32"), ("GemmSearch bf16", "bf16"))
    }
    low = searchers["GemmSearch bf16"]._lowp
    engines["gemm bf16 (bound)"] = lambda: gemm_only(queries, low, args.block)
    for name, searcher in searchers.items():
        engines[name] = lambda s=searcher: s.search(queries, args.k)[1]

    best = {name: float("inf") for name in engines}
    results: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, fn in engines.items():
            seconds, result = timed(fn)
            if name.endswith("(bound)"):
                seconds = result  # gemm_only times itself, without the copy of the queries
            else:
                results[name] = result
            best[name] = min(best[name], seconds)
    truth = exact_top_k(vectors, queries, args.k)  # numpy brute force, apart from every engine timed
    single = min(
        timed(lambda: [flat.search(queries[i : i + 1], args.k) for i in range(args.single)])[0]
        for _ in range(args.rounds)
    )

    bound = {"fp32": best["gemm fp32 (bound)"], "bf16": best["gemm bf16 (bound)"]}
    rows = []
    for name, seconds in best.items():
        precision = "bf16" if "bf16" in name else "fp32"
        rows.append(
            {
                "engine": name,
                "seconds": round(seconds, 3),
                "gflops": round(flops / seconds / 1e9, 1),
                "of_bound": round(bound[precision] / seconds, 3),
                "bound": precision,
                "of_fp32_bound": round(bound["fp32"] / seconds, 3),
                "recall": None if name.endswith("(bound)") else round(recall_at_k(results[name], truth), 4),
            }
        )
    report = {
        "hardware": hardware(),
        "torch": torch.__version__,
        "faiss": faiss.__version__,
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "rounds": args.rounds,
        "rows": rows,
        "single_query_per_s": round(args.single / single, 2),
        # Queries whose bf16 top k the first pass could not certify, searched again (indexes/gemm.py).
        "bf16_second_passes": round(searchers["GemmSearch bf16"].second_passes / (args.rounds * args.queries), 4),
    }

    print(f"# {report['hardware']}; torch {torch.__version__}, faiss {faiss.__version__}")
    print(
        f"# {args.queries} queries x {args.n:,} x {args.dim}, k={args.k}: {flops / 1e12:.2f} TFLOP per search; "
        f"best of {args.rounds} rounds, engines interleaved"
    )
    print(f"{'engine':20} {'seconds':>8} {'GFLOP/s':>8} {'of bound':>9} {'of fp32 bound':>14} {'recall@k':>9}")
    for row in rows:
        recall = "" if row["recall"] is None else f"{row['recall']:.4f}"
        print(
            f"{row['engine']:20} {row['seconds']:8.2f} {row['gflops']:8.0f} {row['of_bound']:8.0%} "
            f"({row['bound']}) {row['of_fp32_bound']:7.0%} {recall:>9}"
        )
    print(f"exact search one query at a time (faiss Flat): {report['single_query_per_s']:.1f} queries/s")
    print(f"GemmSearch bf16: {report['bf16_second_passes']:.1%} of the queries searched again to certify their top k")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
