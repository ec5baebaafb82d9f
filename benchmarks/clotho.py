"""Clotho v2 evaluation text<->audio retrieval, 5 captions per clip (paper: text->audio R@1 16.7, R@10 52.0
with languagebind:audio_ft).

    python benchmarks/clotho.py --root ~/data/clotho --model languagebind:audio_ft --out results/clotho.json

ROOT holds clotho_captions_evaluation.csv and evaluation/<file_name>.wav.

Same options as `bindsearch bench clotho --help`; layouts, JSON keys and results: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.bench import main  # noqa: E402

if __name__ == "__main__":
    main(["clotho", *sys.argv[1:]])
