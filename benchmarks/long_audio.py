"""Long recordings: read crop by crop (as bindsearch ships) against read whole, in each route a format takes.

    python benchmarks/long_audio.py                       # 20 minutes per format, about two minutes
    python benchmarks/long_audio.py --minutes 60 --formats webm

A stereo 48 kHz recording (a chirp) is written as WAV and FLAC (soundfile reads them, by crop), AAC in .m4a (PyAV
seeks to each crop) and Opus in .webm, raw AAC and WMA (PyAV cannot seek in them to the sample: decoded twice,
counting and then keeping the crops' samples). For each, `media.load("audio", ...)` runs as it ships and with
`LONG_FILE_CROPS` out of reach (the whole file decoded, resampled and cut, as the reference reads it), each in a
child process of its own so that its peak resident memory is its own. Prints seconds, peak memory above the imports
(torch, soundfile, PyAV), and how far the two inputs lie apart (normalised fbank units; the preprocessing parity bar
is 1e-3).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CHILD = """
import json, sys, time
import numpy as np
from bindsearch import media
from bindsearch.media import audio
if sys.argv[2] == "whole":
    audio.LONG_FILE_CROPS = 10**9
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across exec.
peak = lambda: next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024
imported = peak()
start = time.perf_counter()
x = media.load("audio", sys.argv[1])
seconds = time.perf_counter() - start
np.save(sys.argv[3], x.numpy())
print(json.dumps({"seconds": seconds, "peak_mb": peak(), "imports_mb": imported}))
"""

ROUTES = {"wav": "soundfile, by crop", "flac": "soundfile, by crop", "m4a": "PyAV, seeking to each crop",
          "webm": "PyAV, two passes", "aac": "PyAV, two passes", "wma": "PyAV, two passes"}


def recording(path: Path, minutes: float, rate: int = 48000) -> Path:
    """A stereo chirp of `minutes` at `rate`."""
    from bindsearch.media.writers import write_audio

    seconds = minutes * 60
    t = np.arange(int(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 300 * t * (1 + t / seconds))).astype(np.float32)
    return write_audio(path, np.stack([wave, wave / 2], 1), rate)


def run(path: Path, mode: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(out)], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(f"{path.name} ({mode}) failed: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--formats", default=",".join(ROUTES), help=f"comma-separated, of {', '.join(ROUTES)}")
    args = parser.parse_args(argv)
    rows = []
    print(f"{args.minutes:g} minutes of stereo 48 kHz sound per file; each contestant in a process of its own\n")
    print("| format | route | by crop s | whole s | by crop MB | whole MB | max abs diff |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for suffix in args.formats.split(","):
            path = recording(Path(scratch) / f"long.{suffix}", args.minutes)
            crops, whole = (run(path, mode, Path(scratch) / f"{mode}.npy") for mode in ("crops", "whole"))
            apart = float(np.abs(np.load(Path(scratch) / "crops.npy") - np.load(Path(scratch) / "whole.npy")).max())
            print(f"| {suffix} | {ROUTES[suffix]} | {crops['seconds']:.1f} | {whole['seconds']:.1f} | "
                  f"+{crops['peak_mb'] - crops['imports_mb']:.0f} | +{whole['peak_mb'] - whole['imports_mb']:.0f} | "
                  f"{apart:.1e} |", flush=True)
            rows.append({"format": suffix, "crops": crops, "whole": whole, "apart": apart})
            path.unlink()
    return rows


if __name__ == "__main__":
    main()
