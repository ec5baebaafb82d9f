"""`bindsearch index | search | classify | list | info | remove`: collections from the terminal."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from cli.options import DEFAULT_MODEL, DeviceOption, DtypeOption, JsonOption

CollectionOption = Annotated[str, typer.Option(
    "--collection", "-c", envvar="BINDSEARCH_COLLECTION",
    help="Collection name (under $BINDSEARCH_HOME/collections) or folder path.")]
OptionalModel = Annotated[str | None, typer.Option(
    "--model", "-m", envvar="BINDSEARCH_MODEL",
    help="Model spec; for an existing collection, the one it was built with is used by default.")]
WaitOption = Annotated[float, typer.Option("--wait", min=0.0, help="Seconds to wait for another writer to finish.")]


def _echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=None, default=str))


def _progress():
    if not sys.stderr.isatty():
        return None, None
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: decoding on one torch thread needs the program to have one
    bar = tqdm(total=0, unit="file", file=sys.stderr, desc="encoding")

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    return update, bar


def index(
    paths: Annotated[list[str], typer.Argument(help="Files and folders (recursive).", show_default=False)],
    collection: CollectionOption,
    modality: Annotated[str, typer.Option(
        "--modality", help="auto (by extension; images inside depth/, infrared/, thermal/, ir/ or lwir/ folders "
                           "count as depth or infrared; .txt "
                           "files are text items), image, video, audio, depth, infrared or text.")] = "auto",
    model: OptionalModel = None,
    device: DeviceOption = "auto",
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, help="Items per encoder batch. Default: the model's own per modality (16 if none).")
    ] = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", min=0, help="Decoding processes (0: in this process). Default: min(4, cores - 2), so none on "
                                "two cores.")] = None,
    dtype: DtypeOption = "float32",
    compile_towers: Annotated[bool, typer.Option(
        "--compile", help="Compile the towers (torch.compile; Inductor freezing on the CPU) before encoding: tens "
                          "of seconds per modality, then faster (1.7x in bf16 on CPUs with AMX); for large folders.")
    ] = False,
    wait: WaitOption = 0.0,
    commit_every: Annotated[float, typer.Option(
        "--commit-every", min=0, help="Seconds between catalog commits: what a killed run can lose (0: after every "
                                      "batch, slower).")] = 5.0,
    window: Annotated[float, typer.Option(
        "--window", min=0, help="Video and audio longer than three windows are indexed as windows of about this "
                                "many seconds, so that a search finds the moment (0: every file whole). Applies "
                                "to the files this run embeds.")] = 10.0,
    rehash: Annotated[bool, typer.Option(
        "--rehash", help="Hash every file, not only those whose size or mtime changed: finds files whose bytes "
                         "changed under a kept mtime (restored from an archive, tools that keep it). Reads files "
                         "up to 64 MiB whole; of larger ones their size and 4 MiB at the start, middle and "
                         "end.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Embed files into a collection; re-running indexes only what changed and drops what vanished.

    Example: bindsearch index ~/media -c home --model languagebind --dtype bfloat16
    """
    from bindsearch import Collection
    from bindsearch.files import check_paths, given_paths, missing_path
    from bindsearch.media.windows import WindowPlan

    # Before the collection is opened: a mistyped path, modality or window must not leave an empty one behind.
    paths = given_paths(paths, "index")
    missing = missing_path(paths)
    if missing is not None and (held := _files_under(collection, str(missing))):
        raise FileNotFoundError(
            f"{missing} does not exist, but {held} file(s) indexed from it are in {collection}: if it moved, index "
            f"it where it is now (its files are recognised, not embedded again); if it is gone, run: bindsearch "
            f"remove {missing} -c {collection}")
    check_paths(paths)
    if modality != "auto":
        _check_modality(modality, model or _stored_spec(collection))
    WindowPlan(window)
    col = Collection.open(collection, model=model, default_model=DEFAULT_MODEL, device=device, dtype=dtype,
                          compile_towers=compile_towers)
    update, bar = (None, None) if as_json else _progress()
    try:
        report = col.add(paths, modality=None if modality == "auto" else modality, batch_size=batch_size,
                         workers=workers, wait=wait, progress=update, commit_seconds=commit_every, window=window,
                         rehash=rehash)
    except KeyboardInterrupt:
        typer.echo(f"\ninterrupted: what was committed is kept (all but the last {commit_every:g} s at most); "
                   "run the same index command again to finish", err=True)
        raise typer.Exit(130) from None
    if bar is not None:
        bar.close()
    if as_json:
        _echo_json(report.to_json(col.name))
    else:
        for line in report.messages(col.catalog.encoder.name):
            typer.echo(line, err=True)
        if not (report.new or report.changed or report.unchanged or report.moved or report.removed or report.failed
                or report.unencodable):  # media of a modality the model lacks: said above
            typer.echo(f"nothing to index in {', '.join(map(str, paths))}: no image, video, audio, depth, infrared "
                       "or .txt files", err=True)
        typer.echo(f"{col.name}: {report.summary()}")
    if report.failed:
        raise typer.Exit(1)


