"""What this CPU's features are worth: bf16 against fp32, and FAISS's BLAS on the wheel's kernels against ours.

    python benchmarks/cpu_features.py              # 2 threads, best of 3 rounds
    python benchmarks/cpu_features.py --quick      # smaller shapes, 1 round (what the test runs)

bindsearch chooses bf16 only where the CPU multiplies it in hardware (`indexes.cpu.cpu_runs_bf16`), and points the
OpenBLAS inside FAISS's wheel at the CPU's widest kernels (`indexes.cpu.pick_openblas_core`). This measures both
choices against the alternative, each pair side by side in one run, rounds alternating:

- products: one (2,048 x 1,024) x (1,024 x 4,096) matrix product, fp32 and bf16 (torch, as the towers run);
- a training step: forward and backward of a 4-layer, width-128 tower on 128 48x48 images, half the patches
  masked, without and with bf16 autocast (as `bindsearch train` runs it);
- FAISS: flat search of 1,000 queries against 100,000 x 768 vectors, and training a 256-list IVF on 60,000 of
  them, each in a fresh process, once with the kernels the wheel's OpenBLAS picks and once after `import indexes`
  (OpenBLAS reads its core type once, when loaded).

Prints a table and the OpenBLAS core each FAISS process ran; writes JSON with `--out`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bindsearch.models.tower import VisionTower  # noqa: E402
from bindsearch.training import tower_config  # noqa: E402
from bindsearch.training.trainer import masked_features  # noqa: E402
from indexes.cpu import cpu_runs_bf16  # noqa: E402

_FAISS = """
import ctypes, json, sys, time
if sys.argv[1] == "indexes":
    import indexes  # noqa: F401
import faiss
import numpy as np
n, queries, train, threads = (int(a) for a in sys.argv[2:6])
faiss.omp_set_num_threads(threads)
try:  # Linux: the OpenBLAS FAISS's wheel loaded; elsewhere, or a FAISS built on another BLAS, unnamed
    lib = [line.split()[-1] for line in open("/proc/self/maps") if "/libopenblas" in line and "faiss" in line]
except OSError:
    lib = []
core = "?"
if lib:
    name = ctypes.CDLL(lib[0]).openblas_get_corename
    name.restype = ctypes.c_char_p
    core = name().decode()
rng = np.random.default_rng(0)
x = rng.standard_normal((n, 768), dtype=np.float32)
q = rng.standard_normal((queries, 768), dtype=np.float32)
flat = faiss.IndexFlatIP(768)
flat.add(x)
flat.search(q[:64], 10)
start = time.perf_counter()
flat.search(q, 10)
search = time.perf_counter() - start
ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(768), 768, 256, faiss.METRIC_INNER_PRODUCT)
start = time.perf_counter()
ivf.train(x[:train])
print(json.dumps({"core": core, "search_gflops": 2 * queries * n * 768 / search / 1e9,
                  "ivf_train_s": time.perf_counter() - start}))
"""


def product_rate(dtype: torch.dtype, m: int) -> float:
    """GFLOP/s of one (m, 1024) x (1024, 4096) product in `dtype`, best of 5."""
    a, b = torch.randn(m, 1024).to(dtype), torch.randn(4096, 1024).to(dtype)
    torch.nn.functional.linear(a, b)
    best = min(_timed(lambda: torch.nn.functional.linear(a, b)) for _ in range(5))
    return 2 * m * 1024 * 4096 / best / 1e9


def train_step_ms(bf16: bool, batch: int) -> float:
    """Milliseconds of one masked forward and backward pass of a mini tower, median of 5."""
    tower = VisionTower(tower_config(width=128, layers=4, input_size=(48, 48), patch=8))
    x = torch.randn(batch, 3, 48, 48)
    gen = torch.Generator().manual_seed(0)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            features = masked_features(tower, x, 0.5, gen)
        features.float().sum().backward()

    step()
    times = sorted(_timed(step) for _ in range(5))
    return times[2] * 1000


def faiss_run(kernels: str, n: int, queries: int, train: int, threads: int) -> dict:
    """One fresh process: FAISS with the wheel's own kernels ("wheel") or after `import indexes` ("indexes")."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    done = subprocess.run([sys.executable, "-c", _FAISS, kernels, str(n), str(queries), str(train), str(threads)],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small shapes, one round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else args.rounds
    m, batch = (256, 16) if args.quick else (2048, 128)
    n, queries, train = (20_000, 200, 20_000) if args.quick else (100_000, 1000, 60_000)
    torch.set_num_threads(args.threads)
    best: dict[str, float] = {}
    cores: dict[str, str] = {}
    for _ in range(rounds):
        for dtype, name in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
            best[f"product {name}"] = max(best.get(f"product {name}", 0.0), product_rate(dtype, m))
        for bf16, name in ((False, "fp32"), (True, "bf16")):
            key = f"train step {name}"
            best[key] = min(best.get(key, float("inf")), train_step_ms(bf16, batch))
        for kernels in ("wheel", "indexes"):
            run = faiss_run(kernels, n, queries, train, args.threads)
            cores[kernels] = run["core"]
            best[f"faiss search {kernels}"] = max(best.get(f"faiss search {kernels}", 0.0), run["search_gflops"])
            best[f"ivf train {kernels}"] = min(best.get(f"ivf train {kernels}", float("inf")), run["ivf_train_s"])
    rows = [
        ("matrix product, GFLOP/s", "fp32", "bf16", best["product fp32"], best["product bf16"], True),
        ("training step, ms", "fp32", "bf16 autocast", best["train step fp32"], best["train step bf16"], False),
        (f"FAISS flat, {queries:,} x {n:,}, GFLOP/s", cores["wheel"], cores["indexes"],
         best["faiss search wheel"], best["faiss search indexes"], True),
        (f"IVF256 training on {train:,}, s", cores["wheel"], cores["indexes"], best["ivf train wheel"],
         best["ivf train indexes"], False),
    ]
    print(f"# {args.threads} threads, best of {rounds}; cpu_runs_bf16() = {cpu_runs_bf16()}; "
          f"OpenBLAS in FAISS: wheel's {cores['wheel']}, after `import indexes` {cores['indexes']}")
    print(f"{'what':<34} {'A':>10} {'B':>14} {'A':>9} {'B':>9} {'B / A':>7}")
    result = {"threads": args.threads, "rounds": rounds, "cpu_runs_bf16": cpu_runs_bf16(), "rows": []}
    for what, a_name, b_name, a, b, higher_is_better in rows:
        gain = b / a if higher_is_better else a / b
        print(f"{what:<34} {a_name:>10} {b_name:>14} {a:>9.1f} {b:>9.1f} {gain:>6.2f}x")
        result["rows"].append({"what": what, "a": a_name, "b": b_name, "a_value": a, "b_value": b, "b_gain": gain})
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
