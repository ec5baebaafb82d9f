"""Encoder throughput: our towers vs the reference implementation on the same weights, fp32 and bf16.

    python benchmarks/encode.py --checkpoints /tmp/lb_full --reference-python /work/venvs/ref/bin/python

`--checkpoints` holds published-format checkpoints per modality (`image/`, `audio/`, `video/`), e.g. the
full-size random-weight ones written by `tests/parity/make_fixtures.py --full --out DIR`. Both sides get
the same random preprocessed inputs; the reference runs in its own interpreter (its venv), one process
at a time, so the two never compete for cores. Without `--reference-python` only our figures print.
Prints one table and writes JSON (`--out`).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch import load_model  # noqa: E402

_REFERENCE = r'''
import json, sys, time
import numpy as np, torch
import torchvision.transforms._functional_tensor as ft
sys.modules["torchvision.transforms.functional_tensor"] = ft
import languagebind as lb
ckpt, inputs, out, reps, dtype = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
cfg = json.load(open(ckpt + "/config.json"))
kind = {"LanguageBindImage": "image", "LanguageBindVideo": "video", "LanguageBindAudio": "audio",
        "LanguageBindDepth": "depth", "LanguageBindThermal": "thermal"}[cfg["model_type"]]
model = lb.model_dict[kind].from_pretrained(ckpt).eval()
dt = torch.bfloat16 if dtype == "bf16" else torch.float32
model = model.to(dt)
x = torch.from_numpy(np.load(inputs)).to(dt)
with torch.inference_mode():
    y = model.get_image_features(pixel_values=x)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter(); model.get_image_features(pixel_values=x); best = min(best, time.perf_counter() - t0)
np.save(out, torch.nn.functional.normalize(y.float(), dim=-1).numpy())
print(json.dumps({"seconds": best, "items": x.shape[0]}))
'''


def _time_ours(model, modality: str, x: torch.Tensor, reps: int) -> tuple[float, torch.Tensor]:
    out = model.embed(modality, x)  # warm-up, and the vectors we compare
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        model.embed(modality, x)
        best = min(best, time.perf_counter() - start)
    return x.shape[0] / best, out


def _time_reference(python: str, ckpt: Path, x: torch.Tensor, reps: int, dtype: str) -> tuple[float, np.ndarray]:
    with tempfile.TemporaryDirectory() as tmp:
        inputs, out = Path(tmp) / "x.npy", Path(tmp) / "y.npy"
        np.save(inputs, x.numpy())
        proc = subprocess.run([python, "-c", _REFERENCE, str(ckpt), str(inputs), str(out), str(reps), dtype],
                              capture_output=True, text=True, check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        return result["items"] / result["seconds"], np.load(out)


def _inputs(model, modality: str, batch: int, seed: int = 0) -> torch.Tensor:
    cfg = model.vision_models[modality].config
    shape = (batch, 3, cfg.num_frames, *cfg.input_size) if cfg.num_frames > 1 else (batch, 3, *cfg.input_size)
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, required=True)
    parser.add_argument("--modalities", default="image,audio,video")
    parser.add_argument("--reference-python", default=None)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    torch.manual_seed(0)
    rows = []
    for modality in args.modalities.split(","):
        ckpt = args.checkpoints / modality
        ours = {dt: load_model(str(ckpt), device="cpu", dtype=dt) for dt in ("float32", "bfloat16")}
        name = next(iter(ours["float32"].preprocess))
        batch = max(1, args.batch // 4) if name == "video" else args.batch
        x = _inputs(ours["float32"], name, batch)
        row = {"modality": name, "batch": batch}
        row["ours_fp32"], y32 = _time_ours(ours["float32"], name, x, args.reps)
        row["ours_bf16"], y16 = _time_ours(ours["bfloat16"], name, x, args.reps)
        row["cos_bf16_vs_fp32"] = float((y32 * y16).sum(-1).min())
        if args.reference_python:
            row["ref_fp32"], r32 = _time_reference(args.reference_python, ckpt, x, args.reps, "fp32")
            row["ref_bf16"], _ = _time_reference(args.reference_python, ckpt, x, args.reps, "bf16")
            row["max_abs_diff_vs_ref"] = float(np.abs(r32 - y32.numpy()).max())
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)

    print(f"\nencoder throughput, items/s ({platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__})")
    header = f"{'modality':<9}{'batch':>6}{'ours fp32':>11}{'ours bf16':>11}{'cos bf16':>10}"
    if args.reference_python:
        header += (f"{'ref fp32':>10}{'ref bf16':>10}{'fp32/ref':>10}{'bf16/ref32':>11}{'bf16/ref16':>11}"
                   f"{'max|diff|':>11}")
    print(header)
    for r in rows:
        line = (f"{r['modality']:<9}{r['batch']:>6}{r['ours_fp32']:>11.2f}{r['ours_bf16']:>11.2f}"
                f"{r['cos_bf16_vs_fp32']:>10.4f}")
        if args.reference_python:
            line += (f"{r['ref_fp32']:>10.2f}{r['ref_bf16']:>10.2f}{r['ours_fp32'] / r['ref_fp32']:>10.2f}"
                     f"{r['ours_bf16'] / r['ref_fp32']:>11.2f}{r['ours_bf16'] / r['ref_bf16']:>11.2f}"
                     f"{r['max_abs_diff_vs_ref']:>11.2e}")
        print(line)
    if args.out:
        args.out.write_text(json.dumps({"rows": rows, "torch": torch.__version__, "threads": torch.get_num_threads()},
                                       indent=2))


if __name__ == "__main__":
    main()
