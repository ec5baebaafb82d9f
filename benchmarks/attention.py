"""CPU attention kernels on the ViT-L/14 towers' own attention shapes, side by side in one run.

    python benchmarks/attention.py --threads 2 [--rounds 5] [--dtype bfloat16]

Attention is a tenth of an audio tower's FLOPs (593 tokens) and 2 % of an image tower's (257), but on an AMX CPU
it runs far below the linear layers' rate, so it decides how close the audio tower gets to the machine's limit.
Contestants, each timed in alternation (best of `--rounds`) on the same random q, k, v laid out as the towers lay
them out ((batch, tokens, heads, 64) viewed as (batch, heads, tokens, 64)):

- `sdpa`: `F.scaled_dot_product_attention`, what the towers run (PyTorch's CPU flash kernel), except in bf16 on
  a CPU with bf16 units but no AMX, where they run two batched products and a bf16 softmax
  (`tower.attention_by_products`);
- `sdpa-compiled`: the same inside `torch.compile` (Inductor keeps the ATen kernel);
- `products`: two batched products and a softmax in the inputs' dtype, eager (`tower.attention_by_products`);
- `bmm`: two batched products and a float32 softmax, eager;
- `bmm-compiled`: the same compiled (Inductor may match it back to SDPA);
- `flex-compiled`: `flex_attention` compiled, which Inductor turns into its own C++ template (AMX micro-kernels
  where the CPU has them).

Prints GFLOP/s (4 * batch * heads * tokens^2 * 64 per call), the largest difference from float32 attention, and
the rate of the two bare batched products alone (no softmax) for scale.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import flex_attention

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch.models.tower import attend_by_products  # noqa: E402

# (name, batch x heads as the towers run them at batch 4, tokens): audio 112x1036 in 14x14 patches plus the class
# token, image 224x224, video 8 frames of 224x224 (attention within each frame).
SHAPES = {"audio": (4, 16, 593), "image": (4, 16, 257), "video": (32, 16, 257)}


def bmm_attention(q, k, v, is_causal=False):
    """Attention as two batched products and a float32 softmax (same call signature as SDPA, no causal mask)."""
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return torch.softmax(scores.float(), dim=-1).to(q.dtype) @ v


def _products(q, k, v):
    """The two batched products alone, no scaling or softmax: the rate attention's matrix work could reach."""
    return torch.bmm(torch.bmm(q.flatten(0, 1), k.flatten(0, 1).mT), v.flatten(0, 1))


def _sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def products_attention(q, k, v):
    """The towers' way where SDPA is slow (bf16 on a CPU with bf16 units but no AMX): q scaled, two batched
    products and a softmax in the inputs' dtype, as the reference computes attention, a few items at a time."""
    return attend_by_products(q * q.shape[-1] ** -0.5, k, v)


def contestants() -> dict:
    return {"sdpa": _sdpa, "sdpa-compiled": torch.compile(_sdpa, dynamic=False), "products": products_attention,
            "bmm": bmm_attention,
            "bmm-compiled": torch.compile(bmm_attention, dynamic=False),
            "flex-compiled": torch.compile(flex_attention, dynamic=False)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--tokens", type=int, default=0, help="override every shape's token count (smoke tests)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    rows = []
    print(f"attention, {args.dtype}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"best of {args.rounds} alternating rounds")
    print(f"{'shape':<7}{'contestant':<15}{'ms':>8}{'GFLOP/s':>9}{'max |diff|':>12}")
    for shape in args.shapes.split(","):
        batch, heads, tokens = SHAPES[shape]
        tokens = args.tokens or tokens
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(batch, tokens, heads, 64, generator=g).to(dtype).transpose(1, 2) for _ in range(3))
        exact = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
        flops = 4.0 * batch * heads * tokens * tokens * 64
        runners = {**contestants(), "products alone": _products}
        errors = {}
        for name, fn in list(runners.items()):  # warm-up and compilation; a kernel this torch lacks is dropped
            try:
                out = fn(q, k, v)
            except Exception as error:  # noqa: BLE001 - report and go on with the others
                print(f"{shape:<7}{name:<15} failed: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
                del runners[name]
                continue
            exact_out = name != "products alone"  # not attention: no difference to report
            errors[name] = float((out.float() - exact).abs().max()) if exact_out else float("nan")
        best = dict.fromkeys(runners, float("inf"))
        for _ in range(args.rounds):
            for name, fn in runners.items():
                start = time.perf_counter()
                fn(q, k, v)
                best[name] = min(best[name], time.perf_counter() - start)
        for name, seconds in best.items():
            rows.append({"shape": shape, "contestant": name, "seconds": seconds, "gflops": flops / seconds / 1e9,
                         "max_abs_diff": errors[name]})
            print(f"{shape:<7}{name:<15}{seconds * 1e3:>8.1f}{flops / seconds / 1e9:>9.0f}{errors[name]:>12.1e}")
    return rows


if __name__ == "__main__":
    main()
