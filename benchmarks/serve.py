"""Query latency, end to end: `bindsearch search` (a new process each query) against `bindsearch serve` (HTTP).

    python benchmarks/serve.py [--queries 10] [--demo demo-data]

Uses the demo's collection (`make demo`, or made here with `python -m bindsearch.demo` when missing) and its own
model. Each query is timed from the client's side: the command's whole run, or the HTTP round trip. Text
queries and a wav (audio -> video; copies outside the collection, so both ways encode it) alternate between the
two ways, and medians are printed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

QUERIES = ["a big red circle", "a small blue star moving up", "something warm at the top left", "a glass sound",
           "a purple cross going down fast", "a large triangle in the centre"]


def ensure_demo(demo: Path, scenes: int) -> Path:
    collection = demo / "collection"
    if not (collection / "items.lance").exists():
        subprocess.run([sys.executable, "-m", "bindsearch.demo", "--out", str(demo), "--scenes", str(scenes)],
                       check=True, stdout=subprocess.DEVNULL)
    return collection


def start_server(collection: Path) -> tuple[subprocess.Popen, str, float]:
    """The server process, its url, and seconds from launch until it answers."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "-c", str(collection), "--port", "0",
                             "--preload", "audio"], stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if not line.startswith("serving "):
        proc.kill()
        raise RuntimeError(f"bindsearch serve did not start: {line}{proc.stderr.read()}")
    return proc, line.split(" at ")[1].split(";")[0], time.perf_counter() - start


def by_command(collection: Path, query: str | Path) -> float:
    args = ["--file", str(query), "--modality", "video"] if isinstance(query, Path) else [query]
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "cli.main", "search", *args, "-c", str(collection), "-k", "10", "--json"],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def by_http(url: str, query: str | Path) -> float:
    start = time.perf_counter()
    if isinstance(query, Path):
        request = urllib.request.Request(f"{url}/search?name={query.name}&modality=video&k=10",
                                         data=query.read_bytes(), method="POST")
    else:
        request = urllib.request.Request(f"{url}/search?q={urllib.parse.quote(query)}&k=10")
    with urllib.request.urlopen(request, timeout=120) as response:
        json.loads(response.read())
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=6, help="queries of each kind")
    parser.add_argument("--demo", type=Path, default=Path("demo-data"))
    parser.add_argument("--scenes", type=int, default=60, help="scenes of a demo made here")
    args = parser.parse_args(argv)
    collection = ensure_demo(args.demo.absolute(), args.scenes)
    outside = Path(tempfile.mkdtemp(prefix="bindsearch-serve-bench-"))
    wavs = []
    for wav in sorted((args.demo.absolute() / "world" / "audio").glob("*.wav"))[: args.queries]:
        wavs.append(outside / wav.name)
        wavs[-1].write_bytes(wav.read_bytes())
    proc, url, startup = start_server(collection)
    times: dict[tuple[str, str], list[float]] = {}
    try:
        for i in range(args.queries):
            for kind, query in (("text", QUERIES[i % len(QUERIES)]), ("audio file", wavs[i % len(wavs)])):
                times.setdefault((kind, "command"), []).append(by_command(collection, query))
                times.setdefault((kind, "serve"), []).append(by_http(url, query))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        for wav in wavs:
            wav.unlink()
        outside.rmdir()
    result = {"server_startup_s": startup}
    print(f"server ready in {startup:.1f} s (model, audio tower and vector indexes loaded)")
    print(f"{'query':<14}{'command (s)':>13}{'serve (ms)':>12}{'ratio':>8}")
    for kind in ("text", "audio file"):
        command, served = statistics.median(times[kind, "command"]), statistics.median(times[kind, "serve"])
        result[kind] = {"command_s": command, "serve_s": served, "ratio": command / served}
        print(f"{kind:<14}{command:>13.2f}{served * 1e3:>12.0f}{command / served:>7.0f}x")
    return result


if __name__ == "__main__":
    main()
