"""Moments of long files: the indexed window that holds a time, and the window a query by a moment decodes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bindsearch.errors import CollectionError
from indexes import Item

__all__ = ["SHOWN", "holding", "rows_at", "window_at", "window_from"]


SHOWN = 0.05
"""Half the tenth of a second moments are shown to (`0:10-0:20.1`): a window starting at 10.03 s is shown as
starting at 0:10."""


def window_at(path: Path, windows: Sequence[Item], at: float) -> Item:
    """The indexed window of a long file that holds the moment `at` (seconds); a moment within `SHOWN` before a
    window's start is that window's, so that a start copied from a hit (`@ 0:10-0:20.1`) finds that hit."""
    end = max(i.end for i in windows)
    if not 0 <= at < end:
        raise CollectionError(f"{path} lasts {end:g} s: a moment at {at:g} s is not in it")
    window = holding(windows, at)
    if window is None:  # windows an interrupted run kept, without this one
        raise CollectionError(f"{path}: no indexed window holds {at:g} s yet; run index again to finish it")
    return window


def holding(windows: Sequence[Item], at: float) -> Item | None:
    """The window that holds `at` (by `SHOWN`: the later of two where `at` is shown as the second's start), or
    None where none of these does."""
    return max((i for i in windows if i.start - SHOWN <= at < i.end), key=lambda i: i.start, default=None)


def rows_at(rows: Sequence[Item], at: float) -> list[Item]:
    """The rows that hold the moment `at`, of each file and modality among `rows`: the window there (windows an
    interrupted run kept may lack it), or the one row of a file indexed whole."""
    groups: dict[tuple[str, str], list[Item]] = {}
    for row in rows:
        groups.setdefault((row.path, row.modality), []).append(row)
    out = []
    for group in groups.values():
        if group[0].start is None:
            out += group
        elif (window := holding(group, at)) is not None:
            out.append(window)
    return out


def window_from(path: Path, modality: str, at: float, length: float) -> tuple[float, float]:
    """`length` seconds of a file not indexed as windows, from `at`; near its end, its last `length` seconds."""
    from bindsearch.media import WINDOWED, duration

    if modality not in WINDOWED:
        raise CollectionError(f"{path}: a moment is of a video or audio file, not of {modality}")
    seconds = duration(modality, path)
    if at < 0 or seconds is not None and at >= seconds:
        raise CollectionError(f"{path} lasts {seconds:g} s: a moment at {at:g} s is not in it" if seconds is not None
                              else f"a moment is a time from the start of {path}, not {at:g}")
    if seconds is None:
        return at, at + length
    start = max(0.0, min(at, seconds - length))
    return start, min(start + length, seconds)
