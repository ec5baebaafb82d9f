"""Where a bf16 tower's CPU time goes, and what the ways of running it are worth, side by side in one run.

    python benchmarks/cpu_towers.py --modality image --threads 2

ViT-L/14 tower with random weights (`models.builtin.vit_l14_configs`), random preprocessed inputs. Contestants,
timed in alternation (best of `--rounds`):

- `fp32`, `bf16`: the eager tower, its linears through `F.linear`;
- `fp32+packed`, `bf16+packed`: the same with the linears' weights pre-packed for oneDNN (`models/packed.py`), as
  `load_model(dtype=...)` runs them where `packing_pays` (bf16 on CPUs with bf16 units, fp32 on AMD CPUs with
  AVX-512);
- `bf16+compile`: each transformer block through `torch.compile` (fuses norms, GELU and residual adds);
- `bf16+frozen`: `EmbeddingModel.compile_towers`, the whole tower compiled with Inductor's freezing (weights
  folded in as constants and pre-packed for oneDNN, which is how Inductor reaches AMX tiles);
- `bf16+packed+sdpa`: `bf16+packed` with attention through `F.scaled_dot_product_attention` wherever the tower
  would run it as two batched products (`tower.attention_by_products`: bf16 on a CPU with bf16 units but no AMX);
- `bf16+bmm-attn`: a diagnostic, attention as two explicit batched products and a softmax instead of
  `F.scaled_dot_product_attention`, to size what the SDPA CPU kernel costs;
- `bf16+every-row`: a diagnostic, the eager bf16 tower with its last block computing every token's output
  (as the reference does) instead of the class token's alone, to size what skipping that work is worth.

Prints items/s, each one's share of the tower's own matrix products timed alone (the limit), the cosine of
its vectors to fp32, and the top operators of a profile of the eager bf16 tower.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from attention import bmm_attention  # noqa: E402
from encode import gemm_rate, matmul_flops, matmul_shapes, random_inputs  # noqa: E402

from bindsearch.models import tower  # noqa: E402
from bindsearch.models.builtin import random_model, vit_l14_configs  # noqa: E402
from bindsearch.models.packed import pack_linears  # noqa: E402


def contestants(base, modality: str, names: list[str], batch: int):
    """name -> callable on a preprocessed batch, returning unit vectors."""
    bf16 = copy.deepcopy(base).to(torch.bfloat16)
    out = {}
    for name in names:
        if name == "fp32":
            fn = lambda x, m=base: m.embed(modality, x)  # noqa: E731
        elif name == "bf16":
            fn = lambda x, m=bf16: m.embed(modality, x)  # noqa: E731
        elif name in ("fp32+packed", "bf16+packed", "bf16+packed+sdpa"):
            model = copy.deepcopy(base if name == "fp32+packed" else bf16)
            pack_linears(model)
            fn = lambda x, m=model: m.embed(modality, x)  # noqa: E731
            if name.endswith("+sdpa"):
                def fn(x, m=model):  # the choice undone for the call, then restored
                    original = tower.attention_by_products
                    tower.attention_by_products = lambda _: False
                    try:
                        return m.embed(modality, x)
                    finally:
                        tower.attention_by_products = original
        elif name == "bf16+compile":
            model = copy.deepcopy(bf16)
            for layer in model.vision_models[modality].encoder.layers:
                layer.compile()
            fn = lambda x, m=model: m.embed(modality, x)  # noqa: E731
        elif name == "bf16+frozen":
            model = copy.deepcopy(bf16).compile_towers([modality], batch_size=batch)
            fn = lambda x, m=model: m.embed(modality, x)  # noqa: E731
        elif name == "bf16+bmm-attn":  # SDPA everywhere, swapped for bmm_attention; both restored after the call
            def fn(x, m=bf16):
                original, choice = tower.F.scaled_dot_product_attention, tower.attention_by_products
                tower.F.scaled_dot_product_attention, tower.attention_by_products = bmm_attention, lambda _: False
                try:
                    return m.embed(modality, x)
                finally:
                    tower.F.scaled_dot_product_attention, tower.attention_by_products = original, choice
        elif name == "bf16+every-row":
            fn = lambda x, m=bf16: _every_row(m, modality, x)  # noqa: E731
        else:
            raise ValueError(f"unknown contestant {name!r}")
        out[name] = fn
    return out


@torch.inference_mode()
def _every_row(model, modality: str, x: torch.Tensor) -> torch.Tensor:
    """`model.embed(modality, x)` with the tower's last block run on every token, then the class token pooled."""
    vision = model.vision_models[modality]
    tokens, t = vision.tokens(x.to(model.dtype))
    pooled = vision.post_layernorm(vision.encoder(vision.pre_layrnorm(tokens))[:, 0])
    features = model.visual_projections[modality](pooled.view(-1, t, pooled.shape[-1]).mean(dim=1))
    return torch.nn.functional.normalize(features.float(), dim=-1)


