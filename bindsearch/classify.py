"""Zero-shot X->text: rank free-form labels for a file with the model's own prompts and logit scale."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from bindsearch import media
from bindsearch.models import EmbeddingModel

__all__ = ["classify"]


def classify(model: EmbeddingModel, file: str | Path, labels: Sequence[str], modality: str | None = None,
             ) -> list[tuple[str, float]]:
    """Labels ranked by probability: softmax over exp(logit_scale) x cosine to each label's prompt ensemble."""
    from bindsearch.evaluation import build_classifier

    path = Path(file)
    if not labels:
        raise ValueError("give at least one label")
    kind = modality or media.guess_modality(path)[0]
    if kind is None:
        raise ValueError(f"{path}: cannot tell its modality ({media.guess_modality(path)[1]}); pass --file-modality")
    kind = model.check_modality(kind)
    item = model.encode(kind, [path])
    classifier = build_classifier(lambda texts: model.encode("text", texts).numpy(), list(labels), kind)
    probs = model.probabilities(kind, item, torch.from_numpy(classifier))[0]
    return [(labels[i], float(probs[i])) for i in torch.argsort(probs, descending=True).tolist()]
