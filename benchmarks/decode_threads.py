"""Decoding in the encoder's own process on one torch thread (as `index` does on two cores or fewer) against torch's
default threads, on idle cores and beside a busy process.

    python benchmarks/decode_threads.py                  # about a minute
    python benchmarks/decode_threads.py --files 60 --rounds 5

Without decoder processes (`default_workers()` is 0 on two cores) each file is decoded between the encoder's
batches, in its process. `bindsearch.pipeline` decodes on one thread there; the other contestant is the way before,
torch's default (a thread per core). Each round runs `encode_files(workers=0)` with `bindsearch-mini` over short
sounds, small photos and large photos (what the encoder adds is the same for both), the two contestants in turn,
first on idle cores and then beside one process that keeps a core busy (a browser, a build). Prints seconds (median
of the rounds) and the ratio taken within each round.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _busy(stop) -> None:
    while not stop.is_set():
        sum(i * i for i in range(10_000))


def make_files(directory: Path, count: int) -> dict[str, list[Path]]:
    """Per kind: `count` 1 s sounds (16 kHz), `count` 640x480 JPEGs, and a few 12-megapixel JPEGs."""
    from bindsearch.media.writers import write_audio, write_image

    rng = np.random.default_rng(0)
    t = np.arange(16_000) / 16_000
    sounds = [write_audio(directory / f"s{i}.wav", 0.3 * np.sin(2 * np.pi * (200 + 20 * i) * t), 16_000)
              for i in range(count)]
    small = [write_image(directory / f"p{i}.jpg", rng.integers(0, 256, (480, 640, 3), np.uint8))
             for i in range(count)]
    large = [write_image(directory / f"l{i}.jpg", rng.integers(0, 256, (3000, 4000, 3), np.uint8))
             for i in range(max(2, count // 10))]
    return {"1 s sounds": sounds, "640x480 photos": small, "12 MP photos": large}


def timed(model, kind: str, files: list[Path], one_thread: bool) -> float:
    from bindsearch import pipeline

    modality = "audio" if kind.endswith("sounds") else "image"
    keep = pipeline._one_thread
    if not one_thread:
        pipeline._one_thread = contextlib.nullcontext
    try:
        start = time.perf_counter()
        for _ in pipeline.encode_files(model, modality, files, workers=0):
            pass
        return time.perf_counter() - start
    finally:
        pipeline._one_thread = keep


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40, help="sounds and small photos per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import torch

    from bindsearch import load_model

    model = load_model("bindsearch-mini", device="cpu", modalities=["audio", "image"])
    print(f"torch threads by default: {torch.get_num_threads()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp), args.files)
        for kind, paths in files.items():
            timed(model, kind, paths[:2], True)  # warm: first calls allocate
        for load in ("idle", "one busy process"):
            stop = multiprocessing.Event()
            busy = multiprocessing.Process(target=_busy, args=(stop,)) if load != "idle" else None
            if busy:
                busy.start()
            try:
                for kind, paths in files.items():
                    one, default, ratios = [], [], []
                    for _ in range(args.rounds):
                        a, b = timed(model, kind, paths, True), timed(model, kind, paths, False)
                        one.append(a)
                        default.append(b)
                        ratios.append(b / a)
                    rows.append({"load": load, "files": f"{len(paths)} {kind}", "one_thread_s": statistics.median(one),
                                 "default_s": statistics.median(default), "ratio": statistics.median(ratios)})
            finally:
                if busy:
                    stop.set()
                    busy.join()
    print("\n| cores | files | one thread s | default threads s | default / one |\n|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['load']} | {row['files']} | {row['one_thread_s']:.3f} | {row['default_s']:.3f} | "
              f"{row['ratio']:.2f}x |")
    return {"rows": rows}


if __name__ == "__main__":
    main()