def search(
    collection: CollectionOption,
    text: Annotated[str | None, typer.Argument(help="What to look for, in words.")] = None,
    files: Annotated[list[Path] | None, typer.Option(
        "--file", "-f", readable=False,  # an indexed file is queried by its stored vector, readable or not
        help="Query by example; repeat to fuse several files (and text) into one query.")] = None,
    file_modality: Annotated[str | None, typer.Option(
        "--file-modality", help="Modality of the --file(s) when the extension does not say (depth, infrared).")] = None,
    queries: Annotated[Path | None, typer.Option(
        "--queries", help="Many text queries, one per line, from a file or '-' (standard input); the model loads "
                          "once. Each query's hits follow a '# query' line, or with --json make one line each.")
    ] = None,
    modality: Annotated[list[str] | None, typer.Option(
        "--modality", help="Only return items of this modality; repeatable. Default: every modality but text "
                           "(text items come back with --modality text).")] = None,
    k: Annotated[int, typer.Option("-k", "--top", min=1, help="Number of hits.")] = 10,
    every_window: Annotated[bool, typer.Option(
        "--every-window", help="List every matching window of a long video or audio file, not only its best.")
    ] = False,
    at: Annotated[str | None, typer.Option(
        "--at", help="Query by one moment of the --file (video or audio): its indexed window at this time (80, 1:20 "
                     "or 1:02:03), or 10 s from it; other moments of the same file may come back.")] = None,
    under: Annotated[list[str] | None, typer.Option(
        "--under", help="Only return files in this folder (at any depth) or this file; repeatable.")] = None,
    model: OptionalModel = None,
    device: DeviceOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Search a collection by text, by example files of any modality, or both fused.

    Examples: bindsearch search "a dog barking" -c home --modality video;
    bindsearch search -c home --file room.png --file-modality depth --modality infrared;
    bindsearch search -c home --file bark.wav --modality text (over indexed .txt files);
    bindsearch search -c home --queries questions.txt --json;
    bindsearch search "a goal is scored" -c home --modality video --every-window (moments in long videos);
    bindsearch search -c home --file match.mp4 --at 12:30 --every-window (more moments like that one);
    bindsearch search "snow" -c home --under ~/media/2024 --under ~/media/trips (only files in those folders)
    """
    from bindsearch import Collection
    from bindsearch.files import absolute, given_paths

    if queries is not None and (text is not None or files):
        raise typer.BadParameter("--queries takes the place of a text and --file; give one or the other")
    if at is not None and len(files or []) != 1:
        raise typer.BadParameter("--at picks a moment of one file: give exactly one --file")
    moment = _clock(at) if at is not None else None
    if queries is None and text is None and not files:
        raise typer.BadParameter("give a text query, --file, both, or --queries")
    if text is not None and not text.strip():
        raise typer.BadParameter("the text query is empty; give words to search for (or only --file)")
    if queries is not None and str(queries) != "-":
        _check_lines_file(queries, "--queries", "a file of queries, one per line, or '-'")
    col = Collection.open(collection, model=model, device=device, create=False)
    folders = [absolute(u) for u in given_paths(under or [], "--under")]
    if queries is not None:
        asked = 0
        for lines in _query_batches(queries):
            answers = col.search_texts(lines, modality or None, k, every_window, under=folders)
            for line, hits in zip(lines, answers, strict=True):
                _show_hits(col.name, line, [], hits, as_json, header=True, under=folders)
            asked += len(lines)
        if not asked:
            typer.echo(f"warning: {'standard input' if str(queries) == '-' else queries} holds no query (no "
                       "line with words): nothing searched", err=True)
        return
    hits = col.search(text=text, files=files or (), file_modality=file_modality, modality=modality or None, k=k,
                      every_window=every_window, at=moment, under=folders)
    _show_hits(col.name, text, files or [], hits, as_json, at=moment, under=folders)


def _clock(text: str) -> float:
    from bindsearch.media.windows import parse_clock

    try:
        return parse_clock(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--at") from None


def _snippet(hit, width: int = 60) -> str:
    """A text hit's first words, so that the answer reads without opening the file ('' for media)."""
    from bindsearch.files import displayed

    words = hit.words()
    if words is None:  # media, or a text file gone or unreadable since it was indexed: the path alone
        return ""
    # Shown as written: a file's escape sequences (clear the screen) and direction overrides are not run.
    return f'  "{displayed(words if len(words) <= width else words[:width - 3] + "...")}"'


def _query_batches(source: Path, batch: int = 256):
    """Non-empty lines of a file or of standard input ('-'), in batches."""
    if str(source) == "-":
        yield from _batches(sys.stdin, batch)
        return
    with source.open(encoding="utf-8") as stream:
        try:
            yield from _batches(stream, batch)
        except UnicodeDecodeError as exc:
            raise _not_utf8(source, exc) from None


def _batches(stream, batch: int):
    # One line at a time from a terminal, so that each answer comes as soon as its question is typed.
    size = 1 if stream.isatty() else batch
    lines: list[str] = []
    for number, raw in enumerate(stream):
        if number == 0:  # a file saved by Notepad starts with a byte-order mark, no part of the first query
            raw = raw.removeprefix("\ufeff")
        if raw.strip():
            lines.append(raw.strip())
        if len(lines) == size:
            yield lines
            lines = []
    if lines:
        yield lines


def _show_hits(name: str, text: str | None, files: list[Path], hits: list, as_json: bool,
               header: bool = False, at: float | None = None, under: list[Path] = ()) -> None:
    if as_json:
        from bindsearch.collection import search_result
        from bindsearch.files import absolute

        # Absolute, as the hits' paths and `under` are: the query as the collection saw it, not as it was typed.
        _echo_json(search_result(name, text, [absolute(f) for f in files], hits, at, under))
        return
    from bindsearch.files import displayed

    if header:
        typer.echo(f"# {displayed(text or '')}")
    for rank, h in enumerate(hits, 1):
        moment = f"  @ {h.moment()}" if h.start is not None else ""
        path = displayed(h.path)  # one line a hit, shown as written, whatever a file is called
        typer.echo(f"{rank:>3}  {h.score:+.4f}  {h.modality:<8}  {path}{moment}{_snippet(h)}")
    if not hits and under:
        typer.echo(f"no hits: nothing of that modality is indexed under {', '.join(map(str, under))}", err=True)
    elif not hits:
        typer.echo("no hits (is the collection empty for that modality?)", err=True)
    sys.stdout.flush()


def classify(
    files: Annotated[list[Path], typer.Argument(readable=False, help="Media files.")],  # one unreadable: said, skipped
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated labels.")] = None,
    labels_file: Annotated[Path | None, typer.Option("--labels-file", help="One label per line.")] = None,
    file_modality: Annotated[str | None, typer.Option("--file-modality", help="When the extension does not say.")]
    = None,
    top: Annotated[int | None, typer.Option("--top", "-k", min=1, help="Show only the N most probable labels.")] = None,
    window: Annotated[float | None, typer.Option(
        "--window", min=0, help="Rank video and audio longer than this many seconds window by window: a timeline "
                                "(default: each file whole, as the model reads it).")] = None,
    templates: Annotated[bool, typer.Option(
        "--templates/--no-templates", help="Wrap labels in LanguageBind's prompt templates ('a photo of a {}.'); "
                                           "--no-templates takes each label as written (underscores read as "
                                           "spaces), e.g. whole captions.")
    ] = True,
    model: Annotated[str, typer.Option("--model", "-m", envvar="BINDSEARCH_MODEL", help="Model spec.")]
    = DEFAULT_MODEL,
    device: DeviceOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Zero-shot X->text: rank labels for each file, with probabilities from the model's logit scale.

    Several files: each one's ranking follows a '# file' line (with --json, one line each); a file that cannot
    be read is named on stderr and skipped (exit status 1).

    Examples: bindsearch classify bark.wav --labels "dog,cat,rain" --model languagebind:audio_ft;
    bindsearch classify sounds/*.wav --labels-file labels.txt --top 3 --json;
    bindsearch classify clip.mp4 --labels-file captions.txt --no-templates --top 5   (video -> text);
    bindsearch classify street.wav --labels "siren,dog,rain,speech" --window 10 --top 1   (what happens when)
    """
    from bindsearch import load_model
    from bindsearch.files import displayed
    from bindsearch.labels import classify_files

    names = [s.strip() for s in (labels or "").split(",") if s.strip()]
    if labels_file is not None:
        _check_lines_file(labels_file, "--labels-file", "a file of labels, one per line")
        names += [line.strip() for line in _read_lines(labels_file) if line.strip()]
    names = list(dict.fromkeys(names))  # a label twice would split its probability in two
    if not names:
        given = "--labels and --labels-file hold no label" if labels is not None or labels_file else "no labels"
        raise typer.BadParameter(f"{given}; give --labels 'dog,cat,rain' or --labels-file with one a line")
    if file_modality is not None:
        _check_modality(file_modality, model)  # an unknown name is a usage error (2), before the model loads
    failed = 0
    for result in classify_files(load_model(model, device=device), files, names, file_modality, templates=templates,
                                 window=window or None):
        if isinstance(result, Exception):
            typer.echo(f"error: {displayed(str(result))}" + ("; skipped" if len(files) > 1 else ""), err=True)
            failed += 1
            continue
        path, ranked, cut = result
        ranked = ranked[:top]
        if as_json:
            moment = {"start": cut[0], "end": cut[1]} if cut else {}
            _echo_json({"file": str(path), **moment,
                        "labels": [{"label": lab, "probability": p} for lab, p in ranked]})
            continue
        if cut:
            from bindsearch.media import format_window

            typer.echo(f"# {displayed(str(path))} @ {format_window(cut)}")
        elif len(files) > 1:
            typer.echo(f"# {displayed(str(path))}")
        for label, p in ranked:
            typer.echo(f"{p:7.2%}  {label}")
    if failed:
        raise typer.Exit(1)


def _not_utf8(path: Path, exc: UnicodeDecodeError) -> typer.BadParameter:
    return typer.BadParameter(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8")


def _check_lines_file(path: Path, flag: str, what: str) -> None:
    """A file of lines given to `flag` that is missing or a folder: one line naming the flag, exit 1 (as a missing
    --file is; not a usage error). A pipe or a device is read as a file is (`<(grep ...)`; /dev/null was called
    missing): what it holds, or that it holds nothing, is said once it is read."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"a folder; give {flag} {what}", str(path))
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, f"no such file; give {flag} {what}", str(path))


def _read_lines(path: Path) -> list[str]:
    """A UTF-8 text file's lines, or a one-line error naming the file."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()  # -sig: Notepad's lists start with a BOM
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, exc) from None
    except OSError as exc:  # missing, a folder, unreadable: a clear error naming the file (exit 1), as for --file
        exc.filename = exc.filename or str(path)
        raise


def list_(as_json: JsonOption = False) -> None:
    """List collections in $BINDSEARCH_HOME/collections (BINDSEARCH_HOME: default $XDG_DATA_HOME/bindsearch, else
    ~/.local/share/bindsearch).

    Example: bindsearch list --json
    """
    from bindsearch.home import collections_home, list_collections

    names = list_collections()
    if as_json:
        _echo_json({"home": str(collections_home()), "collections": names})
        return
    for name in names:
        typer.echo(name)
    if not names:
        typer.echo(f"no collections in {collections_home()}", err=True)


def info(collection: CollectionOption, as_json: JsonOption = False) -> None:
    """Show a collection's size per modality, encoder and location.

    Example: bindsearch info -c home
    """
    from bindsearch import Collection

    stats = Collection.open(collection, create=False).stats()
    if as_json:
        _echo_json(stats)
        return
    typer.echo(f"{stats['name']}  ({stats['path']})")
    typer.echo(f"  encoder  {stats['encoder']['spec']}  {stats['encoder']['dim']}-d  "
               f"checkpoint {stats['encoder']['checkpoint']}")
    windows = ""
    if stats["windows"]:
        windows = f", {stats['items']} vectors ({stats['windows']} of them windows of long files)"
    typer.echo(f"  files    {stats['files']}{windows}")
    for m, n in stats["modalities"].items():
        typer.echo(f"    {m:<9}{n}")
    if stats["partial"]:
        typer.echo(f"  {stats['partial']} long file(s) partly indexed (a run was stopped): run index on their "
                   "folders again to finish them")


def _check_modality(name: str, spec: str | None) -> None:
    """An unknown modality name is refused before a model loads or a collection is made for it, unless the checkpoint
    declares that tower (a modality of one's own, `train tower --modality-config`: known once the model loads)."""
    from bindsearch.models.config import canonical_modality
    from bindsearch.models.loading import own_towers

    try:
        canonical_modality(name)
    except ValueError:
        if spec is None or name.lower() not in {t.lower() for t in own_towers(spec)}:
            raise


def _stored_spec(collection: str) -> str | None:
    """The model spec an existing collection was built with; None where there is none (or it cannot be read)."""
    from bindsearch import Collection

    try:
        return Collection.open(collection, create=False).catalog.encoder.name
    except Exception:  # none, or one that cannot be read: the run says which
        return None


def _files_under(collection: str, path: str) -> int:
    """How many files the collection, if it exists, holds at or under `path`."""
    from bindsearch import Collection

    try:
        return len(Collection.open(collection, create=False).catalog.paths_under([path]))
    except Exception:  # none, or one that cannot be read: the missing path is what to say (the run says the rest)
        return 0


def remove(
    paths: Annotated[list[str], typer.Argument(help="Files or folders to forget.", show_default=False)],
    collection: CollectionOption,
    wait: WaitOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Forget files (the media files themselves are untouched).

    Example: bindsearch remove -c home ~/media/old
    """
    from bindsearch import Collection

    col = Collection.open(collection, create=False)
    n = col.remove(paths, wait=wait)
    if as_json:
        _echo_json({"collection": col.name, "removed": n})
    else:
        typer.echo(f"{col.name}: removed {n} file(s)")
        if n == 0:
            typer.echo(f"nothing was indexed at or under {', '.join(map(str, paths))} (paths are matched as "
                       f"absolute paths; `bindsearch info -c {collection}` says what the collection holds)", err=True)
