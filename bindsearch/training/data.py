"""Training pairs: a CSV of `path,caption` rows -> decoded inputs and caption embeddings, each computed once.

Several rows may name the same file (several captions per file). An optional `group` column marks files
that captions cannot tell apart (e.g. BindWorld scenes with the same sensed attributes): the loss then
treats them as positives of each other instead of as negatives.

`Pairs.time_reversed` adds a video played backwards as an item of its own, with its own captions (an
object moving left, reversed, moves right). Batches then hold each clip beside its reversal: pairs that
differ only in the arrow of time, which a tower must tell apart to lower the loss. `Pairs.negatives`
gives each item hard negative captions (the same caption with one attribute changed, as NegCLIP does):
extra wrong answers for that item alone in the loss.
"""

from __future__ import annotations

import csv
import hashlib
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bindsearch import media
from bindsearch.files import absolute
from bindsearch.media import MediaError
from bindsearch.models.config import Preprocess

__all__ = ["Batch", "PairSet", "Pairs", "decode_inputs", "embed_captions", "read_pairs"]


@dataclass
class Pairs:
    """Files with their captions: `captions[i]` describe `paths[i]`; `groups[i]` (optional) ties files.

    `time_reversed[i]` (optional) makes item i the video at `paths[i]` played backwards; such an item's
    path must also appear as a forward item, which becomes its partner in batches. `negatives[i]`
    (optional, as many for every item) are captions that nearly but do not describe item i.
    """

    paths: list[Path]
    captions: list[list[str]]
    groups: list[str] | None = None
    time_reversed: list[bool] | None = None
    negatives: list[list[str]] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep: Sequence[int]) -> Pairs:
        """The pairs at positions `keep`, in that order."""
        groups = [self.groups[i] for i in keep] if self.groups is not None else None
        reversed_ = [self.time_reversed[i] for i in keep] if self.time_reversed is not None else None
        negatives = [self.negatives[i] for i in keep] if self.negatives is not None else None
        return Pairs([self.paths[i] for i in keep], [self.captions[i] for i in keep], groups, reversed_, negatives)


def read_pairs(path: str | Path) -> Pairs:
    """CSV with columns `path,caption` (and optionally `group`); relative paths are relative to the CSV."""
    path = Path(path)
    try:
        return _read_pairs(path)
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None


def _read_pairs(path: Path) -> Pairs:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's "CSV UTF-8" starts with a BOM
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if not {"path", "caption"} <= columns:
            raise ValueError(f"{path} needs the columns path,caption (found {sorted(columns)})")
        order: dict[Path, int] = {}
        captions: list[list[str]] = []
        groups: list[str] = []
        for row in reader:
            if row["path"] is None or row["caption"] is None:  # a short row: csv leaves the missing fields None
                raise ValueError(f"{path} line {reader.line_num}: a row needs a path and a caption")
            if not row["caption"].strip():
                raise ValueError(f"{path} line {reader.line_num}: the caption is empty; give the words that "
                                 "describe the file, or drop the row")
            file = Path(row["path"]).expanduser()
            # One spelling of each file (`a/../b.png` and its absolute path are one item, not each other's negative).
            file = absolute(file if file.is_absolute() else path.parent / file)
            if file not in order:
                order[file] = len(order)
                captions.append([])
                groups.append(row.get("group") or "")
            captions[order[file]].append(row["caption"])
    if not order:
        raise ValueError(f"{path} holds no pairs")
    if "group" in columns and not all(groups) and any(groups):  # said, not dropped in silence
        warnings.warn(f"{path}: {groups.count('')} of {len(groups)} files have no group; the group column is not "
                      "used", stacklevel=2)
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


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:  # gone: its decode fails and is said then
        return None


def _key(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:16]


def decode_inputs(modality: str, paths: Sequence[Path], prep: Preprocess, cache: Path | None = None,
                  workers: int = 2) -> tuple[torch.Tensor, list[int]]:
    """Decode every file once -> ((n_ok, *input) float16, indices of the files that decoded).

    With `cache`, the result is stored as `cache/<modality>-<hash>.pt` (hash of the absolute paths, their sizes
    and modification times, the preprocessing and bindsearch's version) and reused; files that fail are skipped
    with a warning naming them.
    """
    from bindsearch import __version__

    paths = [Path(p) for p in paths]
    file = None
    if cache is not None:
        # Sizes alone miss media rewritten at the same size (every BindWorld WAV of one length, fixed-size arrays).
        stamps = [(st.st_size, st.st_mtime_ns) if st is not None else None for st in map(_stat, paths)]
        key = _key(modality, [str(p.absolute()) for p in paths], stamps, prep, __version__)
        file = Path(cache) / f"{modality}-{key}.pt"
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


class TextAnchor(Protocol):
    """A frozen sentence encoder: `name` keys the cache, `embed` returns (n, d) float32 unit vectors."""

    name: str

    def embed(self, texts: Sequence[str]) -> torch.Tensor: ...


def embed_captions(texts: Sequence[str], cache: Path | None = None, anchor: TextAnchor | None = None) -> torch.Tensor:
    """Captions -> (n, d) float32 unit vectors from the frozen anchor, cached by content.

    `anchor` defaults to MiniLM, the anchor of bindsearch-mini; `benchmarks/bindworld_text.py --anchor` probes
    other sentence encoders through it.
    """
    from bindsearch.models.mini import TEXT_NAME, shared_text

    texts = list(texts)
    name = TEXT_NAME if anchor is None else anchor.name
    file = Path(cache) / f"text-{_key(name, texts)}.pt" if cache is not None else None
    if file is not None and file.is_file():
        return torch.load(file, weights_only=True)
    # Many captions repeat (templates): embed each distinct one once.
    distinct = sorted(set(texts))
    index = {t: i for i, t in enumerate(distinct)}
    vectors = (anchor or shared_text("cpu")).embed(distinct)[[index[t] for t in texts]]
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        torch.save(vectors, file.with_suffix(".tmp"))
        os.replace(file.with_suffix(".tmp"), file)
    return vectors


