"""Encoder throughput: our towers vs the reference implementation on the same weights, fp32 and bf16.

    /work/venvs/ref/bin/python benchmarks/encode.py --checkpoints /tmp/lb_full

`--checkpoints` holds published-format checkpoints per modality (`image/`, `audio/`, `video/`), e.g. the
full-size random-weight ones written by `tests/parity/make_fixtures.py --full --out DIR`. Run it with an
interpreter where the reference (`languagebind` on PyPI, see tests/parity/README.md) is importable: both
implementations then load the same checkpoint in one process and are timed in alternation, round after round
(best of `--rounds`), on the same random preprocessed inputs, so machine noise hits both alike. Where the
reference is not importable only our figures print. Prints one table and writes JSON (`--out`).
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch.models import load_model  # noqa: E402

_KINDS = {"LanguageBindImage": "image", "LanguageBindVideo": "video", "LanguageBindAudio": "audio",
          "LanguageBindDepth": "depth", "LanguageBindThermal": "thermal"}


def _reference():
    """The reference package, or None; it needs an old torchvision alias to import."""
    try:
        import torchvision.transforms._functional_tensor as ft

        sys.modules.setdefault("torchvision.transforms.functional_tensor", ft)
        import languagebind
    except ImportError:
        return None
    return languagebind


def _timed(fn, x: torch.Tensor) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    with torch.inference_mode():
        y = fn(x)
    return time.perf_counter() - start, y


def _inputs(model, modality: str, batch: int, seed: int = 0) -> torch.Tensor:
    cfg = model.vision_models[modality].config
    shape = (batch, 3, cfg.num_frames, *cfg.input_size) if cfg.num_frames > 1 else (batch, 3, *cfg.input_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--modalities", default="image,audio,video")
    parser.add_argument("--batch", type=int, default=4, help="items per call (video: a quarter of it)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    lb = _reference()
    rows = []
    for modality in args.modalities.split(","):
        ckpt = args.checkpoints / modality
        ours32 = load_model(str(ckpt), device="cpu", dtype="float32")
        ours16 = load_model(str(ckpt), device="cpu", dtype="bfloat16")
        name = next(iter(ours32.preprocess))
        batch = max(1, args.batch // 4) if name == "video" else args.batch
        x = _inputs(ours32, name, batch)
        runners = {"ours_fp32": lambda v, m=ours32, n=name: m.embed(n, v),
                   "ours_bf16": lambda v, m=ours16, n=name: m.embed(n, v)}
        if lb is not None:
            kind = _KINDS[json.loads((ckpt / "config.json").read_text())["model_type"]]
            ref32 = lb.model_dict[kind].from_pretrained(str(ckpt)).eval()
            ref16 = lb.model_dict[kind].from_pretrained(str(ckpt)).eval().to(torch.bfloat16)
            runners["ref_fp32"] = lambda v, m=ref32: torch.nn.functional.normalize(
                m.get_image_features(pixel_values=v).float(), dim=-1)
            runners["ref_bf16"] = lambda v, m=ref16: torch.nn.functional.normalize(
                m.get_image_features(pixel_values=v.bfloat16()).float(), dim=-1)
        best = dict.fromkeys(runners, float("inf"))
        outputs = {}
        for key, fn in runners.items():  # warm-up, and the vectors we compare
            outputs[key] = _timed(fn, x)[1]
        for _ in range(args.rounds):  # alternate, so noise falls on every contestant alike
            for key, fn in runners.items():
                best[key] = min(best[key], _timed(fn, x)[0])
        row = {"modality": name, "batch": batch, **{k: batch / t for k, t in best.items()}}
        row["cos_bf16_vs_fp32"] = float((outputs["ours_fp32"] * outputs["ours_bf16"]).sum(-1).min())
        if lb is not None:
            row["max_abs_diff_vs_ref"] = float((outputs["ours_fp32"] - outputs["ref_fp32"]).abs().max())
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
        del runners, ours32, ours16
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
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads(),
                                        "rounds": args.rounds}, indent=2))


if __name__ == "__main__":
    main()
