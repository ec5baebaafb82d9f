"""Ingest speed: `bindsearch index` end to end against the encoder alone, and peak memory over 10,000 files.

    python benchmarks/ingest.py speed                 # ViT-L/14 video + audio towers (random weights)
    python benchmarks/ingest.py speed --videos 8 --audios 16 --rounds 1      # quicker
    python benchmarks/ingest.py speed --long 60 --videos 1 --audios 1       # long files, as 10 s windows
    python benchmarks/ingest.py memory --files 10000  # peak RSS while indexing 10,000 images with bindsearch-mini
    python benchmarks/ingest.py commits --files 1500  # catalog commits: one per batch against one per 5 s
    python benchmarks/ingest.py windows --long 120    # one long recording: 1 decoder process against --workers

`speed` writes generated mp4 clips (3 s, 25 fps, 320 x 240) and 10 s stereo 44.1 kHz wavs, builds the
published LanguageBind shapes with random weights (`models.builtin.vit_l14_configs`; the cost of a real
checkpoint is the same), and times, in alternating rounds so machine noise hits both alike:
- **encoder only**: the same files decoded beforehand, `model.embed` on batches of the collection's batch size;
- **end to end**: `Collection.add` on the folder into a fresh collection: walking, decoding in worker
  processes, encoding, hashing and catalog commits, and the FAISS cache written at the end.
The ratio end-to-end / encoder-only is the share of the encoder's rate that ingest keeps (target >= 85%).
With `--long SECONDS` the files last that long and are indexed as 10 s windows (`WINDOW_SECONDS`); rates are then
windows per second, and the encoder alone gets the same windows decoded beforehand.

`memory` indexes `--files` generated 256 x 256 PNGs with
`bindsearch-mini`, sampling the resident memory of this process and its decoder workers every 20 ms.
Peak minus the resident memory after loading the model is what ingest itself costs (target <= 2 GB,
whatever the collection size).

`windows` indexes one long video (320 x 240, 25 fps) and one long wav (44.1 kHz stereo), `--long` seconds each,
as 10 s windows with `random:tiny`: an encoder so fast that decoding is all that counts, as it is for ViT-L on a
GPU. It compares, in alternating rounds, one decoder process (all a single file got while files were shared out
whole) with `--workers` processes (default 2), which share out a long file's windows.

`commits` indexes `--files` small PNGs with `random:tiny` (an encoder fast enough that the catalog is what
costs: as a GPU makes ViT-L) in batches of 16, alternating three ways: a commit per batch and no compaction
(the way before), a commit per batch then compaction, and a commit per `COMMIT_SECONDS` then compaction. For
each: ingest files/s, the catalog's data files after, a warm text search from a fresh `Collection` (the
median of 10), and an unchanged re-run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bindsearch import media  # noqa: E402
from bindsearch.collection import WINDOW_SECONDS, Collection  # noqa: E402
from bindsearch.media.writers import write_audio, write_image, write_video  # noqa: E402
from bindsearch.models.builtin import random_model, vit_l14_configs  # noqa: E402
from indexes.cpu import cpu_runs_bf16  # noqa: E402


def make_videos(directory: Path, n: int, seconds: float = 3.0, fps: int = 25) -> list[Path]:
    """n mp4 clips of a bright square moving over noise, each with its own seed (frames made as they are written,
    so that a long one takes no more memory than a short one)."""

    def frames(i: int):
        rng = np.random.default_rng(i)
        noise = rng.integers(0, 60, (min(int(seconds * fps), 75), 240, 320, 3), dtype=np.uint8)
        for t in range(int(seconds * fps)):
            frame = noise[t % len(noise)].copy()
            x = (10 * t + 37 * i) % 280
            frame[100:140, x : x + 40] = (255, 200, 40)
            yield frame

    return [write_video(directory / f"clip{i:04d}.mp4", frames(i), fps=fps) for i in range(n)]


def make_audios(directory: Path, n: int, seconds: float = 10.0, rate: int = 44100) -> list[Path]:
    """n stereo wavs: a tone with a seed-dependent pitch plus noise."""
    paths = []
    t = np.arange(int(seconds * rate)) / rate
    for i in range(n):
        rng = np.random.default_rng(i)
        tone = 0.3 * np.sin(2 * np.pi * (220 + 40 * i) * t) + 0.05 * rng.standard_normal(len(t))
        paths.append(write_audio(directory / f"sound{i:04d}.wav", np.stack([tone, tone[::-1]], axis=1), rate))
    return paths


def encoder_only(model, modality: str, tensors: list[torch.Tensor], batch: int) -> float:
    """Items per second of model.embed alone on already-decoded inputs."""
    start = time.perf_counter()
    for first in range(0, len(tensors), batch):
        model.embed(modality, torch.stack(tensors[first : first + batch]))
    return len(tensors) / (time.perf_counter() - start)


def end_to_end(model, modality: str, folder: Path, workdir: Path, workers: int | None) -> tuple[float, object]:
    """Items (files kept whole, and windows of long ones) per second of Collection.add on the folder into a fresh
    collection, and its report."""
    target = Path(tempfile.mkdtemp(prefix="ingest-", dir=workdir))
    try:
        collection = Collection.open(target / "collection", model=model)
        start = time.perf_counter()
        report = collection.add([folder], modality=modality, workers=workers)
        seconds = time.perf_counter() - start
    finally:
        shutil.rmtree(target, ignore_errors=True)
    if report.failed:
        raise RuntimeError(f"{len(report.failed)} generated files failed to index: {report.failed[0]}")
    return (report.new - report.split + report.windows) / seconds, report


def speed(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
    try:
        sets = {}
        if args.videos:
            sets["video"] = make_videos(work / "video", args.videos, **({"seconds": args.long} if args.long else {}))
        if args.audios:
            sets["audio"] = make_audios(work / "audio", args.audios, **({"seconds": args.long} if args.long else {}))
        plan = media.WindowPlan(WINDOW_SECONDS)
        model = random_model(vit_l14_configs(tuple(sets)), spec="random:vit-l14").to(dtype=args.dtype_t)
        model.eval()
        rows = []
        for modality, paths in sets.items():
            batch = model.batch_size[modality]
            start = time.perf_counter()
            tensors = [media.load(modality, p, model.preprocess[modality], window=w) for p in paths
                       for w in plan.windows(media.duration(modality, p)) or [None]]
            decode_rate = len(tensors) / (time.perf_counter() - start)
            encoder_only(model, modality, tensors[:batch], batch)  # warm-up
            best_encoder, best_e2e = 0.0, 0.0
            for _ in range(args.rounds):
                best_encoder = max(best_encoder, encoder_only(model, modality, tensors, batch))
                rate, _ = end_to_end(model, modality, paths[0].parent, work, args.workers)
                best_e2e = max(best_e2e, rate)
                print(f"  {modality}: encoder {best_encoder:.3f}/s, end to end {best_e2e:.3f}/s", file=sys.stderr)
            rows.append(
                {
                    "modality": modality,
                    "files": len(paths),
                    "items": len(tensors),
                    "batch": batch,
                    "decode_one_process_per_s": round(decode_rate, 2),
                    "encoder_only_per_s": round(best_encoder, 4),
                    "end_to_end_per_s": round(best_e2e, 4),
                    "share_of_encoder": round(best_e2e / best_encoder, 3),
                }
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"# {hardware()}; torch {torch.__version__}, {torch.get_num_threads()} threads; model ViT-L/14 "
        f"(random weights) in {args.dtype}; best of {args.rounds} alternating rounds"
        + (f"; files of {args.long:g} s as {WINDOW_SECONDS:g} s windows (rates: windows/s)" if args.long else "")
    )
    print(
        f"{'modality':9} {'files':>5} {'items':>5} {'batch':>5} {'decode/s (1 proc)':>17} {'encoder only/s':>14} "
        f"{'end to end/s':>12} {'share':>6}"
    )
    for r in rows:
        print(
            f"{r['modality']:9} {r['files']:5} {r['items']:5} {r['batch']:5} {r['decode_one_process_per_s']:17.2f} "
            f"{r['encoder_only_per_s']:14.3f} {r['end_to_end_per_s']:12.3f} {r['share_of_encoder']:6.0%}"
        )
    return {"hardware": hardware(), "dtype": args.dtype, "rounds": args.rounds, "long": args.long, "rows": rows}


class RssSampler(threading.Thread):
    """Samples the resident memory of this process plus its descendants every `interval` seconds."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.interval, self.peak, self._done = interval, 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, tree_rss(os.getpid()))
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def tree_rss(pid: int) -> int:
    """Resident bytes of pid and all its descendants (shared pages counted in each: an upper bound)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += next(int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS"))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration):
            continue  # the process ended between listing and reading
    return total


def memory(args: argparse.Namespace) -> dict:
    from bindsearch.models import load_model

    work = Path(tempfile.mkdtemp(prefix="bench-memory-", dir=args.workdir))
    try:
        folder = work / "files"
        start = time.perf_counter()
        rng = np.random.default_rng(0)
        for i in range(args.files):
            pixels = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
            write_image(folder / f"{i // 1000:02d}" / f"img{i:05d}.png", pixels)
        written = time.perf_counter() - start
        model = load_model("bindsearch-mini")
        baseline = tree_rss(os.getpid())
        collection = Collection.open(work / "collection", model=model)
        sampler = RssSampler()
        sampler.start()
        start = time.perf_counter()
        report = collection.add([folder], modality="image", workers=args.workers)
        seconds = time.perf_counter() - start
        peak = sampler.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "hardware": hardware(),
        "files": args.files,
        "written_s": round(written, 1),
        "indexed": report.new,
        "index_s": round(seconds, 1),
        "model_rss_mb": round(baseline / 2**20),
        "peak_rss_mb": round(peak / 2**20),
        "ingest_mb": round((peak - baseline) / 2**20),
    }
    print(f"# {hardware()}; {args.files} images (256 x 256 png) with bindsearch-mini")
    print(
        f"indexed {report.new} files in {seconds:.0f} s ({report.new / seconds:.0f}/s); resident memory: "
        f"{baseline / 2**20:.0f} MB after loading the model, peak {peak / 2**20:.0f} MB "
        f"(process + decoder workers): ingest costs {(peak - baseline) / 2**20:.0f} MB"
    )
    return result


def commits(args: argparse.Namespace) -> dict:
    import statistics

    import bindsearch.ingest as ingest_module
    import indexes.catalog as catalog_module
    from bindsearch import load_model

    work = Path(tempfile.mkdtemp(prefix="bench-commits-", dir=args.workdir))
    rng = np.random.default_rng(0)
    for i in range(args.files):
        write_image(work / "files" / f"{i:05d}.png", rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    model = load_model("random:tiny", device="cpu")
    ways = {"commit per batch": (0.0, False), "commit per batch + compact": (0.0, True),
            f"commit per {ingest_module.COMMIT_SECONDS:g} s + compact": (ingest_module.COMMIT_SECONDS, True)}
    rows: dict[str, list[dict]] = {way: [] for way in ways}
    compact_above = catalog_module.COMPACT_FRAGMENTS
    try:
        for _ in range(args.rounds):
            for way, (seconds, compact) in ways.items():
                catalog_module.COMPACT_FRAGMENTS = compact_above if compact else 1 << 60
                shutil.rmtree(work / "collection", ignore_errors=True)
                start = time.perf_counter()
                report = Collection.open(work / "collection", model=model).add(
                    [work / "files"], batch_size=args.batch_size, workers=args.workers, commit_seconds=seconds)
                ingest = time.perf_counter() - start
                fresh = Collection.open(work / "collection")
                fragments = fresh.catalog.fragments()
                fresh.search(text="warm up", k=10)
                searches = []
                for _ in range(10):
                    start = time.perf_counter()
                    fresh.search(text="a dog barking", k=10)
                    searches.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert Collection.open(work / "collection").add([work / "files"]).unchanged == args.files
                rerun = time.perf_counter() - start
                rows[way].append({"files_per_s": report.new / ingest, "fragments": fragments,
                                  "search_ms": statistics.median(searches) * 1e3, "rerun_s": rerun})
    finally:
        catalog_module.COMPACT_FRAGMENTS = compact_above
        shutil.rmtree(work, ignore_errors=True)
    print(f"# {hardware()}; {args.files} images (32 x 32 png), random:tiny, batches of {args.batch_size}, "
          f"best of {args.rounds}")
    print(f"{'way':<32}{'ingest files/s':>15}{'data files':>11}{'search ms':>10}{'re-run s':>9}")
    result = {}
    for way, runs in rows.items():
        best = {"files_per_s": max(r["files_per_s"] for r in runs), "fragments": runs[-1]["fragments"],
                "search_ms": min(r["search_ms"] for r in runs), "rerun_s": min(r["rerun_s"] for r in runs)}
        result[way] = best
        print(f"{way:<32}{best['files_per_s']:>15.0f}{best['fragments']:>11}{best['search_ms']:>10.0f}"
              f"{best['rerun_s']:>9.2f}")
    return result


def windows(args: argparse.Namespace) -> dict:
    from bindsearch import load_model

    seconds, workers = args.long or 120.0, args.workers or 2
    work = Path(tempfile.mkdtemp(prefix="bench-windows-", dir=args.workdir))
    try:
        folders = {"video": make_videos(work / "video", 1, seconds=seconds)[0].parent,
                   "audio": make_audios(work / "audio", 1, seconds=seconds)[0].parent}
        model = load_model("random:tiny", device="cpu")
        rows = []
        for modality, folder in folders.items():
            best = {1: 0.0, workers: 0.0}
            for _ in range(args.rounds):
                for count in best:
                    rate, report = end_to_end(model, modality, folder, work, count)
                    best[count] = max(best[count], rate)
            rows.append({"modality": modality, "windows": report.windows, "one_worker_per_s": round(best[1], 2),
                         "workers": workers, "workers_per_s": round(best[workers], 2),
                         "speedup": round(best[workers] / best[1], 2)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"# {hardware()}; one {seconds:g} s file per modality as {WINDOW_SECONDS:g} s windows, random:tiny; "
          f"best of {args.rounds} alternating rounds")
    print(f"{'modality':9} {'windows':>7} {'1 worker':>12} {f'{workers} workers':>12} {'speed-up':>8}")
    for r in rows:
        print(f"{r['modality']:9} {r['windows']:7} {r['one_worker_per_s']:10.2f}/s {r['workers_per_s']:10.2f}/s "
              f"{r['speedup']:7.2f}x")
    return {"hardware": hardware(), "seconds": seconds, "rounds": args.rounds, "rows": rows}


def hardware() -> str:
    from search import hardware as describe

    return describe()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["speed", "memory", "commits", "windows"])
    parser.add_argument("--videos", type=int, default=16, help="clips for `speed` (0 skips video)")
    parser.add_argument("--audios", type=int, default=32, help="wavs for `speed` (0 skips audio)")
    parser.add_argument("--long", type=float, default=None,
                        help="`speed` on files this many seconds long, as windows; `windows`: their length (120)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp32"],
                        help="the towers' arithmetic (auto: bf16 where the CPU has bf16 matrix units)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--files", type=int, default=None, help="images for `memory` (10,000), `commits` (1,500)")
    parser.add_argument("--workers", type=int, default=None,
                        help="decoder processes (default: none on two cores; see pipeline.default_workers)")
    parser.add_argument("--batch-size", type=int, default=16, help="encoder batch for `commits`")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.dtype == "auto":
        args.dtype = "bf16" if cpu_runs_bf16() else "fp32"
    args.dtype_t = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    args.files = args.files or (1500 if args.what == "commits" else 10_000)
    result = {"speed": speed, "memory": memory, "commits": commits, "windows": windows}[args.what](args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
