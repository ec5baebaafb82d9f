"""What a search pays to load its encoder: every tower of a multi-checkpoint model, or only those its query needs.

    python benchmarks/load.py --checkpoints /tmp/lb_full [--rounds 2]

`--checkpoints` holds LanguageBind checkpoints in the published format, one folder per modality (full-size random
ones come from `tests/parity/make_fixtures.py --full`); they are loaded together, as `--model languagebind` loads
the five published ones. Each way of loading runs in a fresh process, so that it pays its own reads and
allocations, and reads every weight once after loading (safetensors weights may stay mapped from the file until
first used), as its first encode would. The files stay in the page cache between runs, so these are warm-cache
figures; from a cold disk every gigabyte left unread saves more. Prints seconds and the process's peak resident
memory for every tower (ingest), the text tower alone (a text query), and text plus one tower (a query by file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bindsearch.models.config import from_languagebind_config  # noqa: E402

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from bindsearch.models import load_model
start = time.perf_counter()
model = load_model({spec!r}, device="cpu", modalities={modalities!r})
loaded = time.perf_counter() - start
# Safetensors weights may stay mapped from the file until first used: touch every one, as a first encode would.
total = sum(float(p.sum()) for p in model.parameters())
print(json.dumps({{"load_s": loaded, "seconds": time.perf_counter() - start, "modalities": list(model.modalities),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def load_once(spec: str, modalities: list[str] | None) -> dict:
    code = _CHILD.format(root=str(ROOT), spec=spec, modalities=modalities)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if run.returncode:  # the child's own last words (a ModelLoadError's line), not its source code
        raise SystemExit(f"error: loading {spec} failed: {(run.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, required=True, help="one published-format folder per modality")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    if not args.checkpoints.is_dir():
        raise SystemExit(f"error: {args.checkpoints} is not a folder; give one holding a checkpoint per modality")
    folders = sorted(p for p in args.checkpoints.iterdir() if (p / "config.json").is_file())
    if len(folders) < 2:
        raise SystemExit(f"{args.checkpoints}: needs at least two checkpoint folders (config.json in each)")
    spec = ",".join(str(p) for p in folders)
    last = from_languagebind_config(json.loads((folders[-1] / "config.json").read_text()))[0].modality
    ways = {"every tower (ingest)": None, "text alone (a text query)": ["text"],
            f"text + {last} (a query by file)": [last]}
    best: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, modalities in ways.items():
            result = load_once(spec, modalities)
            if name not in best or result["seconds"] < best[name]["seconds"]:
                best[name] = result
    print(f"\nloading {', '.join(p.name for p in folders)} (first: {folders[0].name}, whose text tower is used); "
          f"best of {args.rounds}, warm page cache")
    print(f"{'what is loaded':<36}{'load_model s':>13}{'+ every weight read s':>23}{'peak RSS MB':>13}  towers")
    rows = []
    for name, result in best.items():
        print(f"{name:<36}{result['load_s']:>13.2f}{result['seconds']:>23.2f}{result['peak_rss_mb']:>13.0f}  "
              f"{', '.join(result['modalities'])}")
        rows.append({"loaded": name, **result})
    return rows


if __name__ == "__main__":
    main()
