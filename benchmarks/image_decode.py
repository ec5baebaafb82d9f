"""Decoding large photos: reduced in the JPEG decoder and resized in uint8 (`PREFILTER`) against the full image.

    python benchmarks/image_decode.py                 # about half a minute
    python benchmarks/image_decode.py --megapixels 12,24,48 --rounds 5

A photo-like test image (smooth shading, sharp edges, fine texture and sensor noise) is written as a JPEG (quality
92) and a PNG at each size. For each, `media.load("image", ...)` runs as it ships (`PREFILTER` = 4) and with the
prefilter off (the full-resolution float resize bindsearch did before), side by side in alternating rounds, each
contestant in a child process of its own so that its peak resident memory is its own. Prints seconds per image
(median of the rounds), peak memory, and how far the tower inputs lie apart (normalised CLIP units; one 8-bit step
of a pixel is about 0.015 of them).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, sys, time
import numpy as np
from bindsearch.media import image
from bindsearch import media
if sys.argv[2] == "off":
    image.PREFILTER = 10**9
start = time.perf_counter()
x = media.load("image", sys.argv[1])
seconds = time.perf_counter() - start
np.save(sys.argv[3], x.numpy())
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024}))
"""


def photo(megapixels: float, seed: int = 0) -> np.ndarray:
    """(h, w, 3) uint8 at 3:2: shading, a few hard-edged shapes, fine stripes and noise."""
    w = int(round((megapixels * 1e6 * 1.5) ** 0.5))
    h = int(round(w / 1.5))
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / h, x / w
    out = np.stack([0.5 + 0.4 * np.sin(3 * x + c) * np.cos(2 * y - c) for c in range(3)], -1)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.03, 0.2)
        out[((x - cx) * 1.5) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 1, 3)
    out += 0.06 * np.sin(2 * np.pi * x * w / 7)[..., None]  # texture finer than the tower's input resolves
    out += rng.normal(0, 0.02, out.shape).astype(np.float32)
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def run(path: Path, mode: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(out)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    from PIL import Image

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", default="12,24")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print("| photo | prefilter | s / image | peak MB | inputs apart: max | mean |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for megapixels in (float(m) for m in args.megapixels.split(",")):
            pixels = photo(megapixels)
            for fmt, suffix, options in (("JPEG", ".jpg", {"quality": 92}), ("PNG", ".png", {})):
                path = folder / f"photo{suffix}"
                Image.fromarray(pixels).save(path, fmt, **options)
                figures: dict[str, list[dict]] = {"on": [], "off": []}
                for _ in range(args.rounds):
                    for mode in ("on", "off"):
                        figures[mode].append(run(path, mode, folder / f"{mode}.npy"))
                on, off = np.load(folder / "on.npy"), np.load(folder / "off.npy")
                apart = np.abs(on - off)
                name = f"{megapixels:g} MP {fmt} ({pixels.shape[1]}x{pixels.shape[0]})"
                for mode in ("on", "off"):
                    seconds = statistics.median(f["seconds"] for f in figures[mode])
                    peak = max(f["peak_mb"] for f in figures[mode])
                    gap = f"{apart.max():.3f} | {apart.mean():.4f}" if mode == "on" else "- | -"
                    print(f"| {name} | {mode} | {seconds:.3f} | {peak:.0f} | {gap} |")


if __name__ == "__main__":
    main()
