"""`bindsearch train`: fit a modality tower to the frozen MiniLM text anchor; reproduce bindsearch-mini."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(help="Train towers against the frozen text anchor (LanguageBind's recipe, small).\n\n"
                       "Example: bindsearch train tower pairs.csv --modality depth --out runs/depth --steps 600",
                  no_args_is_help=True)


@app.callback()
def train() -> None:
    """Train towers against the frozen text anchor (LanguageBind's recipe, small)."""


def _progress(record: dict[str, Any]) -> None:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()]
    typer.echo("  " + " ".join(parts), err=True)


@app.command(no_args_is_help=True)
def tower(
    pairs: Annotated[Path, typer.Argument(help="CSV with columns path,caption (several rows per file allowed; "
                                               "optional column group).")],
    modality: Annotated[str, typer.Option("--modality", help="image, video, audio, depth, infrared, or the "
                                                              "name in --modality-config.")],
    out: Annotated[Path, typer.Option("--out", help="Checkpoint folder (load it with --model OUT).")],
    val: Annotated[Path | None, typer.Option("--val", help="Validation CSV (default: hold out 10% of 20 files or "
                                                           "more; fewer are validated on the pairs they train on).")
                   ] = None,
    modality_config: Annotated[Path | None, typer.Option(
        "--modality-config", help="JSON for a new modality: name, adapter (array|image), extensions, "
                                  "value_range, preprocess.")] = None,
    steps: Annotated[int, typer.Option(min=1, help="Optimizer steps.")] = 1000,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Pairs per optimizer step (InfoNCE needs "
                                                                      "two or more).")] = 128,
    accumulate: Annotated[int, typer.Option(min=1, help="Micro-batches per step (gradient accumulation).")] = 1,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up then cosine).")] = 1e-3,
    warmup: Annotated[int, typer.Option(min=0, help="Warm-up steps.")] = 50,
    lora_rank: Annotated[int, typer.Option("--lora-rank", min=0, help="LoRA rank on attention projections; 0 = full "
                                                               "fine-tuning.")] = 0,
    mask_ratio: Annotated[float, typer.Option("--mask-ratio", min=0.0, max=0.95,
                                              help="Share of patch tokens dropped.")] = 0.5,
    init: Annotated[str | None, typer.Option(help="Start from this mini checkpoint's tower (e.g. "
                                                   "bindsearch-mini); needed for LoRA.")] = None,
    init_modality: Annotated[str | None, typer.Option("--init-modality", help="Which tower of --init (default: "
                                                                              "--modality).")] = None,
    width: Annotated[int, typer.Option(min=32, help="Tower width (heads = width / 32).")] = 128,
    layers: Annotated[int, typer.Option(min=1, help="Tower layers.")] = 4,
    patch: Annotated[int, typer.Option(min=1, help="Patch side (px, or mel bins x frames for audio).")] = 8,
    threads: Annotated[int, typer.Option(min=1, help="Torch threads (1 is fastest on a busy 2-core machine).")] = 1,
    val_every: Annotated[int, typer.Option("--val-every", min=1, help="Validate every N steps.")] = 200,
    save_every: Annotated[int, typer.Option("--save-every", min=1, help="Checkpoint every N steps.")] = 200,
    bf16: Annotated[bool | None, typer.Option("--bf16/--no-bf16", help="bfloat16 autocast (default: where the "
                                                       "CPU has bf16 matrix units: AVX512-BF16, AMX or Arm's "
                                                       "BF16).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from OUT/train_state.pt when present.")] = True,
    seed: Annotated[int, typer.Option(min=0, help="Seed for weights, batches and masks.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")] = False,
) -> None:
    """Train one tower on PAIRS and write a checkpoint that `--model OUT` loads.

    Example: bindsearch train tower pairs.csv --modality depth --out runs/depth --steps 600
    """
    from bindsearch.models.config import canonical_modality
    from bindsearch.training.trainer import SMALL_INPUT, default_tower, read_modality_config, train_pairs

    if lora_rank and not init:  # adapters on a random, frozen tower learn next to nothing
        raise typer.BadParameter("LoRA adapts a trained tower: give --init (e.g. bindsearch-mini) with --lora-rank")
    input_config, prep = read_modality_config(modality_config) if modality_config else (None, None)
    if input_config is None:  # say so before any work: a new modality needs --modality-config
        try:
            modality = canonical_modality(modality)
        except ValueError as exc:
            raise ValueError(f"{exc}; or describe a new one with --modality-config") from None
        if modality == "text":  # the anchor: frozen, never trained
            raise typer.BadParameter("text is the frozen anchor the towers are trained to meet; train a media "
                                     "modality (image, video, audio, depth, infrared)", param_hint="--modality")
    prep = prep or SMALL_INPUT
    if input_config is not None and input_config.name != modality:
        raise ValueError(f"--modality {modality} but {modality_config} describes {input_config.name}")
    try:
        result = train_pairs(pairs, modality, out, val_csv=val, preprocess=prep, input_config=input_config,
                             tower=default_tower(modality, prep, width, layers, patch), threads=threads,
                             resume=resume, log=_progress, steps=steps, batch_size=batch_size, accumulate=accumulate,
                             lr=lr, warmup=warmup, lora_rank=lora_rank, mask_ratio=mask_ratio, init=init,
                             init_modality=init_modality, val_every=val_every, save_every=save_every, bf16=bf16,
                             seed=seed)
    except KeyboardInterrupt:
        state = out / "train_state.pt"
        saved = "" if not state.is_file() else " from its last checkpoint"
        typer.echo(f"\ninterrupted: run the same command again to go on{saved} (checkpoints every {save_every} "
                   "steps)", err=True)
        raise typer.Exit(130) from None
    loss = None if math.isnan(result.loss) else round(result.loss, 4)  # NaN: no step run (it was finished)
    summary = {"checkpoint": str(result.directory), "step": result.step, "loss": loss,
               "validation": result.validation, "seconds": round(result.seconds, 1),
               "steps_per_second": round(result.steps_per_second, 2)}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    figures = ", ".join(f"{k} {v:.1f}" for k, v in result.validation.items())
    typer.echo(f"trained {modality} to step {result.step} in {result.seconds:.0f} s ({figures}); "
               f"search with --model {_model_spec(result.directory)}")


