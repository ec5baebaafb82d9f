"""A BindWorld scene: its attributes, captions and files, how it is drawn by seed, and scenes.csv."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bindsearch.world.attributes import ATTRIBUTES, MODALITIES, SENSES
from bindsearch.world.captions import PARAPHRASE, TRAIN, Vocabulary, describe, distinct_captions

__all__ = [
    "CAPTION_SEPARATOR",
    "CSV_COLUMNS",
    "EXTENSIONS",
    "Scene",
    "assign_splits",
    "read_scenes",
    "sample_scene",
    "scene_id",
    "sensed_paraphrase",
    "write_scenes",
]

EXTENSIONS: dict[str, str] = {
    "image": "png", "depth": "png", "infrared": "png", "video": "mp4", "audio": "wav",
}
CAPTION_SEPARATOR = " | "
CSV_COLUMNS: tuple[str, ...] = (
    "id", "split", *ATTRIBUTES, "captions", "paraphrases", *(f"captions_{m}" for m in MODALITIES)
)


@dataclass(frozen=True)
class Scene:
    """One scene: id, split, one value per attribute, captions (full, paraphrased, per modality)."""

    id: str
    split: str
    shape: str
    size: str
    position: str
    colour: str
    temperature: str
    material: str
    direction: str
    speed: str
    captions: tuple[str, ...]  # training captions, every attribute mentioned
    paraphrases: tuple[str, ...]  # held-out wording, every attribute mentioned
    modality_captions: dict[str, tuple[str, ...]] = field(default_factory=dict)  # only what each senses

    @property
    def attributes(self) -> dict[str, str]:
        """Attribute name -> value, in `ATTRIBUTES` order."""
        return {name: getattr(self, name) for name in ATTRIBUTES}

    def path(self, directory: str | Path, modality: str) -> Path:
        """Where this scene's file for `modality` lives: `directory/<modality>/<id>.<ext>`."""
        if modality not in EXTENSIONS:
            raise ValueError(f"no file for modality {modality!r}; expected one of {list(EXTENSIONS)}")
        return Path(directory) / modality / f"{self.id}.{EXTENSIONS[modality]}"


def scene_id(index: int) -> str:
    """The id of the `index`-th scene: `s000123`."""
    return f"s{index:06d}"


def sample_scene(
    index: int, seed: int, split: str, captions: int = 4, paraphrases: int = 2, modality_captions: int = 3
) -> Scene:
    """Scene `index` of the world drawn with `seed`: uniform attributes, then captions (deterministic)."""
    rng = np.random.default_rng([seed, index, 0])
    values = {name: str(options[int(rng.integers(len(options)))]) for name, options in ATTRIBUTES.items()}
    per_modality = {}
    for modality in MODALITIES:
        sensed = {name: values[name] for name in ATTRIBUTES if name in SENSES[modality]}
        per_modality[modality] = tuple(distinct_captions(sensed, modality_captions, rng))
    return Scene(
        id=scene_id(index),
        split=split,
        **values,
        captions=tuple(distinct_captions(values, captions, rng, TRAIN)),
        paraphrases=tuple(distinct_captions(values, paraphrases, rng, PARAPHRASE)),
        modality_captions=per_modality,
    )


def sensed_paraphrase(scene: Scene, modality: str, vocabulary: Vocabulary = PARAPHRASE) -> str:
    """What `modality` senses of `scene`, in held-out wording: the benchmarks' paraphrase query (fixed per scene)."""
    rng = np.random.default_rng([int(scene.id[1:]), MODALITIES.index(modality), 99])
    return describe({a: scene.attributes[a] for a in ATTRIBUTES if a in SENSES[modality]}, rng, vocabulary)


def assign_splits(n: int, seed: int, fractions: dict[str, float]) -> list[str]:
    """`n` split names, exact counts by rounding `fractions` (last split takes the rest), shuffled by seed."""
    if not fractions or not all(f >= 0 for f in fractions.values()) or not abs(sum(fractions.values()) - 1) <= 1e-6:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    names = list(fractions)
    counts = [int(round(fractions[name] * n)) for name in names[:-1]]
    counts.append(n - sum(counts))
    if counts[-1] < 0 or any(count and not fractions[name] for count, name in zip(counts, names, strict=True)):
        # Rounding half to even overshot (n = 3 at 0.5/0.5/0), or gave scenes to a split of fraction 0: the largest
        # remainders instead. Only there, so that every world made before keeps its splits.
        exact = [fractions[name] * n for name in names]
        counts = [math.floor(x) for x in exact]
        for i in sorted(range(len(names)), key=lambda i: -(exact[i] - counts[i]))[: n - sum(counts)]:
            counts[i] += 1
    labels = np.repeat(np.array(names, dtype=object), counts)
    order = np.random.default_rng([seed, 1]).permutation(n)
    return [str(label) for label in labels[np.argsort(order)]]


def write_scenes(path: str | Path, scenes: list[Scene]) -> Path:
    """Write scenes as CSV with `CSV_COLUMNS`; caption lists are joined with `CAPTION_SEPARATOR`."""
    path = Path(path)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for scene in scenes:
            row = {"id": scene.id, "split": scene.split, **scene.attributes}
            row["captions"] = CAPTION_SEPARATOR.join(scene.captions)
            row["paraphrases"] = CAPTION_SEPARATOR.join(scene.paraphrases)
            for modality in MODALITIES:
                captions = scene.modality_captions.get(modality, ())
                row[f"captions_{modality}"] = CAPTION_SEPARATOR.join(captions)
            writer.writerow(row)
    return path


def read_scenes(directory: str | Path, split: str | None = None) -> list[Scene]:
    """Scenes listed in `directory/scenes.csv` (or a csv path), optionally only one split."""
    path = Path(directory)
    path = path / "scenes.csv" if path.is_dir() else path
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; create a world with `bindsearch world make DIR`")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = set(CSV_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path} lacks columns {sorted(missing)}; was it written by BindWorld?")
        rows = [row for row in reader if split is None or row["split"] == split]

    def split_captions(text: str) -> tuple[str, ...]:
        return tuple(text.split(CAPTION_SEPARATOR)) if text else ()

    return [
        Scene(
            id=row["id"],
            split=row["split"],
            **{name: row[name] for name in ATTRIBUTES},
            captions=split_captions(row["captions"]),
            paraphrases=split_captions(row["paraphrases"]),
            modality_captions={m: split_captions(row[f"captions_{m}"]) for m in MODALITIES},
        )
        for row in rows
    ]
