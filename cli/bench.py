"""`bindsearch bench`: LanguageBind's benchmarks on datasets in their official layouts, ours beside the paper's."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.options import DeviceOption, DtypeOption, JsonOption

app = typer.Typer(
    help="Reproduce LanguageBind's benchmarks (MSR-VTT, Clotho, zero-shot, emergent) on datasets in their official "
         "layouts; prints ours beside the paper's numbers and writes JSON.\n\n"
         "Example: bindsearch bench msrvtt --root ~/data/msrvtt --model languagebind:video_ft --out msrvtt.json",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

RootOption = Annotated[Path, typer.Option("--root", help="The dataset's folder, in its official layout.")]
BenchModelOption = Annotated[str | None, typer.Option(
    "--model", "-m", envvar="BINDSEARCH_MODEL",
    help="Model spec (checkpoint folder, languagebind:<name>, repo id, several joined by commas, random:tiny); "
         "default: the published checkpoint the paper evaluated.")]
LimitOption = Annotated[int | None, typer.Option("--limit", min=1, help="Evaluate the first N items only.")]
OutOption = Annotated[Path | None, typer.Option("--out", "-o", help="Write the result as JSON to this file.")]
BatchOption = Annotated[int | None, typer.Option("--batch-size", min=1, help="Media files per encoder batch.")]
WorkersOption = Annotated[int | None, typer.Option("--workers", min=0, help="Decoding processes (0: in process).")]
NoCacheOption = Annotated[bool, typer.Option(
    "--no-cache", help="Encode everything again and store nothing ($BINDSEARCH_HOME/cache is used otherwise).")]
DatasetOption = Annotated[str | None, typer.Option(
    "--dataset", help="k400, esc50, nyud, llvip, or none: picks the paper's number (default: from the folder name).")]


def _options(device: str, dtype: str, batch_size: int | None, workers: int | None, no_cache: bool, as_json: bool):
    from bindsearch.evaluation import RunOptions

    return RunOptions(device=device, dtype=dtype, batch_size=batch_size, workers=workers, cache=not no_cache,
                      progress=not as_json and sys.stderr.isatty())


def _check_out(out: Path | None) -> None:
    """Refuse an --out that cannot be written before the run, which can take hours: a folder, or a path below a
    file. (What only the write can tell, a read-only disk, is said after the results are printed.)"""
    if out is None:
        return
    if out.is_dir():
        raise typer.BadParameter(f"{out} is a folder; give a file name, e.g. {out / 'result.json'}",
                                 param_hint="'--out'")
    folder = out.absolute().parent
    while not folder.exists():  # the folders `_report` would create
        folder = folder.parent
    if not folder.is_dir():
        raise typer.BadParameter(f"{out} is below {folder}, a file; give a path in a folder", param_hint="'--out'")


def _report(result, as_json: bool, out: Path | None) -> None:
    """Failures to stderr (one line each), the table or JSON to stdout, then the JSON file: a file that cannot be
    written fails the command (exit 1) with the results already printed."""
    for failure in result.failed:
        typer.echo(f"warning: {failure['path']}: {failure['error']}; skipped", err=True)
    payload = result.to_json()
    typer.echo(json.dumps(payload) if as_json else result.table())
    if out is None:
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(payload, indent=2) + "\n")
    except OSError as error:
        raise OSError(error.errno, f"{error.strerror}; the results are printed above, not written",
                      str(out)) from None
    if not as_json:
        typer.echo(f"wrote {out}", err=True)


@app.command()
def msrvtt(root: RootOption, model: BenchModelOption = None, limit: LimitOption = None, device: DeviceOption = "auto",
           dtype: DtypeOption = "float32", batch_size: BatchOption = None, workers: WorkersOption = None,
           no_cache: NoCacheOption = False, as_json: JsonOption = False, out: OutOption = None) -> None:
    """MSR-VTT 1k-A test split: text->video and video->text R@1/5/10, MdR, MnR.

    ROOT holds MSRVTT_JSFUSION_test.csv and the videos ({video_id}.mp4 in ROOT, ROOT/videos/all or
    ROOT/MSRVTT/videos/all).

    Example: bindsearch bench msrvtt --root ~/data/msrvtt --model languagebind:video_ft --out msrvtt.json
    """
    from bindsearch.evaluation import run_msrvtt

    _check_out(out)
    options = _options(device, dtype, batch_size, workers, no_cache, as_json)
    _report(run_msrvtt(model, root, limit=limit, options=options), as_json, out)


@app.command()
def clotho(root: RootOption, model: BenchModelOption = None, limit: LimitOption = None, device: DeviceOption = "auto",
           dtype: DtypeOption = "float32", batch_size: BatchOption = None, workers: WorkersOption = None,
           no_cache: NoCacheOption = False, as_json: JsonOption = False, out: OutOption = None) -> None:
    """Clotho v2 evaluation split: text->audio (5 captions per clip) and audio->text R@1/5/10, MdR, MnR.

    ROOT holds clotho_captions_evaluation.csv and evaluation/<file_name>.wav.

    Example: bindsearch bench clotho --root ~/data/clotho --model languagebind:audio_ft --out clotho.json
    """
    from bindsearch.evaluation import run_clotho

    _check_out(out)
    options = _options(device, dtype, batch_size, workers, no_cache, as_json)
    _report(run_clotho(model, root, limit=limit, options=options), as_json, out)


@app.command()
def zeroshot(root: RootOption,
             modality: Annotated[str | None, typer.Option(
                 "--modality", help="video, audio, depth, infrared or image (default: from --dataset or the model).")
             ] = None,
             dataset: DatasetOption = None,
             fold: Annotated[int | None, typer.Option("--fold", min=1, max=5, help="ESC-50: one fold only.")] = None,
             model: BenchModelOption = None, limit: LimitOption = None, device: DeviceOption = "auto",
             dtype: DtypeOption = "float32", batch_size: BatchOption = None, workers: WorkersOption = None,
             no_cache: NoCacheOption = False, as_json: JsonOption = False, out: OutOption = None) -> None:
    """Zero-shot classification top-1 (top-5 with more than 5 classes) with LanguageBind's prompts.

    ROOT is ROOT/<class name>/<files>, ESC-50's own layout (meta/esc50.csv + audio/), Kinetics-400's
    (val.csv + val/<id>_<s>_<e>.mp4), LLVIP's release (Annotations/*.xml + infrared/test/: person and background
    crops), or ROOT/<modality>/ + ROOT/scene_class/<stem>.txt (NYU-D). --limit N takes N files, the classes in turn.
    benchmarks/README.md lists each layout in full.

    Example: bindsearch bench zeroshot --root ~/data/ESC-50-master --model languagebind:audio_ft
    """
    from bindsearch.evaluation import run_zeroshot

    _check_out(out)
    options = _options(device, dtype, batch_size, workers, no_cache, as_json)
    result = run_zeroshot(model, root, modality=modality, dataset=dataset, fold=fold, limit=limit, options=options)
    _report(result, as_json, out)


@app.command()
def emergent(root: RootOption,
             a: Annotated[str, typer.Option(
                 "--a", help="First modality (its folder: ROOT/<a>/; for image also rgb/, visible/ or color/).")
                          ] = "image",
             b: Annotated[str, typer.Option("--b", help="Second modality.")] = "depth",
             a_dir: Annotated[str | None, typer.Option("--a-dir", help="Folder of the first modality under ROOT.")
                              ] = None,
             b_dir: Annotated[str | None, typer.Option("--b-dir", help="Folder of the second modality under ROOT.")
                              ] = None,
             dataset: Annotated[str | None, typer.Option(
                 "--dataset", help="nyud, llvip, or none: picks the paper's number (default: from the folder name).")
             ] = None,
             sample: Annotated[float | None, typer.Option(
                 "--sample", help="Keep a random fraction of the pairs (LLVIP's protocol: 0.1).")] = None,
             seed: Annotated[int, typer.Option("--seed", help="Seed for --sample.")] = 0,
             model: BenchModelOption = None, limit: LimitOption = None, device: DeviceOption = "auto",
             dtype: DtypeOption = "float32", batch_size: BatchOption = None, workers: WorkersOption = None,
             no_cache: NoCacheOption = False, as_json: JsonOption = False, out: OutOption = None) -> None:
    """Emergent retrieval between two modalities never trained together: A->B and B->A R@1/5/10, MdR, MnR;
    with classes (ROOT/labels.csv stem,label or ROOT/scene_class/<stem>.txt) also A, B and fused A+B zero-shot.

    Example: bindsearch bench emergent --root ~/data/nyuv2/test --a image --b depth --dataset nyud
    """
    from bindsearch.evaluation import run_emergent

    _check_out(out)
    options = _options(device, dtype, batch_size, workers, no_cache, as_json)
    result = run_emergent(model, root, a=a, b=b, a_dir=a_dir, b_dir=b_dir, dataset=dataset, sample=sample,
                          seed=seed, limit=limit, options=options)
    _report(result, as_json, out)


def main(argv: list[str] | None = None) -> None:
    """Run one bench command from a script (benchmarks/*.py), with the errors `bindsearch bench` would print."""
    from cli.main import run_reporting_errors

    run_reporting_errors(lambda: app(args=argv, prog_name="bindsearch bench"))