@app.command()
def mini(
    out: Annotated[Path, typer.Option("--out", help="Where to write the weights; in a checkout, "
                                      "bindsearch/models/weights/bindsearch-mini replaces the shipped ones.")] = Path(
        "bindsearch-mini"),
    work: Annotated[Path, typer.Option(help="Generated BindWorld data and per-tower checkpoints.")] = Path(
        "runs/mini"),
    n: Annotated[int, typer.Option("--n", help="BindWorld scenes (90% train, 10% validation).")] = 6000,
    seed: Annotated[int, typer.Option(min=0, help="World and training seed.")] = 0,
) -> None:
    """Reproduce the shipped bindsearch-mini weights: BindWorld, five towers, fp16 weights.

    Example: bindsearch train mini --out bindsearch/models/weights/bindsearch-mini
    """
    from bindsearch.training.mini import train_mini

    summary = train_mini(out, work, n, seed)
    json.dump(summary, sys.stdout, indent=2)
    typer.echo("")
    typer.echo(f"wrote {out}: search with --model {_model_spec(out)}", err=True)


def _model_spec(directory: Path) -> str:
    """How `--model` names a checkpoint folder: a folder named as a shipped model (`bindsearch-mini`, the default
    --out of `train mini`) needs a path's spelling, or the shipped model is loaded instead."""
    from bindsearch.models.specs import is_builtin

    return f".{os.sep}{directory}" if is_builtin(str(directory)) else str(directory)
