"""Search results: `Hit`, the rows of an index search ranked as hits, and the JSON a search answers in."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bindsearch.files import NotAsIndexed, as_indexed, below, printable
from indexes import Item

__all__ = ["Hit", "inside_test", "ranked", "search_result"]


@dataclass(frozen=True)
class Hit:
    """One search result: catalog id, absolute path, modality and cosine score; for a window of a long file, its
    `start` and `end` in seconds; `size` and `mtime`: the file's as it was indexed (what tells it changed since)."""

    id: int
    path: str
    modality: str
    score: float
    start: float | None = None
    end: float | None = None
    size: int | None = field(default=None, repr=False, compare=False)
    mtime: float | None = field(default=None, repr=False, compare=False)

    def moment(self) -> str | None:
        """'1:20-1:30' for a window of a long file, None for a whole file."""
        if self.start is None or self.end is None:
            return None
        from bindsearch.media.windows import format_window

        return format_window((self.start, self.end))

    def words(self) -> str | None:
        """A text hit's words (its first `WORDS_BYTES`), the ones its score came from: read only while its file is
        as it was indexed (the same size and mtime). None for media, and for a text file changed, gone or unreadable
        since. (A Hit made without `size` and `mtime` reads its file as it is.)"""
        if self.modality != "text":
            return None
        from bindsearch.media import MediaError

        path = Path(self.path)
        try:
            if self.size is None or self.mtime is None:
                return _first_words(path)
            with as_indexed(path, self.size, self.mtime):
                return _first_words(path)
        except (MediaError, NotAsIndexed):
            return None


def _first_words(path: Path) -> str:
    """The first `WORDS_BYTES` of a text file's words; where that much of it is blank, its first words as far as
    `index` read it (a file of 5,000 spaces and then words was shown as changed)."""
    from bindsearch.media import MediaError, read_text

    try:
        return read_text(path, WORDS_BYTES)
    except MediaError:
        return read_text(path)[:WORDS_BYTES]


WORDS_BYTES = 4 << 10
"""How much of a text hit's file its words show: what any text tower reads (CLIP 77 tokens, MiniLM 128) and more.
All 64 KiB that indexing reads made a search of 200 long notes 13 MB of JSON."""


def search_result(collection: str, text: str | None, files: Sequence[str | Path], hits: Sequence[Hit],
                  at: float | None = None, under: Sequence[str | Path] = ()) -> dict:
    """What `search --json` prints and `bindsearch serve` answers: the query (`at`: the moment of its file, when
    one was asked for; `under`: the folders searched, when restricted) and its ranked hits (a text hit with its
    `words`, null once its file changed since it was indexed; a window of a long file with its start and end in
    seconds, and as a player shows them: "1:15.5-1:25.5")."""
    rows = []
    for rank, h in enumerate(hits, 1):
        row = {"rank": rank, "score": round(h.score, 6), "modality": h.modality, "path": h.path, "id": h.id}
        if h.modality == "text":
            row["text"] = h.words()
        if h.start is not None:
            row["start"], row["end"], row["moment"] = h.start, h.end, h.moment()
        rows.append(row)
    query = {"text": text, "files": [printable(f) for f in files], **({"at": at} if at is not None else {}),
             **({"under": [str(u) for u in under]} if under else {})}
    return {"collection": collection, "query": query, "hits": rows}


def ranked(scores: np.ndarray, ids: np.ndarray, found: dict[int, Item], exclude: set[str],
           exclude_ids: set[int], every_window: bool, inside: Callable[[str], bool] | None = None) -> list[Hit]:
    """One query's index rows as hits, best first: excluded files and rows (and, with `inside`, files outside the
    folders searched) dropped, and each file (each of its modalities) kept once, at its best window, unless
    `every_window`."""
    hits, seen = [], set()
    for score, i in zip(scores, ids, strict=True):
        item = found.get(int(i)) if i >= 0 else None
        if (item is None or item.path in exclude or item.id in exclude_ids
                or (inside is not None and not inside(item.path))
                or (not every_window and (item.path, item.modality) in seen)):
            continue
        seen.add((item.path, item.modality))
        hits.append(Hit(item.id, item.path, item.modality, float(score), item.start, item.end, item.size,
                        item.mtime))
    return hits


def inside_test(folders: Sequence[str]) -> Callable[[str], bool]:
    """A test of a stored path: is it one of `folders` (absolute paths) or below one of them?"""
    exact = set(folders)
    prefixes = tuple(below(f) for f in folders)
    return lambda path: path in exact or path.startswith(prefixes)
