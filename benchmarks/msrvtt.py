"""MSR-VTT 1k-A text<->video retrieval: R@1/5/10, MdR, MnR both ways (paper: text->video R@1 42.7 with
languagebind:video_ft).

    python benchmarks/msrvtt.py --root ~/data/msrvtt --model languagebind:video_ft --out results/msrvtt.json

ROOT holds MSRVTT_JSFUSION_test.csv and {video_id}.mp4 (in ROOT, ROOT/videos/all or ROOT/MSRVTT/videos/all).

Same options as `bindsearch bench msrvtt --help`; layouts, JSON keys and results: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.bench import main  # noqa: E402

if __name__ == "__main__":
    main(["msrvtt", *sys.argv[1:]])
