"""Zero-shot classification: class prompts per modality, CLIP-style prompt ensembles, top-k accuracy.

Prompts follow the LanguageBind evaluations (its repository's zero-shot scripts): the 80 OpenAI ImageNet
templates shipped in open_clip, with "photo" replaced by "video" (video) or "depth photo" (depth),
unchanged for infrared and image, and the single template "a sound of {}." for audio.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

import numpy as np
import torch

from bindsearch.modalities import MODALITIES, canonical_modality

from .metrics import Array, ranks_from_embeddings, recall_at_k

__all__ = [
    "AUDIO_TEMPLATES",
    "MODALITIES",
    "Template",
    "build_classifier",
    "class_prompts",
    "class_probabilities",
    "templates_for",
    "zeroshot_accuracy",
]

# A format string with one "{}" for the class name, or a callable class name -> prompt.
Template = str | Callable[[str], str]

AUDIO_TEMPLATES = ("a sound of {}.",)
# What the word "photo" in the OpenAI templates becomes, per modality (audio has its own template).
_PHOTO_BECOMES = {"video": "video", "depth": "depth photo", "infrared": "photo", "image": "photo"}


def templates_for(modality: str) -> tuple[str, ...]:
    """LanguageBind's prompt templates for `modality`: format strings with one "{}" (80; 1 for audio). A modality
    of one's own (`bindsearch train tower --modality-config`) has no templates of LanguageBind's: the label as it is
    written, which is how its tower met its captions."""
    modality = canonical_modality(modality)  # 'thermal', 'ir' and 'sound' are names users type
    if modality == "audio":
        return AUDIO_TEMPLATES
    if modality == "text":
        raise ValueError("text has no prompt templates: its items are the prompts")
    if modality not in _PHOTO_BECOMES:
        return ("{}",)
    word = _PHOTO_BECOMES[modality]
    return tuple(re.sub(r"\bphoto\b", word, template) for template in _openai_imagenet_templates())


def class_prompts(
    classnames: Sequence[str], modality: str | None = None, *, templates: Sequence[Template] | None = None
) -> list[list[str]]:
    """`(n_classes,)` names -> `n_classes` lists of prompts, one per template; underscores shown as spaces.

    Uses `templates` if given, else `templates_for(modality)`.
    """
    if templates is None:
        if modality is None:
            raise ValueError("class_prompts needs a modality or explicit templates")
        templates = templates_for(modality)
    if len(templates) == 0:
        raise ValueError("need at least one prompt template")
    if len(classnames) == 0:
        raise ValueError("need at least one class name")
    prompts = []
    for name in classnames:
        shown = name.replace("_", " ")
        prompts.append([t.format(shown) if isinstance(t, str) else t(shown) for t in templates])
    return prompts


def build_classifier(
    encode_text: Callable[[list[str]], Array],
    classnames: Sequence[str],
    modality: str | None = None,
    *,
    templates: Sequence[Template] | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Class embeddings as CLIP builds them: `(n_classes, d)` float32 unit rows.

    Every prompt of a class is embedded with `encode_text` (`batch_size` prompts per call, returning
    `(b, d)` numpy or torch), L2-normalised, averaged over the templates and normalised again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    prompts = class_prompts(classnames, modality, templates=templates)
    flat = [prompt for class_prompts_ in prompts for prompt in class_prompts_]
    batches = []
    for start in range(0, len(flat), batch_size):
        batch = flat[start : start + batch_size]
        embedded = _to_float32(encode_text(batch))
        if embedded.ndim != 2 or embedded.shape[0] != len(batch):
            raise ValueError(
                f"encode_text returned shape {embedded.shape} for {len(batch)} prompts, expected ({len(batch)}, d)"
            )
        batches.append(embedded)
    embeddings = _unit_rows(np.concatenate(batches), "a prompt embedding")
    per_class = embeddings.reshape(len(prompts), len(prompts[0]), -1).mean(axis=1)
    return _unit_rows(per_class, "a class's mean prompt embedding")


def zeroshot_accuracy(
    item_embeddings: Array,
    classifier: Array,
    labels: Array | Sequence[int],
    *,
    topk: Sequence[int] = (1, 5),
    chunk: int | None = None,
) -> dict[str, float | int]:
    """Top-k accuracy of `(n, d)` items against `(n_classes, d)` class rows with `(n,)` int labels.

    Returns {"top1", "top5" (one "top{k}" per k in `topk`): percent, float; "n_items": int}. A class scoring
    equal to the true one counts above it (the pessimistic tie rule of `metrics.ranks`); a k of at least
    `n_classes` gives 100. Scored `chunk` items at a time.
    """
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    label_ranks = ranks_from_embeddings(item_embeddings, classifier, labels, chunk=chunk)
    if label_ranks.size == 0:
        raise ValueError("zeroshot_accuracy needs at least one item")
    result: dict[str, float | int] = {f"top{k}": recall_at_k(label_ranks, k) for k in topk}
    result["n_items"] = int(label_ranks.size)
    return result


def class_probabilities(item_embeddings: Array, classifier: Array, logit_scale: float = 100.0) -> np.ndarray:
    """Class probabilities `softmax(logit_scale * items @ classifier.T)`: `(n, d)`, `(n_classes, d)` ->
    `(n, n_classes)` float32.

    `logit_scale` is the multiplier itself (`exp` of a checkpoint's stored `logit_scale`; CLIP uses 100).
    """
    items = torch.as_tensor(_to_float32(item_embeddings))
    classes = torch.as_tensor(_to_float32(classifier))
    if items.ndim != 2 or classes.ndim != 2 or items.shape[1] != classes.shape[1]:
        raise ValueError(
            f"need (n, d) items and (n_classes, d) classes, got {tuple(items.shape)} and {tuple(classes.shape)}"
        )
    return torch.softmax(logit_scale * (items @ classes.T), dim=1).numpy()


@functools.cache
def _openai_imagenet_templates() -> tuple[str, ...]:
    """open_clip's 80 OpenAI ImageNet templates as format strings with one "{}"."""
    # Imported here: importing open_clip takes seconds and only template users need it.
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(template("{}") for template in OPENAI_IMAGENET_TEMPLATES)


def _to_float32(array: Array) -> np.ndarray:
    """numpy or torch, any device -> numpy float32."""
    if isinstance(array, torch.Tensor):
        array = array.detach().to("cpu", torch.float32).numpy()
    return np.asarray(array, dtype=np.float32)


def _unit_rows(matrix: np.ndarray, what: str) -> np.ndarray:
    """`(n, d)` float32 -> rows divided by their L2 norm; a zero or non-finite row is an error."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    bad = np.flatnonzero(~np.isfinite(norms[:, 0]) | (norms[:, 0] == 0))
    if bad.size:
        raise ValueError(f"{what} (row {int(bad[0])}) has zero or non-finite norm and cannot be normalised")
    return (matrix / norms).astype(np.float32)
