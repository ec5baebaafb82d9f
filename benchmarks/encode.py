"""Encoder throughput: our towers vs the reference implementation on the same weights, fp32 and bf16.

    /work/venvs/ref/bin/python benchmarks/encode.py --checkpoints /tmp/lb_full

`--checkpoints` holds published-format checkpoints per modality (`image/`, `audio/`, `video/`), e.g. the
full-size random-weight ones written by `tests/parity/make_fixtures.py --full --out DIR`. Run it with an
interpreter where the reference (`languagebind` on PyPI, see tests/parity/README.md) is importable: both
implementations then load the same checkpoint in one process and are timed in alternation, round after round
(best of `--rounds`), on the same random preprocessed inputs, so machine noise hits both alike. Where the
reference is not importable only our figures print. Prints one table and writes JSON (`--out`).

The limit is the tower's own matrix products timed alone in the same rounds (`gemm_rate`: each linear shape the
faster of `F.linear` and oneDNN pre-packed). Beside the best-of ratios it prints the ratios taken within each
round (median and range), which a host whose speed drifts between rounds cannot bias.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch.models import load_model  # noqa: E402
from bindsearch.models.packed import PackedLinear, unpack_linears  # noqa: E402

_KINDS = {"LanguageBindImage": "image", "LanguageBindVideo": "video", "LanguageBindAudio": "audio",
          "LanguageBindDepth": "depth", "LanguageBindThermal": "thermal"}


def _reference(stub_media: bool = False):
    """The reference package, or None; it needs an old torchvision alias to import. `stub_media` stands in
    empty modules for the media libraries its processors import (decord, pytorchvideo), so that its model
    code runs where those are not installed: the benchmark feeds preprocessed tensors and never calls them."""
    try:
        import torchvision.transforms._functional_tensor as ft

        sys.modules.setdefault("torchvision.transforms.functional_tensor", ft)
        if stub_media:
            install_media_stubs()
        import languagebind
    except ImportError as exc:  # said, not passed over: the table then has our columns alone
        print(f"the reference (the languagebind package) cannot be imported here ({exc}): our figures alone; run "
              "with the reference's environment, and --stub-reference-media where decord or pytorchvideo is the "
              "module missing", file=sys.stderr)
        return None
    return languagebind


def install_media_stubs(packages: tuple[str, ...] = ("decord", "pytorchvideo")) -> None:
    """Make `import X` and `from X.y import Z` succeed for `packages` where they are missing: every module
    attribute is a stand-in that absorbs attribute access and calls (`decord.bridge.set_bridge("torch")` runs
    at the reference's import time)."""
    import importlib.abc
    import importlib.machinery
    import importlib.util
    import types

    class _Stub:
        def __getattr__(self, name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Stub()

        def __call__(self, *args, **kwargs):
            return _Stub()

    class _Module(types.ModuleType):
        def __getattr__(self, name: str):
            if name.startswith("__"):
                raise AttributeError(name)
            return _Stub()

    class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
        def find_spec(self, fullname, path=None, target=None):
            if fullname.split(".")[0] in packages:
                return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
            return None

        def create_module(self, spec):
            return _Module(spec.name)

        def exec_module(self, module):
            module.__path__ = []

    missing = tuple(p for p in packages if importlib.util.find_spec(p) is None)
    if missing:
        packages = missing
        sys.meta_path.append(_Finder())


def _timed(fn, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    with torch.inference_mode():
        y = fn(x)
    return time.perf_counter() - start, y


def random_inputs(model, modality: str, batch: int, seed: int = 0) -> torch.Tensor:
    cfg = model.vision_models[modality].config
    shape = (batch, 3, cfg.num_frames, *cfg.input_size) if cfg.num_frames > 1 else (batch, 3, *cfg.input_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def matmul_flops(linears: list[tuple[int, ...]], attentions: list[tuple[int, ...]]) -> float:
    """Floating-point operations of the recorded matrix products (linears, and attention's two products)."""
    return sum(2.0 * r * i * o * n for r, i, o, n in linears) + sum(4.0 * bh * nq * nk * hd * n
                                                                   for bh, nq, nk, hd, n in attentions)


def matmul_shapes(
    model, modality: str, batch: int, inputs: torch.Tensor | None = None
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """The matrix products of one eager forward of `batch` items (random ones, or `inputs`, already on the
    model's device and dtype), recorded by hooks: (rows, in, out, count) of every nn.Linear call, and
    (batch*heads, queries, keys, head_dim, count) of every attention call (q @ k.T, then @ v; one query per
    item in the last block, which computes only the pooled row). It runs `encode_batch`, so a model whose
    towers are compiled still reports its products."""
    from bindsearch.models.tower import Attention

    linears: dict[tuple[int, int, int], int] = {}
    attentions: dict[tuple[int, int, int, int], int] = {}

    def on_linear(module, inputs, _output):
        key = (inputs[0].numel() // inputs[0].shape[-1], module.in_features, module.out_features)
        linears[key] = linears.get(key, 0) + 1

    def on_attention(module, inputs, kwargs, _output):
        b, n, d = inputs[0].shape
        key = (b * module.heads, n if kwargs.get("rows") is None else 1, n, d // module.heads)
        attentions[key] = attentions.get(key, 0) + 1

    handles = [m.register_forward_hook(on_linear) for m in model.modules()
               if isinstance(m, (torch.nn.Linear, PackedLinear))]
    handles += [m.register_forward_hook(on_attention, with_kwargs=True)
                for m in model.modules() if isinstance(m, Attention)]
    try:
        with torch.inference_mode():
            if inputs is None:
                inputs = random_inputs(model, modality, batch).to(model.device, model.dtype)
            model.encode_batch(modality, inputs)
    finally:
        for h in handles:
            h.remove()
    return [(*k, n) for k, n in linears.items()], [(*k, n) for k, n in attentions.items()]


def _linear_products(r: int, i: int, o: int, dtype: torch.dtype) -> list:
    """Ways to run one linear shape: ATen's `F.linear`, and oneDNN with its weight pre-packed (what Inductor's
    freezing runs; on an AMX CPU the faster one), where this build has it."""
    x, w = torch.randn(r, i).to(dtype), torch.randn(o, i).to(dtype)
    ways = [lambda: torch.nn.functional.linear(x, w)]
    try:
        packed = torch.ops.mkldnn._reorder_linear_weight(w, r)
        torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
        ways.append(lambda: torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], ""))
    except (AttributeError, RuntimeError):
        pass
    return ways


def gemm_rate(linears: list[tuple[int, ...]], attentions: list[tuple[int, ...]], dtype: torch.dtype) -> float:
    """FLOP/s of the tower's matrix products alone, each run as often as in the forward: the linear shapes
    (each the faster of `F.linear` and oneDNN pre-packed) and, when `attentions` is given, the two batched
    products of each attention (scores and mixing)."""
    flops, seconds = 0.0, 0.0
    for r, i, o, n in linears:
        fastest = float("inf")
        for product in _linear_products(r, i, o, dtype):
            product()  # warm-up
            start = time.perf_counter()
            for _ in range(n):
                product()
            fastest = min(fastest, time.perf_counter() - start)
        seconds += fastest
        flops += 2.0 * r * i * o * n
    for bh, nq, nk, hd, n in attentions:
        product = attention_products(bh, nq, nk, hd, dtype)
        product()  # warm-up
        start = time.perf_counter()
        for _ in range(n):
            product()
        seconds += time.perf_counter() - start
        flops += 4.0 * bh * nq * nk * hd * n
    return flops / seconds


def attention_products(bh: int, nq: int, nk: int, hd: int, dtype: torch.dtype, device: str = "cpu"):
    """One attention's two batched products on random operands, no softmax: (q @ k.T) @ v."""
    q, kt, v = (torch.randn(bh, *shape, device=device).to(dtype) for shape in ((nq, hd), (hd, nk), (nk, hd)))
    return lambda: torch.bmm(torch.bmm(q, kt), v)


_RATIOS = (("ours_bf16", "ref_fp32"), ("ours_compiled", "ref_fp32"), ("ours_compiled", "ref_bf16"),
           ("ours_bf16", "ref_bf16"), ("ours_fp32", "ref_fp32"))


def _round_ratios(per_round: dict[str, list[float]]) -> dict[str, list[float]]:
    """Speed ratios taken within each round (the contestants ran back to back), sorted: on a host whose speed
    drifts (a shared machine, AMX units busy elsewhere) these say more than ratios of each one's best round."""
    out = {}
    for fast, slow in _RATIOS:
        if per_round.get(fast) and per_round.get(slow):
            out[f"{fast}/{slow}"] = sorted(s / f for f, s in zip(per_round[fast], per_round[slow], strict=True))
    return out


def quantized(model):
    """The model with every nn.Linear dynamically quantised to int8 (weights per channel, activations per call)."""
    from torch.ao.quantization import quantize_dynamic

    unpack_linears(model)
    return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--modalities", default="image,audio,video")
    parser.add_argument("--batch", type=int, default=4, help="items per call (video: a quarter of it)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--int8", action="store_true", help="also time dynamic int8 quantisation of the linears")
    parser.add_argument("--compile", action="store_true",
                        help="also time bf16 through EmbeddingModel.compile_towers (Inductor with freezing)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--stub-reference-media", action="store_true",
                        help="import the reference with its media libraries stubbed (where they are not installed)")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    lb = _reference(stub_media=args.stub_reference_media)
    rows = []
    for modality in args.modalities.split(","):
        ckpt = args.checkpoints / modality
        ours32 = load_model(str(ckpt), device="cpu", dtype="float32")
        ours16 = load_model(str(ckpt), device="cpu", dtype="bfloat16")
        name = next(iter(ours32.preprocess))
        batch = max(1, args.batch // 4) if name == "video" else args.batch
        x = random_inputs(ours32, name, batch)
        ours8 = quantized(load_model(str(ckpt), device="cpu", dtype="float32")) if args.int8 else None
        linears, attentions = matmul_shapes(ours32, name, batch)
        flops = matmul_flops(linears, attentions) / batch  # per item; the patch embedding (~0.2%) aside
        runners = {"ours_fp32": lambda v, m=ours32, n=name: m.embed(n, v),
                   "ours_bf16": lambda v, m=ours16, n=name: m.embed(n, v)}
        if ours8 is not None:
            runners["ours_int8"] = lambda v, m=ours8, n=name: m.embed(n, v)
        if args.compile:
            compiled = load_model(str(ckpt), device="cpu", dtype="bfloat16").compile_towers(batch_size=batch)
            runners["ours_compiled"] = lambda v, m=compiled, n=name: m.embed(n, v)
        # The limit: the same matrix products alone, timed as contestants (its "output" is a rate).
        for dt, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
            runners[f"gemm_{dt}"] = lambda v, d=dtype, s=linears: gemm_rate(s, [], d)
            runners[f"matmul_{dt}"] = lambda v, d=dtype, s=linears, a=attentions: gemm_rate(s, a, d)
        if lb is not None:
            kind = _KINDS[json.loads((ckpt / "config.json").read_text())["model_type"]]
            ref32 = lb.model_dict[kind].from_pretrained(str(ckpt)).eval()
            ref16 = lb.model_dict[kind].from_pretrained(str(ckpt)).eval().to(torch.bfloat16)
            runners["ref_fp32"] = lambda v, m=ref32: torch.nn.functional.normalize(
                m.get_image_features(pixel_values=v).float(), dim=-1)
            runners["ref_bf16"] = lambda v, m=ref16: torch.nn.functional.normalize(
                m.get_image_features(pixel_values=v.bfloat16()).float(), dim=-1)
        best = dict.fromkeys(runners, float("inf"))
        per_round: dict[str, list[float]] = {key: [] for key in runners}
        rates = dict.fromkeys(("gemm_fp32", "gemm_bf16", "matmul_fp32", "matmul_bf16"), 0.0)
        outputs, warmup = {}, {}
        for key, fn in runners.items():  # warm-up (compilation too), and the vectors we compare
            warmup[key], outputs[key] = _timed(fn, x)
        print(json.dumps({"modality": name, "warmup_s": warmup}), file=sys.stderr, flush=True)
        for round_ in range(args.rounds):  # alternate, so noise falls on every contestant alike
            for key, fn in runners.items():
                seconds, out = _timed(fn, x)
                if key in rates:
                    rates[key] = max(rates[key], out)
                else:
                    best[key] = min(best[key], seconds)
                    per_round[key].append(seconds)
            # Progress, so that a run stopped at a time limit still leaves its figures so far.
            print(json.dumps({"modality": name, "round": round_ + 1, "items_per_s": {k: batch / t for k, t in
                              best.items()}, "gflops": {k: v / 1e9 for k, v in rates.items()}}),
                  file=sys.stderr, flush=True)
        row = {"modality": name, "batch": batch, **{k: batch / t for k, t in best.items() if k not in rates}}
        row["gflop_per_item"] = flops / 1e9
        row.update({f"{k}_gflops": v / 1e9 for k, v in rates.items()})
        for dtype in ("fp32", "bf16"):  # share of the matrix rate the whole tower reaches
            row[f"ours_{dtype}_of_gemm"] = row[f"ours_{dtype}"] * flops / rates[f"gemm_{dtype}"]
            row[f"ours_{dtype}_of_matmul"] = row[f"ours_{dtype}"] * flops / rates[f"matmul_{dtype}"]
        row["cos_bf16_vs_fp32"] = float((outputs["ours_fp32"] * outputs["ours_bf16"]).sum(-1).min())
        if ours8 is not None:
            row["cos_int8_vs_fp32"] = float((outputs["ours_fp32"] * outputs["ours_int8"]).sum(-1).min())
        if args.compile:
            row["cos_compiled_vs_fp32"] = float((outputs["ours_fp32"] * outputs["ours_compiled"]).sum(-1).min())
            row["compiled_of_gemm"] = row["ours_compiled"] * flops / rates["gemm_bf16"]
            row["compiled_of_matmul"] = row["ours_compiled"] * flops / rates["matmul_bf16"]
            row["compile_s"] = warmup["ours_compiled"]
        row["round_ratios"] = _round_ratios(per_round)
        if lb is not None:
            row["max_abs_diff_vs_ref"] = float((outputs["ours_fp32"] - outputs["ref_fp32"]).abs().max())
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del runners, ours32, ours16, ours8
        if args.compile:
            del compiled
        gc.collect()

    print(f"\nencoder throughput, items/s ({platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; best of {args.rounds} alternating rounds)")
    header = f"{'modality':<9}{'batch':>6}{'ours fp32':>11}{'ours bf16':>11}{'cos bf16':>10}"
    if lb is not None:
        header += (f"{'ref fp32':>10}{'ref bf16':>10}{'fp32/ref':>10}{'bf16/ref32':>11}{'bf16/ref16':>11}"
                   f"{'max|diff|':>11}")
    print(header)
    for r in rows:
        line = (f"{r['modality']:<9}{r['batch']:>6}{r['ours_fp32']:>11.2f}{r['ours_bf16']:>11.2f}"
                f"{r['cos_bf16_vs_fp32']:>10.4f}")
        if lb is not None:
            line += (f"{r['ref_fp32']:>10.2f}{r['ref_bf16']:>10.2f}{r['ours_fp32'] / r['ref_fp32']:>10.2f}"
                     f"{r['ours_bf16'] / r['ref_fp32']:>11.2f}{r['ours_bf16'] / r['ref_bf16']:>11.2f}"
                     f"{r['max_abs_diff_vs_ref']:>11.2e}")
        print(line)
    print("\nagainst the machine's matrix rate on each tower's own linear shapes (measured in the same rounds)")
    print("(GEMM: the linear layers' shapes only; all matmuls: with attention's batched products; GFLOP/s)")
    print(f"{'modality':<9}{'GFLOP/item':>11}{'GEMM fp32':>10}{'GEMM bf16':>10}{'fp32 share':>11}{'bf16 share':>11}"
          f"{'all bf16':>9}{'bf16 share':>11}" + (f"{'int8/s':>8}{'cos int8':>9}" if args.int8 else ""))
    for r in rows:
        line = (f"{r['modality']:<9}{r['gflop_per_item']:>11.1f}{r['gemm_fp32_gflops']:>10.0f}"
                f"{r['gemm_bf16_gflops']:>10.0f}{r['ours_fp32_of_gemm']:>11.0%}{r['ours_bf16_of_gemm']:>11.0%}"
                f"{r['matmul_bf16_gflops']:>9.0f}{r['ours_bf16_of_matmul']:>11.0%}")
        if args.int8:
            line += f"{r['ours_int8']:>8.2f}{r['cos_int8_vs_fp32']:>9.4f}"
        print(line)
    if args.compile:
        print("\nbf16 compiled (EmbeddingModel.compile_towers: Inductor, freezing), same rounds")
        print(f"{'modality':<9}{'items/s':>9}{'/ eager':>9}" + (f"{'/ ref32':>9}{'/ ref16':>9}" if lb else "")
              + f"{'GEMM share':>11}{'all share':>10}{'cos fp32':>10}{'compile s':>10}")
        for r in rows:
            line = f"{r['modality']:<9}{r['ours_compiled']:>9.2f}{r['ours_compiled'] / r['ours_bf16']:>9.2f}"
            if lb:
                line += f"{r['ours_compiled'] / r['ref_fp32']:>9.2f}{r['ours_compiled'] / r['ref_bf16']:>9.2f}"
            line += (f"{r['compiled_of_gemm']:>11.0%}{r['compiled_of_matmul']:>10.0%}"
                     f"{r['cos_compiled_vs_fp32']:>10.4f}{r['compile_s']:>10.1f}")
            print(line)
    if lb is not None and args.rounds > 1:
        print("\nratios within each round (median, and the range over rounds)")
        for r in rows:
            for name, ratios in r["round_ratios"].items():
                print(f"{r['modality']:<9}{name:<28}{statistics.median(ratios):>7.2f}  "
                      f"({ratios[0]:.2f}-{ratios[-1]:.2f})")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads(),
                                        "rounds": args.rounds}, indent=2))
    return rows


if __name__ == "__main__":
    try:
        from cli.main import run_reporting_errors  # a missing model or folder: one error line
    except ImportError:  # only the library importable (the reference's environment)
        main()
    else:
        run_reporting_errors(main)
