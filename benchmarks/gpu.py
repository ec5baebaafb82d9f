"""GPU figures: the towers against the GPU's own matrix rate, and exact search over 10M x 768.

    python benchmarks/gpu.py --out gpu.json            # on a machine with a CUDA GPU

Needs torch and numpy only (no FAISS, LanceDB or media libraries), so it runs on a bare GPU image. It prints,
from one run:

- **the limit**: the GPU's measured matrix rate, an 8192^3 product in bf16 and fp16 (and the datasheet's
  dense figure beside it), and each tower's own matrix products (every linear, and attention's two batched
  products, recorded by hooks at the benchmark batch) timed alone;
- **towers**: ViT-L/14 image, audio and video towers with random weights (`models.builtin.vit_l14_configs`),
  random preprocessed inputs already on the GPU (the encoder's own rate; decoding is the ingest benchmark's
  business), in bf16 and fp16, eager and through `EmbeddingModel.compile_towers`, beside the naive path
  (fp32, and fp32 with TF32): items/s, the TFLOP/s that makes, its share of the measured peak and of the
  tower's own products, and the cosine of each embedding to fp32 (TF32 off);
- **temporal attention** (`--skip temporal` leaves it out): the video tower's attention across 8 frames at
  batch 32 (32 x 8 x 4,112 x 64 in bf16), the Triton kernel (`bindsearch.models.temporal`) at several block
  sizes beside SDPA (default and each backend), in GB/s against the GPU's measured copy bandwidth (the
  kernel's limit: it reads q, k and v and writes the output once); the video tower is then timed with the
  kernel and with SDPA (the "bf16-sdpa" rows);
- **exact search**: `GemmSearch` on the GPU over `--search-n` random unit vectors of 768 dimensions (random
  vectors crowd the top scores closest together: the hard case for a bf16 product), 1,000 and 10,000 queries:
  seconds, queries/s, share of the bf16 GEMM bound (the same block products timed alone), recall@10 against
  fp32 exact search, and one query at a time.

Timings are CUDA-event medians after warm-up. JSON of everything goes to `--out`, rewritten after each stage.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from encode import attention_products, matmul_flops, matmul_shapes, random_inputs  # noqa: E402

from bindsearch.models import temporal  # noqa: E402
from bindsearch.models.builtin import random_model, vit_l14_configs  # noqa: E402
from indexes.gemm import GemmSearch  # noqa: E402

DATASHEET_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}
"""Dense bf16/fp16 tensor-core peaks from the vendor's datasheets (SXM parts), TFLOP/s."""

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def cuda_seconds(fn, iters: int = 10, warmup: int = 2) -> float:
    """Median seconds of `fn()` on the current stream, timed with CUDA events after `warmup` calls."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3)
    return statistics.median(times)


def peak_tflops(dtype: torch.dtype, n: int = 8192) -> float:
    a, b = (torch.randn(n, n, device="cuda").to(dtype) for _ in range(2))
    out = torch.empty(n, n, device="cuda", dtype=dtype)
    return 2.0 * n**3 / cuda_seconds(lambda: torch.mm(a, b, out=out), iters=20, warmup=5) / 1e12


def products_tflops(linears, attentions, dtype: torch.dtype) -> float:
    """TFLOP/s of a tower's matrix products alone, each shape run as often as in one forward."""
    flops, seconds = 0.0, 0.0
    for r, i, o, n in linears:
        x, w = torch.randn(r, i, device="cuda").to(dtype), torch.randn(o, i, device="cuda").to(dtype)
        seconds += n * cuda_seconds(lambda x=x, w=w: torch.nn.functional.linear(x, w), iters=5)
        flops += 2.0 * r * i * o * n
    for bh, nq, nk, hd, n in attentions:
        seconds += n * cuda_seconds(attention_products(bh, nq, nk, hd, dtype, device="cuda"), iters=5)
        flops += 4.0 * bh * nq * nk * hd * n
    return flops / seconds / 1e12