def of_gap(got: torch.Tensor, want: torch.Tensor) -> float:
    """The largest 1 - cos(got_i, want_i) as a share of the smallest 1 - cos(want_i, want_j), j != i: how far a
    contestant's vectors stray against how far apart different inputs' vectors lie (random towers put every input
    near one direction, so the cosine alone says little). Needs a batch of two or more."""
    got, want = got.double(), want.double()
    apart = 1 - want @ want.T
    apart.fill_diagonal_(float("inf"))
    return float(((1 - (got * want).sum(-1)) / apart.min(-1).values).max())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", default="image")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--contestants", default="fp32,fp32+packed,bf16,bf16+packed,bf16+packed+sdpa,bf16+compile,"
                        "bf16+frozen,bf16+bmm-attn,bf16+every-row")
    parser.add_argument("--profile", action="store_true",
                        help="print the top operators of the bf16 contestant (else the first one)")
    parser.add_argument("--tiny", action="store_true", help="a tiny random tower instead (smoke test)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")

    configs = vit_l14_configs((args.modality,))
    if args.tiny:
        from bindsearch.models.builtin import tiny_configs

        configs = [c for c in tiny_configs() if c.modality == args.modality]
    base = random_model(configs, seed=0).eval()
    x = random_inputs(base, args.modality, args.batch)
    linears, attentions = matmul_shapes(base, args.modality, args.batch)
    flops = matmul_flops(linears, attentions) / args.batch
    runners = contestants(base, args.modality, args.contestants.split(","), args.batch)
    outputs, compile_s = {}, {}
    with torch.inference_mode():
        reference = base.embed(args.modality, x)
    for name, fn in runners.items():  # warm-up (and compilation)
        started = time.perf_counter()
        with torch.inference_mode():
            outputs[name] = fn(x)
        compile_s[name] = time.perf_counter() - started
    best = dict.fromkeys(runners, float("inf"))
    rates = {"fp32": 0.0, "bf16": 0.0}
    for _ in range(args.rounds):
        for name, fn in runners.items():
            start = time.perf_counter()
            with torch.inference_mode():
                fn(x)
            best[name] = min(best[name], time.perf_counter() - start)
        for dt, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            rates[dt] = max(rates[dt], gemm_rate(linears, attentions, dtype))
    rows = []
    for name in runners:
        dt = name.split("+")[0]
        items = args.batch / best[name]
        rows.append({"contestant": name, "items_per_s": items, "of_products": items * flops / rates[dt],
                     "cos_vs_fp32": float((reference * outputs[name]).sum(-1).min()),
                     "of_gap": of_gap(outputs[name], reference),
                     "warmup_s": compile_s[name]})
    print(f"\n{args.modality} tower, batch {args.batch}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"amx {'amx_bf16' in flags}; products alone: fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s; {flops / 1e9:.0f} GFLOP/item")
    print(f"{'contestant':<15}{'items/s':>9}{'vs fp32':>9}{'of products':>13}{'cos fp32':>10}{'warm-up s':>11}")
    fp32 = next((r["items_per_s"] for r in rows if r["contestant"] == "fp32"), float("nan"))
    for r in rows:
        print(f"{r['contestant']:<15}{r['items_per_s']:>9.2f}{r['items_per_s'] / fp32:>9.2f}"
              f"{r['of_products']:>13.0%}{r['cos_vs_fp32']:>10.5f}{r['warmup_s']:>11.1f}")
    if args.profile:  # the bf16 tower's operators, or the first contestant's where bf16 did not run
        profiled = runners.get("bf16") or next(iter(runners.values()))
        with torch.inference_mode(), torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            profiled(x)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=14, max_name_column_width=40))
    report = {"rows": rows, "threads": torch.get_num_threads(), "batch": args.batch,
              "products_gflops": {k: v / 1e9 for k, v in rates.items()}}
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
