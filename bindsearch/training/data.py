"""Training pairs: a CSV of `path,caption` rows -> decoded inputs and caption embeddings, each computed once.

Several rows may name the same file (several captions per file). An optional `group` column marks files
that captions cannot tell apart (e.g. BindWorld scenes with the same sensed attributes): the loss then
treats them as positives of each other instead of as negatives.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bindsearch import media
from bindsearch.media import MediaError
from bindsearch.models.config import Preprocess

__all__ = ["PairSet", "Pairs", "decode_inputs", "embed_captions", "read_pairs"]


@dataclass
class Pairs:
    """Files with their captions: `captions[i]` describe `paths[i]`; `groups[i]` (optional) ties files."""

    paths: list[Path]
    captions: list[list[str]]
    groups: list[str] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: Sequence[int]) -> Pairs:
        """The pairs at positions `keep`, in that order."""
        groups = [self.groups[i] for i in keep] if self.groups is not None else None
        return Pairs([self.paths[i] for i in keep], [self.captions[i] for i in keep], groups)


def read_pairs(path: str | Path) -> Pairs:
    """CSV with columns `path,caption` (and optionally `group`); relative paths are relative to the CSV."""
    path = Path(path)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if not {"path", "caption"} <= columns:
            raise ValueError(f"{path} needs the columns path,caption (found {sorted(columns)})")
        order: dict[Path, int] = {}
        captions: list[list[str]] = []
        groups: list[str] = []
        for row in reader:
            file = Path(row["path"]).expanduser()
            file = file if file.is_absolute() else path.parent / file
            if file not in order:
                order[file] = len(order)
                captions.append([])
                groups.append(row.get("group") or "")
            captions[order[file]].append(row["caption"])
    if not order:
        raise ValueError(f"{path} holds no pairs")
    has_groups = "group" in columns and all(groups)
    return Pairs(list(order), captions, groups if has_groups else None)


class _Decode(Dataset):
    def __init__(self, modality: str, paths: Sequence[Path], prep: Preprocess):
        self.modality, self.paths, self.prep = modality, list(paths), prep

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str]:
        try:
            return i, media.load(self.modality, self.paths[i], self.prep).to(torch.float16), ""
        except MediaError as exc:
            return i, None, str(exc)


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def decode_inputs(modality: str, paths: Sequence[Path], prep: Preprocess, cache: Path | None = None,
                  workers: int = 2) -> tuple[torch.Tensor, list[int]]:
    """Decode every file once -> ((n_ok, *input) float16, indices of the files that decoded).

    With `cache`, the result is stored as `cache/<modality>-<hash>.pt` (hash of paths, sizes and
    preprocessing) and reused; files that fail are skipped with a warning naming them.
    """
    paths = [Path(p) for p in paths]
    file = None
    if cache is not None:
        sizes = [p.stat().st_size if p.exists() else -1 for p in paths]
        file = Path(cache) / f"{modality}-{_key(modality, [str(p) for p in paths], sizes, prep)}.pt"
        if file.is_file():
            saved = torch.load(file, weights_only=True)
            return saved["inputs"], saved["kept"].tolist()
    loader = DataLoader(_Decode(modality, paths, prep), batch_size=32, num_workers=workers,
                        collate_fn=lambda items: items)
    kept, tensors, failures = [], [], []
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="lancedb fork support")
        for items in loader:
            for i, x, error in items:
                if x is None:
                    failures.append(error)
                else:
                    kept.append(i)
                    tensors.append(x)
    if failures:
        warnings.warn(f"{len(failures)} of {len(paths)} files could not be decoded and are left out, "
                      f"e.g. {failures[0]}", stacklevel=2)
    if not tensors:
        raise ValueError(f"none of the {len(paths)} {modality} files could be decoded")
    inputs = torch.stack(tensors)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_suffix(".tmp")
        torch.save({"inputs": inputs, "kept": torch.tensor(kept)}, tmp)
        os.replace(tmp, file)
    return inputs, kept


def embed_captions(texts: Sequence[str], cache: Path | None = None) -> torch.Tensor:
    """Captions -> (n, 384) float32 unit vectors from the frozen MiniLM anchor, cached by content."""
    from bindsearch.models.mini import TEXT_NAME, shared_text

    texts = list(texts)
    file = Path(cache) / f"text-{_key(TEXT_NAME, texts)}.pt" if cache is not None else None
    if file is not None and file.is_file():
        return torch.load(file, weights_only=True)
    # Many captions repeat (templates): embed each distinct one once.
    distinct = sorted(set(texts))
    index = {t: i for i, t in enumerate(distinct)}
    vectors = shared_text("cpu").embed(distinct)[[index[t] for t in texts]]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(vectors, file.with_suffix(".tmp"))
        os.replace(file.with_suffix(".tmp"), file)
    return vectors


@dataclass
class PairSet:
    """Training-ready pairs: decoded inputs, caption vectors and which captions belong to which item.

    inputs (n, *input) float16; text (n_captions, 384) float32 unit rows; `caption_item` (n_captions,)
    int64 item of each caption; `first_caption` (n + 1,) int64 offsets; `groups` (n,) int64 tie ids.
    """

    inputs: torch.Tensor
    text: torch.Tensor
    caption_item: torch.Tensor
    first_caption: torch.Tensor
    groups: torch.Tensor

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @classmethod
    def build(cls, modality: str, pairs: Pairs, prep: Preprocess, cache: Path | None = None,
              workers: int = 2) -> PairSet:
        """Decode the files and embed the captions (both cached); undecodable files are dropped."""
        inputs, kept = decode_inputs(modality, pairs.paths, prep, cache, workers)
        pairs = pairs.subset(kept)
        counts = torch.tensor([len(c) for c in pairs.captions])
        texts = [c for caps in pairs.captions for c in caps]
        if pairs.groups is not None:
            names = {g: i for i, g in enumerate(dict.fromkeys(pairs.groups))}
            groups = torch.tensor([names[g] for g in pairs.groups])
        else:
            groups = torch.arange(len(pairs))
        return cls(inputs=inputs, text=embed_captions(texts, cache),
                   caption_item=torch.repeat_interleave(torch.arange(len(pairs)), counts),
                   first_caption=torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
                   groups=groups)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch without repeats: (inputs (b, ...) float16, caption vectors (b, 384), groups (b,))."""
        items = torch.from_numpy(rng.choice(len(self), size=min(batch, len(self)), replace=False))
        starts, ends = self.first_caption[items], self.first_caption[items + 1]
        picks = starts + torch.from_numpy(rng.integers(0, (ends - starts).numpy()))
        return self.inputs[items], self.text[picks], self.groups[items]