def tower_inputs(model, modality: str, batch: int, dtype: torch.dtype, seed: int = 0) -> torch.Tensor:
    return random_inputs(model, modality, batch, seed).to("cuda", dtype)


def copy_gbs(n: int = 1 << 28) -> float:
    """The GPU's measured memory bandwidth: bytes read + written per second by a 512 MB bf16 copy."""
    x = torch.empty(n, device="cuda", dtype=torch.bfloat16)
    y = torch.empty_like(x)
    return 2 * x.numel() * x.element_size() / cuda_seconds(lambda: y.copy_(x), iters=20, warmup=5) / 1e9


def bench_temporal(batch: int = 32, frames: int = 8, positions: int = 257 * 16, head_dim: int = 64) -> list[dict]:
    """The temporal attention of the ViT-L/14 video tower alone: Triton kernel configurations and SDPA."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (torch.randn(batch, frames, positions, head_dim, device="cuda", dtype=torch.bfloat16) for _ in "qkv")
    moved = 4 * q.numel() * q.element_size()
    limit = copy_gbs()
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    with torch.inference_mode():
        want = torch.nn.functional.scaled_dot_product_attention(qt.float(), kt.float(), vt.float()).transpose(1, 2)
    contestants = {}
    if temporal.triton_available():
        for block_m in (4, 8, 16, 32):
            for warps in (2, 4, 8):
                out = torch.empty_like(q)
                contestants[f"triton block {block_m} warps {warps}"] = (
                    lambda o=out, b=block_m, w=warps: (temporal.launch_kernel(q, k, v, o, b, w), o)[1])
    contestants["sdpa default"] = lambda: torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)
    for name, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                          ("math", SDPBackend.MATH)):
        def run(backend=backend):
            with sdpa_kernel(backend):
                return torch.nn.functional.scaled_dot_product_attention(qt, kt, vt)
        contestants[f"sdpa {name}"] = run
    rows = []
    for name, fn in contestants.items():
        try:
            with torch.inference_mode():
                got = fn()
                got = got.transpose(1, 2) if got.shape != q.shape else got
                error = float((got.float() - want).abs().max())
                seconds = cuda_seconds(fn, iters=20, warmup=3)
        except Exception as exc:
            rows.append({"contestant": name, "error": repr(exc)[:200]})
            continue
        rows.append({"contestant": name, "ms": seconds * 1e3, "gb_per_s": moved / seconds / 1e9,
                     "of_copy_bandwidth": moved / seconds / 1e9 / limit, "max_abs_error": error,
                     "copy_gb_per_s": limit})
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def bench_tower(modality: str, batches: list[int], compile_batch: int, compiled_only: bool = False,
                dtypes: set[str] | None = None, eager_only: bool = False) -> list[dict]:
    """One tower's rows: bf16 eager at every batch and compiled (`EmbeddingModel.compile_towers`) at
    `compile_batch`; fp16 eager; fp32 and TF32 (the naive path) at `compile_batch`. Timed through `embed`."""
    rows = []
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    base = random_model(vit_l14_configs((modality,)), seed=0).cuda().eval()
    probe = tower_inputs(base, modality, 4 if modality == "video" else 8, torch.float32, seed=1)
    with torch.inference_mode():
        exact = torch.nn.functional.normalize(base.encode_batch(modality, probe).float(), dim=-1)
    peaks = {name: peak_tflops(_DTYPES[name]) for name in ("bf16", "fp16")}
    shapes: dict[int, tuple] = {}  # batch -> the forward's matrix products, recorded on an eager model
    plan = {"bf16": {"eager": batches, "compiled": [compile_batch]}, "fp16": {"eager": batches},
            "fp32": {"eager": [compile_batch]}, "tf32": {"eager": [compile_batch]}}
    if modality == "video":  # the temporal attention through SDPA instead of the Triton kernel
        plan["bf16-sdpa"] = {"eager": [compile_batch], "compiled": [compile_batch]}
    if dtypes and "bf16-frozen" in dtypes:  # compile_towers(freeze=True), the CPU's setting, on request only
        plan["bf16-frozen"] = {"compiled": [compile_batch]}
    if compiled_only:
        plan = {name: {"compiled": [compile_batch]} for name in plan if "compiled" in plan[name]}
    if dtypes:
        plan = {name: modes for name, modes in plan.items() if name in dtypes}
    if eager_only:
        plan = {name: {"eager": modes["eager"]} for name, modes in plan.items() if "eager" in modes}
    for name, modes in plan.items():
        dtype = _DTYPES.get(name.split("-")[0], torch.float32)
        temporal.TEMPORAL_KERNEL = not name.endswith("-sdpa")
        model = base if dtype == torch.float32 else copy.deepcopy(base).to(dtype)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
        with torch.inference_mode():
            cosine = float((exact * torch.nn.functional.normalize(
                model.encode_batch(modality, probe.to(dtype)).float(), dim=-1)).sum(-1).min())
        for mode, sizes in modes.items():
            extra = {}
            if mode == "compiled":
                try:
                    started = time.perf_counter()
                    model.compile_towers([modality], batch_size=compile_batch, freeze=name.endswith("-frozen") or None)
                    model.embed(modality, tower_inputs(model, modality, compile_batch, dtype))
                    extra["cos_vs_fp32"] = float((exact.cpu() * model.embed(modality, probe)).sum(-1).min())
                    extra["compile_s"] = time.perf_counter() - started
                except Exception as exc:  # report it, keep the eager figures
                    rows.append({"modality": modality, "dtype": name, "mode": mode, "error": repr(exc)[:300]})
                    continue
            for batch in sizes:
                x = tower_inputs(model, modality, batch, dtype)
                if batch not in shapes:
                    shapes[batch] = matmul_shapes(model, modality, batch, inputs=x)
                linears, attentions = shapes[batch]
                flops = matmul_flops(linears, attentions) / batch
                seconds = cuda_seconds(lambda m=model, v=x: m.embed(modality, v), iters=8)
                row = {"modality": modality, "dtype": name, "mode": mode, "batch": batch,
                       "items_per_s": batch / seconds, "gflop_per_item": flops / 1e9,
                       "tflops": batch * flops / seconds / 1e12, "cos_vs_fp32": cosine, **extra}
                if name.split("-")[0] in peaks:
                    row["of_peak"] = row["tflops"] / peaks[name.split("-")[0]]
                    if mode == "eager" and batch == compile_batch:
                        row["products_tflops"] = products_tflops(linears, attentions, dtype)
                        row["of_products"] = row["tflops"] / row["products_tflops"]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                del x
        del model
        torch.cuda.empty_cache()
    temporal.TEMPORAL_KERNEL = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    for row in rows:
        row.update({f"peak_{k}_tflops": v for k, v in peaks.items()})
    return rows


def random_unit_host(n: int, dim: int, seed: int, chunk: int = 1 << 20) -> np.ndarray:
    """(n, dim) float32 unit vectors in host memory, drawn on the GPU chunk by chunk."""
    out = np.empty((n, dim), np.float32)
    gen = torch.Generator(device="cuda").manual_seed(seed)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        x = torch.randn(rows, dim, device="cuda", generator=gen)
        out[start : start + rows] = torch.nn.functional.normalize(x, dim=1).cpu().numpy()
    return out


def wall(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_search(n: int, dim: int, query_counts: list[int], k: int = 10) -> list[dict]:
    torch.backends.cuda.matmul.allow_tf32 = False
    started = time.perf_counter()
    vectors = random_unit_host(n, dim, seed=0)
    queries = random_unit_host(max(query_counts), dim, seed=1)
    print(f"search data: {n} x {dim} in {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    truth, fp32_seconds = {}, {}
    exact = GemmSearch(vectors, precision="fp32", device="cuda")
    for q in query_counts:
        truth[q] = exact.search(queries[:q], k)[1]
        fp32_seconds[q] = wall(lambda s=exact, q=q: s.search(queries[:q], k), repeat=1)
    del exact
    torch.cuda.empty_cache()
    peak = peak_tflops(torch.bfloat16)
    rows = []
    variants = [("bf16", False), ("bf16", True), ("fp16", True)]
    for precision, on_device in variants:
        started = time.perf_counter()
        searcher = GemmSearch(vectors, precision=precision, device="cuda", exact_on_device=on_device)
        build_s = time.perf_counter() - started
        for q in query_counts:
            seconds = wall(lambda s=searcher, q=q: s.search(queries[:q], k))
            found = searcher.search(queries[:q], k)[1]
            recall = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth[q], strict=True)]))
            bound = gemm_bound_seconds(searcher, q)
            row = {"precision": precision, "exact_on_device": on_device, "n": n, "dim": dim, "queries": q,
                   "seconds": seconds, "queries_per_s": q / seconds, "recall_at_10": recall,
                   "gemm_bound_s": bound, "of_gemm_bound": bound / seconds,
                   "of_peak": 2.0 * q * n * dim / seconds / 1e12 / peak, "fp32_seconds": fp32_seconds[q],
                   "build_s": build_s, "block": searcher.block, "peak_bf16_tflops": peak}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
        single = [wall(lambda s=searcher, i=i: s.search(queries[i : i + 1], k), repeat=1) for i in range(20)]
        rows[-1]["single_query_per_s"] = 1.0 / statistics.median(single)
        del searcher
        torch.cuda.empty_cache()
    return rows


def gemm_bound_seconds(searcher: GemmSearch, q: int) -> float:
    """Seconds of the search's block products alone (same shapes, same dtype, results discarded)."""
    lowp = searcher._lowp
    qb = min(q, searcher.query_block)
    query = torch.randn(qb, lowp.shape[1], device="cuda").to(lowp.dtype)

    def products():
        for start in range(0, len(searcher), searcher.block):
            query @ lowp[start : start + searcher.block].T

    return cuda_seconds(products, iters=3, warmup=1) * (-(-q // searcher.query_block))


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modalities", default="image,audio,video")
    parser.add_argument("--batches", default="image=64,256,512;audio=32,128;video=8,32",
                        help="batch sizes per modality; the largest is also the compiled one")
    parser.add_argument("--search-n", type=int, default=10_000_000)
    parser.add_argument("--queries", default="1000,10000")
    parser.add_argument("--skip", default="", help="stages to skip: temporal, towers, search")
    parser.add_argument("--compiled-only", action="store_true", help="towers: only bf16 compiled, largest batch")
    parser.add_argument("--eager-only", action="store_true", help="towers: leave out the compiled rows")
    parser.add_argument("--dtypes", default="", help="towers: only these rows, e.g. bf16,bf16-sdpa (default: all)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("error: benchmarks/gpu.py needs a CUDA GPU (torch sees none); for the CPU use encode.py")

    props = torch.cuda.get_device_properties(0)
    report: dict = {"gpu": props.name, "sms": props.multi_processor_count, "memory_gb": props.total_memory / 1e9,
                    "cpu": cpu_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
                    "datasheet_tflops": next((v for k, v in DATASHEET_TFLOPS.items() if k in props.name), None),
                    "towers": [], "temporal": [], "search": []}

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(report, indent=2))

    batches = dict(part.split("=") for part in args.batches.split(";"))
    skip = set(args.skip.split(","))
    if "temporal" not in skip:
        try:
            report["temporal"] = bench_temporal()
        except Exception as exc:
            report["temporal"] = [{"error": repr(exc)[:500]}]
        save()
    for modality in args.modalities.split(",") if "towers" not in skip else []:
        sizes = [int(b) for b in batches[modality].split(",")]
        try:
            report["towers"] += bench_tower(modality, sizes, max(sizes), args.compiled_only,
                                            set(filter(None, args.dtypes.split(","))), args.eager_only)
        except Exception as exc:
            report["towers"].append({"modality": modality, "error": repr(exc)[:500]})
            print(f"tower {modality} failed: {exc!r}", file=sys.stderr, flush=True)
        save()
    if "search" not in skip:
        try:
            report["search"] = bench_search(args.search_n, 768, [int(q) for q in args.queries.split(",")])
        except Exception as exc:
            report["search"] = [{"error": repr(exc)[:500]}]
            print(f"search failed: {exc!r}", file=sys.stderr, flush=True)
        save()
    print_tables(report)
    return report


def print_tables(report: dict) -> None:
    print(f"\n{report['gpu']} ({report['sms']} SMs, {report['memory_gb']:.0f} GB), torch {report['torch']}, "
          f"CUDA {report['cuda']}; host {report['cpu']}")
    attention = [r for r in report["temporal"] if "error" not in r]
    if attention:
        print(f"\ntemporal attention of the video tower (32 x 8 frames x 4,112 positions x 64, bf16); measured copy "
              f"bandwidth {attention[0]['copy_gb_per_s']:.0f} GB/s")
        print(f"{'contestant':<28}{'ms':>8}{'GB/s':>8}{'of copy':>9}{'max err':>9}")
        for r in attention:
            print(f"{r['contestant']:<28}{r['ms']:>8.3f}{r['gb_per_s']:>8.0f}{r['of_copy_bandwidth']:>9.0%}"
                  f"{r['max_abs_error']:>9.4f}")
    for r in report["temporal"]:
        if "error" in r:
            print(f"temporal attention failure: {r}")
    towers = [r for r in report["towers"] if "error" not in r]
    if towers:
        r0 = towers[0]
        print(f"measured peak (8192^3 product): bf16 {r0['peak_bf16_tflops']:.0f} TFLOP/s, fp16 "
              f"{r0['peak_fp16_tflops']:.0f}; datasheet dense {report['datasheet_tflops']}")
        print(f"\n{'tower':<7}{'dtype':<10}{'mode':<10}{'batch':>6}{'items/s':>10}{'TFLOP/s':>9}{'of peak':>9}"
              f"{'of datasheet':>13}{'of products':>12}{'cos fp32':>10}{'compile s':>10}")
        for r in towers:
            sheet = r["tflops"] / report["datasheet_tflops"] if report["datasheet_tflops"] else float("nan")
            print(f"{r['modality']:<7}{r['dtype']:<10}{r['mode']:<10}{r['batch']:>6}{r['items_per_s']:>10.1f}"
                  f"{r['tflops']:>9.0f}{r.get('of_peak', float('nan')):>9.0%}{sheet:>13.0%}"
                  f"{r.get('of_products', float('nan')):>12.0%}{r['cos_vs_fp32']:>10.5f}"
                  f"{r.get('compile_s', float('nan')):>10.0f}")
    for r in report["towers"]:
        if "error" in r:
            print(f"tower failure: {r}")
    search = [r for r in report["search"] if "error" not in r]
    if search:
        print(f"\nexact search, {search[0]['n']:,} x {search[0]['dim']} random unit vectors, k=10 "
              f"(GemmSearch on the GPU; fp32 = the same search in fp32, TF32 off)")
        print(f"{'precision':<10}{'fp32 on GPU':>12}{'queries':>9}{'seconds':>9}{'q/s':>10}{'of bound':>9}"
              f"{'of peak':>8}{'recall@10':>10}{'fp32 s':>8}{'1-query q/s':>12}")
        for r in search:
            print(f"{r['precision']:<10}{str(r['exact_on_device']):>12}{r['queries']:>9}{r['seconds']:>9.3f}"
                  f"{r['queries_per_s']:>10.0f}{r['of_gemm_bound']:>9.0%}{r['of_peak']:>8.0%}"
                  f"{r['recall_at_10']:>10.4f}{r['fp32_seconds']:>8.2f}"
                  f"{r.get('single_query_per_s', float('nan')):>12.0f}")
    for r in report["search"]:
        if "error" in r:
            print(f"search failure: {r}")


if __name__ == "__main__":
    main()
