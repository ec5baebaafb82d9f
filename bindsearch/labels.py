"""Zero-shot X->text: rank free-form labels for files with the model's own prompts and logit scale."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from bindsearch import media
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
    path = Path(file)
    if path.is_dir():
        raise MediaError(path, f"a folder, not a file; give the files in it (e.g. {path / '*'})")
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
    """For each file, its ranking or the `MediaError` that says why it has none, as each batch is done.

    Files are grouped by modality (guessed from the extension unless `modality` is given); each group's label
    prompts are embedded once, and its files decoded in worker processes and encoded in batches, as
    `Collection.add` does. A corrupt file is one error among the results, not the end of the run. With
    `templates=False` each label is its own prompt: X->text retrieval over a list of sentences.

    `window` (seconds): video and audio longer than one window are ranked window by window, in order: a timeline
    of what happens when. Without it, a file is ranked whole, as the model reads it (8 frames; three 10 s crops).
    """
    from bindsearch.evaluation import build_classifier
    from bindsearch.pipeline import encode_files

    if not labels:
        raise ValueError("give at least one label")
    groups: dict[str, list[Path]] = {}
    for path in dict.fromkeys(Path(f) for f in files):
        if path.is_dir():
            yield MediaError(path, f"a folder, not a file; give the files in it (e.g. {path / '*'})")
            continue
        kind, why = (modality, "") if modality else media.modality_of(path)
        if kind is None:
            yield MediaError(path, f"cannot tell its modality ({why}); pass --file-modality")
            continue
        try:
            groups.setdefault(model.check_modality(kind), []).append(path)
        except ValueError as exc:  # a modality this model has no tower for: this file's error, not the run's
            yield MediaError(path, str(exc))
    for kind, paths in groups.items():
        # A text file is compared with the labels' own words: "a photo of a {}." would describe no text.
        as_written = not templates or kind == "text"
        classifier = torch.from_numpy(
            build_classifier(lambda texts: model.encode("text", texts).numpy(), list(labels), kind,
                             templates=["{}"] if as_written else None))
        plan = WindowPlan(window, longer_than=window) if window else None
        for batch in encode_files(model, kind, paths, workers=workers, windows=plan):
            yield from batch.failures
            probabilities = model.probabilities(kind, batch.vectors, classifier)
            for path, cut, probs in zip(batch.paths, batch.windows, probabilities, strict=True):
                ranking = [(labels[j], float(probs[j])) for j in torch.argsort(probs, descending=True).tolist()]
                yield Labelled(path, ranking, cut)
