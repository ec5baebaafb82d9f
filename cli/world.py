"""`bindsearch world`: generate BindWorld synthetic scenes."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="BindWorld: deterministic synthetic scenes (image, depth, infrared, video, audio, captions).\n\n"
         "Example: bindsearch world make data/bindworld --n 200 && bindsearch index data/bindworld -c world",
    no_args_is_help=True,
)


@app.callback()
def world() -> None:
    """BindWorld: deterministic synthetic scenes (image, depth, infrared, video, audio, captions)."""


@app.command()
def make(
    directory: Annotated[Path, typer.Argument(help="Where to write the world.")],
    n: Annotated[int, typer.Option("--n", help="Number of scenes.")] = 1000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed: same seed, same files.")] = 0,
    splits: Annotated[
        str, typer.Option(help="Train, val and test fractions, comma-separated.")
    ] = "0.8,0.1,0.1",
    size: Annotated[int, typer.Option(help="Side of images, depth, infrared and video frames (px).")] = 64,
    frames: Annotated[int, typer.Option(help="Video frames (the clip lasts as long as the sound).")] = 8,
    seconds: Annotated[float, typer.Option(help="Video and sound length (s).")] = 2.0,
    workers: Annotated[int, typer.Option(help="Processes rendering scenes in parallel.")] = 1,
    overwrite: Annotated[bool, typer.Option(help="Replace a world already in DIRECTORY.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Write N scenes to DIRECTORY/<modality>/<id>.<ext> plus scenes.csv and world.json.

    Example: bindsearch world make data/bindworld --n 6000 --seed 0 --workers 2
    """
    from bindsearch.world import WorldConfig, make_world

    try:
        fractions = [float(part) for part in splits.split(",")]
    except ValueError:
        fractions = []
    if len(fractions) != 3:
        raise ValueError(f"--splits needs three fractions (train,val,test), e.g. 0.8,0.1,0.1; got {splits!r}")
    if not all(0 <= f <= 1 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:  # NaN: a message from int()
        raise ValueError(f"--splits needs fractions from 0 to 1 that sum to 1, e.g. 0.8,0.1,0.1; got {splits!r}")
    config = WorldConfig(size=size, frames=frames, seconds=seconds)
    # The bar for people only: piped or captured, stderr gets no stray label.
    bar = typer.progressbar(length=n, label="scenes", file=sys.stderr) if sys.stderr.isatty() else None
    with bar or contextlib.nullcontext():
        info = make_world(
            directory, n, seed, dict(zip(("train", "val", "test"), fractions, strict=True)), config,
            workers=workers, overwrite=overwrite, progress=bar.update if bar else None,
        )
    summary = {
        "directory": str(info.directory),
        "version": info.version,
        "n": info.n,
        "seed": info.seed,
        "splits": info.splits,
        "seconds": round(info.seconds, 2),
        "scenes_per_second": round(info.scenes_per_second, 1),
    }
    if as_json:
        typer.echo(json.dumps(summary))
        return
    counts = ", ".join(f"{name} {count}" for name, count in info.splits.items())
    typer.echo(
        f"wrote {info.n} scenes ({counts}) to {info.directory} in {info.seconds:.1f} s "
        f"({info.scenes_per_second:.1f} scenes/s); list: {info.directory / 'scenes.csv'}"
    )
