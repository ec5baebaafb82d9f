"""Emergent retrieval between modalities never trained together (NYU-D RGB<->depth, LLVIP visible<->infrared),
and fused A+B zero-shot when classes are known.

    python benchmarks/emergent.py --root ~/data/nyuv2/test --a image --b depth --a-dir rgb --dataset nyud
    python benchmarks/emergent.py --root ~/data/LLVIP --a image --b infrared --a-dir visible/test \\
        --b-dir infrared/test --sample 0.1

Same options as `bindsearch bench emergent --help`; layouts, JSON keys and results: benchmarks/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cli.bench import main  # noqa: E402

if __name__ == "__main__":
    main(["emergent", *sys.argv[1:]])
