"""`bindsearch encode`: embed text or files and print or save the unit vectors."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Annotated

import typer

from cli.options import DEFAULT_MODEL, BatchOption, DeviceOption, DtypeOption, JsonOption, ModelOption


def encode(
    modality: Annotated[str, typer.Argument(help="text, image, video, audio, depth or infrared.")],
    items: Annotated[list[str], typer.Argument(help="Strings for text, file paths otherwise.")],
    model: ModelOption = DEFAULT_MODEL,
    device: DeviceOption = "auto",
    dtype: DtypeOption = "float32",
    batch_size: BatchOption = 16,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Save the (n, d) float32 vectors in .npy format, to this file.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Embed ITEMS as unit vectors in the shared space.

    Example: bindsearch encode video clips/*.mp4 --model languagebind:video_ft --out clips.npy
    """
    import numpy as np

    from bindsearch import load_model

    if modality == "text" and any(not item.strip() for item in items):
        raise typer.BadParameter("an empty text; give words to embed")
    if out is not None and out.is_dir():
        raise typer.BadParameter(f"{out} is a folder; give a file name, e.g. {out / 'vectors.npy'}",
                                 param_hint="'--out'")
    folder = out.absolute().parent if out is not None else None
    if folder is not None and not folder.is_dir():  # said before the model loads and the items are encoded
        if folder.exists():
            raise NotADirectoryError(errno.ENOTDIR, "Not a directory", str(out))
        raise FileNotFoundError(errno.ENOENT, "no such folder to write --out in; create it first", str(folder))
    encoder = load_model(model, device=device, dtype=dtype, modalities=[modality])  # that tower alone
    vectors = encoder.encode(modality, items, batch_size=batch_size).numpy()
    if out is not None:
        with open(out, "wb") as handle:  # the name given: np.save(name) would add .npy to a name without it
            np.save(handle, vectors)
    if as_json:
        rows = [{"item": i, "vector": v.tolist()} for i, v in zip(items, vectors, strict=True)]
        typer.echo(json.dumps({"model": encoder.spec, "modality": encoder.check_modality(modality), "dim": encoder.dim,
                               "items": rows}))
        return
    for item, vector in zip(items, vectors, strict=True):
        head = " ".join(f"{x:+.3f}" for x in vector[:4])
        typer.echo(f"{item}\t[{head} ...] ({encoder.dim}-d)")
    if out is not None:
        typer.echo(f"saved {vectors.shape[0]} x {vectors.shape[1]} vectors to {out}", err=True)
