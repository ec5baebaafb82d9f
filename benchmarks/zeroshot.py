"""Zero-shot classification with LanguageBind's prompts: K400 (video), ESC-50 (audio), NYU-D (depth),
LLVIP (infrared); top-1, and top-5 with more than 5 classes.

    python benchmarks/zeroshot.py --root ~/data/ESC-50-master --model languagebind:audio_ft
    python benchmarks/zeroshot.py --root ~/data/nyud_scenes --modality depth --dataset nyud

ROOT is ROOT/<class name>/<files>, ESC-50's own layout (meta/esc50.csv + audio/), or ROOT/<modality>/ with
ROOT/scene_class/<stem>.txt.

Same options as `bindsearch bench zeroshot --help`; layouts, JSON keys and results: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.bench import main  # noqa: E402

if __name__ == "__main__":
    main(["zeroshot", *sys.argv[1:]])
