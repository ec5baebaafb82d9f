"""Options shared by several commands, defined once."""

from __future__ import annotations

from typing import Annotated

import typer

from bindsearch.models.specs import default_model

ModelOption = Annotated[str, typer.Option(
    "--model", "-m", envvar="BINDSEARCH_MODEL",
    help="Model spec: a checkpoint folder, languagebind:<name>, a Hugging Face repo id, several joined by "
         "commas, bindsearch-mini, or random:tiny.")]
DeviceOption = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
DtypeOption = Annotated[str, typer.Option("--dtype", help="float32, bfloat16 (fast on GPUs and on CPUs with "
                                                          "AVX512-BF16 or AMX) or float16 (GPU).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
BatchOption = Annotated[int, typer.Option("--batch-size", min=1, help="Items per encoder batch.")]

# languagebind when its five checkpoints are cached, else the shipped bindsearch-mini (else random:tiny).
DEFAULT_MODEL = default_model()
