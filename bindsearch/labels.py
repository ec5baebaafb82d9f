"""Zero-shot X->text: rank free-form labels for files with the model's own prompts and logit scale."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from bindsearch import media
from bindsearch.files import printable, user_path
from bindsearch.media import MediaError, Window, WindowPlan
from bindsearch.models import EmbeddingModel

__all__ = ["Labelled", "classify", "classify_files"]

Ranking = list[tuple[str, float]]
"""(label, probability) pairs, most probable first."""


class Labelled(NamedTuple):
    """A file's ranking of the labels, or one window's (`window`: start, end in seconds) of a long file."""

    path: Path
    ranking: Ranking
    window: Window | None = None


def classify(model: EmbeddingModel, file: str | Path, labels: Sequence[str], modality: str | None = None,
             templates: bool = True) -> Ranking:
    """Labels ranked by probability: softmax over exp(logit_scale) x cosine to each label's prompt ensemble
    (LanguageBind's templates, "a photo of a {}." ...), or to each label as written with `templates=False`.

    A file that cannot be decoded raises `MediaError`, one whose modality cannot be told `ValueError`.
    """
    path = user_path(file)
    if path.is_dir():
        raise MediaError(path, f"a folder, not a file; give the files in it (e.g. {path / '*'})")
    if modality is not None:
        model.check_modality(modality)  # a name that is no modality, or one the model has no tower for
    kind, why = (modality, "") if modality else media.modality_of(path)
    if kind is None:
        raise ValueError(f"{path}: cannot tell its modality ({why}); pass --file-modality")
    for result in classify_files(model, [path], labels, kind, workers=0, templates=templates):
        if isinstance(result, MediaError):
            raise result
        return result.ranking
    raise AssertionError("classify_files answers every file")  # pragma: no cover


def classify_files(model: EmbeddingModel, files: Sequence[str | Path], labels: Sequence[str],
                   modality: str | None = None, workers: int | None = None, templates: bool = True,
                   window: float | None = None) -> Iterator[Labelled | MediaError]:
    """For each file, in the order given, its ranking or the `MediaError` that says why it has none.

    Files are grouped by modality (guessed from the extension unless `modality` is given); each group's label
    prompts are embedded once, and its files decoded in worker processes and encoded in batches, as
    `Collection.add` does. A corrupt file is one error among the results, not the end of the run. With
    `templates=False` each label is its own prompt: X->text retrieval over a list of sentences.

    `window` (seconds): video and audio longer than one window are ranked window by window, in order: a timeline
    of what happens when. Without it, a file is ranked whole, as the model reads it (8 frames; three 10 s crops).
    Labels are taken once each (a label given twice would split its probability in two); a blank one is a
    ValueError.
    """
    labels = _distinct(labels)
    if isinstance(files, str | bytes | os.PathLike):  # iterating would classify its characters
        raise TypeError(f"classify_files takes a list of files, got one {type(files).__name__}: pass [{files!r}]")
    files = list(dict.fromkeys(user_path(f) for f in files))
    order = {path: i for i, path in enumerate(files)}
    # Decoder processes finish long files in their own order, and groups go by modality: each file's answers are
    # held until those of the files given before it are out, so that the order is the one given whatever the
    # machine's core count, and a run over one modality still answers batch by batch.
    shown = {printable(path): i for path, i in order.items()}  # how an error spells a non-UTF-8 name
    held: dict[int, list[Labelled | MediaError]] = {}
    following = 0
    for path, answers in _classified(model, files, labels, modality, workers, templates, window):
        place = order.get(Path(path), shown.get(str(path)))
        if place is None:  # not a file given (cannot be): said at once rather than lost
            yield from answers
            continue
        held[place] = answers
        while following in held:
            yield from held.pop(following)
            following += 1


def _distinct(labels: Sequence[str]) -> list[str]:
    if isinstance(labels, str):  # iterating would rank its letters
        raise TypeError(f"labels takes a list of labels, got one str: pass {labels.split(',')!r}" if "," in labels
                        else f"labels takes a list of labels, got one str: pass [{labels!r}]")
    labels = list(dict.fromkeys(labels))
    if not labels:
        raise ValueError("give at least one label")
    blank = [label for label in labels if not isinstance(label, str) or not label.strip()]
    if blank:
        raise ValueError(f"labels must be words, not {blank[0]!r}")
    return labels


def _classified(model: EmbeddingModel, files: list[Path], labels: list[str], modality: str | None,
                workers: int | None, templates: bool, window: float | None
                ) -> Iterator[tuple[Path, list[Labelled | MediaError]]]:
    """Each file with its answers (a ranking, one per window in time, or the error), as its batch is done: by
    modality, and long files as the decoders finish them (a file's windows come together, in one batch)."""
    from bindsearch.evaluation import build_classifier
    from bindsearch.pipeline import encode_files

    groups: dict[str, list[Path]] = {}
    for path in files:
        if path.is_dir():
            yield path, [MediaError(path, f"a folder, not a file; give the files in it (e.g. {path / '*'})")]
            continue
        kind, why = (modality, "") if modality else media.modality_of(path)
        if kind is None:
            yield path, [MediaError(path, f"cannot tell its modality ({why}); pass --file-modality")]
            continue
        try:
            groups.setdefault(model.check_modality(kind), []).append(path)
        except ValueError as exc:  # a modality this model has no tower for: this file's error, not the run's
            yield path, [MediaError(path, str(exc))]
    for kind, paths in groups.items():
        # A text file is compared with the labels' own words: "a photo of a {}." would describe no text.
        as_written = not templates or kind == "text"
        classifier = torch.from_numpy(
            build_classifier(lambda texts: model.encode("text", texts).numpy(), list(labels), kind,
                             templates=["{}"] if as_written else None))
        plan = WindowPlan(window, longer_than=window) if window else None
        for batch in encode_files(model, kind, paths, workers=workers, windows=plan):
            for failure in batch.failures:
                yield failure.path, [failure]
            probabilities = model.probabilities(kind, batch.vectors, classifier)
            answers: dict[Path, list[Labelled | MediaError]] = {}
            for path, cut, probs in zip(batch.paths, batch.windows, probabilities, strict=True):
                ranking = [(labels[j], float(probs[j])) for j in torch.argsort(probs, descending=True).tolist()]
                answers.setdefault(path, []).append(Labelled(path, ranking, cut))
            for path, found in answers.items():
                yield path, sorted(found, key=lambda answer: answer.window or (0.0,))