class Batch(NamedTuple):
    """One training batch (see `PairSet.sample`)."""

    inputs: torch.Tensor
    text: torch.Tensor
    groups: torch.Tensor
    negatives: torch.Tensor | None


@dataclass
class PairSet:
    """Training-ready pairs: decoded inputs, caption vectors and which captions belong to which item.

    inputs (n, *input) float16; text (n_captions, 384) float32 unit rows; `caption_item` (n_captions,)
    int64 item of each caption; `first_caption` (n + 1,) int64 offsets; `groups` (n,) int64 tie ids;
    `partner` (n,) int64, for time-reversed pairs the other item of the pair (else -1), or None;
    `negatives` (n, k, 384) float32 unit rows, each item's hard negative captions, or None.
    """

    inputs: torch.Tensor
    text: torch.Tensor
    caption_item: torch.Tensor
    first_caption: torch.Tensor
    groups: torch.Tensor
    partner: torch.Tensor | None = None
    negatives: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def fingerprint(self) -> str:
        """What the pairs are, in 16 hex digits: the caption vectors, which item each belongs to, the groups, and
        each item's input summed (a resumed run must train on the same pairs)."""
        digest = hashlib.sha256()
        sums = self.inputs.reshape(len(self), -1).float().sum(dim=1) if len(self) else self.inputs.float()
        for tensor in (self.text, self.caption_item, self.groups, sums):
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    @classmethod
    def build(cls, modality: str, pairs: Pairs, prep: Preprocess, cache: Path | None = None,
              workers: int = 2) -> PairSet:
        """Decode the files and embed the captions (both cached); undecodable files are dropped."""
        files = list(dict.fromkeys(pairs.paths))  # a time-reversed item shares its file: decoded once
        decoded, kept = decode_inputs(modality, files, prep, cache, workers)
        row = {files[i]: r for r, i in enumerate(kept)}
        pairs = pairs.subset([i for i, path in enumerate(pairs.paths) if path in row])
        rows = torch.tensor([row[path] for path in pairs.paths])
        inputs = decoded if torch.equal(rows, torch.arange(len(decoded))) else decoded[rows]
        partner = None
        if pairs.time_reversed is not None and any(pairs.time_reversed):
            inputs, partner = _reverse_time(inputs, pairs)
        counts = torch.tensor([len(c) for c in pairs.captions])
        texts = [c for caps in pairs.captions for c in caps]
        if pairs.groups is not None:
            names = {g: i for i, g in enumerate(dict.fromkeys(pairs.groups))}
            groups = torch.tensor([names[g] for g in pairs.groups])
        else:
            groups = torch.arange(len(pairs))
        negatives = None
        if pairs.negatives is not None:
            k = {len(n) for n in pairs.negatives}
            if len(k) != 1 or 0 in k:
                raise ValueError(f"every item needs the same number of hard negative captions, got {sorted(k)}")
            flat = [c for item in pairs.negatives for c in item]
            negatives = embed_captions(flat, cache).view(len(pairs), k.pop(), -1)
        return cls(inputs=inputs, text=embed_captions(texts, cache),
                   caption_item=torch.repeat_interleave(torch.arange(len(pairs)), counts),
                   first_caption=torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]),
                   groups=groups, partner=partner, negatives=negatives)

    def sample(self, batch: int, rng: np.random.Generator) -> Batch:
        """A batch without repeats: inputs (b, ...) float16, one caption vector each (b, 384), groups (b,),
        hard negative caption vectors (b, k, 384) or None.

        With time-reversed pairs, a pair is drawn as one unit: both of its items are in the batch.
        """
        if self.partner is None:
            items = torch.from_numpy(rng.choice(len(self), size=min(batch, len(self)), replace=False))
        else:
            index = torch.arange(len(self))
            units = index[(self.partner < 0) | (self.partner > index)]  # unpaired items, first item of a pair
            order = units[torch.from_numpy(rng.permutation(len(units)))]
            size = 1 + (self.partner[order] >= 0).long()
            order = order[: int((size.cumsum(0) <= batch).sum())]
            items = torch.cat([order, self.partner[order][self.partner[order] >= 0]])
        starts, ends = self.first_caption[items], self.first_caption[items + 1]
        picks = starts + torch.from_numpy(rng.integers(0, (ends - starts).numpy()))
        negatives = self.negatives[items] if self.negatives is not None else None
        return Batch(self.inputs[items], self.text[picks], self.groups[items], negatives)


def _reverse_time(inputs: torch.Tensor, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip the frames of the time-reversed items; partner[i] = the other item of i's pair (else -1)."""
    if inputs.ndim != 5:
        raise ValueError(f"time reversal needs video inputs (n, channels, frames, h, w), got {tuple(inputs.shape)}")
    assert pairs.time_reversed is not None
    flags = torch.tensor(pairs.time_reversed)
    forward = {path: i for i, (path, back) in enumerate(zip(pairs.paths, pairs.time_reversed, strict=True))
               if not back}
    partner = torch.full((len(pairs),), -1, dtype=torch.long)
    for i in torch.nonzero(flags).squeeze(1).tolist():
        if pairs.paths[i] not in forward:
            raise ValueError(f"{pairs.paths[i]} is listed played backwards but not forwards")
        partner[i], partner[forward[pairs.paths[i]]] = forward[pairs.paths[i]], i
    inputs[flags] = inputs[flags].flip(2)  # `inputs` is a copy here: shared files make the rows repeat
    return inputs, partner
