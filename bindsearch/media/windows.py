"""Long video and audio as windows: what lets a search name the moment, not just the file.

LanguageBind embeds a video from 8 frames spread over the whole clip, and audio from three 10 s crops: right for
the clips it was trained on (10-30 s), blind to most of an hour-long recording. A file longer than
`WindowPlan.longer_than` is therefore cut into consecutive windows of about `WindowPlan.seconds`, each embedded
as a clip of its own.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["WINDOWED", "Window", "WindowPlan", "duration", "format_clock", "format_window", "parse_clock",
           "parse_moment"]

Window = tuple[float, float]
"""(start, end) in seconds from the start of the file."""

WINDOWED = ("video", "audio")
"""The modalities that have a time axis to cut."""

MIN_SECONDS = 0.5
"""The shortest window: a tower reads 8 frames or a 1 s crop of sound, and an hour cut finer than this would be
tens of thousands of windows."""


@dataclass(frozen=True)
class WindowPlan:
    """Files longer than `longer_than` seconds (default: three windows) are cut into windows of about `seconds`.

    The windows are equal, consecutive and cover the whole file: 95 s at 10 s gives ten windows of 9.5 s.
    `seconds=0` keeps every file whole.
    """

    seconds: float = 10.0
    longer_than: float | None = None

    def __post_init__(self) -> None:
        if not math.isfinite(self.seconds) or self.seconds < 0 or 0 < self.seconds < MIN_SECONDS:
            raise ValueError(f"a window must be 0 (whole files) or at least {MIN_SECONDS:g} s long, "
                             f"got {self.seconds:g}")

    @property
    def threshold(self) -> float:
        return 3 * self.seconds if self.longer_than is None else self.longer_than

    def windows(self, seconds: float | None) -> list[Window] | None:
        """The windows of a file that lasts `seconds`; None keeps it whole (short, or of unknown length)."""
        if not self.seconds or seconds is None or not math.isfinite(seconds) or seconds <= self.threshold:
            return None
        count = max(1, round(seconds / self.seconds))
        edges = np.linspace(0.0, seconds, count + 1)
        return [(round(float(a), 3), round(float(b), 3)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def duration(modality: str, path: str | Path) -> float | None:
    """How long a video or audio file lasts, in seconds, from its headers; None where they do not say."""
    path = Path(path)
    try:
        if modality == "video":
            from bindsearch.media.video import video_duration

            return video_duration(path)
        if modality == "audio":
            from bindsearch.media.audio import audio_duration

            return audio_duration(path)
    except Exception:  # an unreadable file is named by the decoder that reads it, in one line
        return None
    return None


def format_clock(seconds: float) -> str:
    """75.5 -> '1:15.5', 3600 -> '1:00:00': a time as a player shows it."""
    whole, fraction = divmod(round(seconds, 1), 1)
    hours, rest = divmod(int(whole), 3600)
    minutes, secs = divmod(rest, 60)
    clock = f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
    return clock + (f".{round(fraction * 10)}" if round(fraction * 10) else "")


def format_window(window: Window) -> str:
    """(80, 90) -> '1:20-1:30'."""
    return f"{format_clock(window[0])}-{format_clock(window[1])}"


def parse_clock(text: str) -> float:
    """'80', '80.5', '1:20', '1:02:03.5' -> seconds; ValueError for anything else."""
    parts = text.strip().split(":")
    try:
        numbers = [float(p) for p in parts] if len(parts) <= 3 and all(p.strip() for p in parts) else []
    except ValueError:
        numbers = []
    # copysign: "-0:30" is a negative time too, though float("-0") is not below 0.
    if (not numbers or any(math.copysign(1.0, n) < 0 or not math.isfinite(n) for n in numbers)
            or any(n >= 60 for n in numbers[1:])):
        raise ValueError(f"{text!r} is not a time: give seconds (80) or m:ss (1:20) or h:mm:ss (1:02:03)")
    seconds = 0.0
    for n in numbers:
        seconds = seconds * 60 + n
    return seconds


def parse_moment(value: object) -> float:
    """A moment as `search --at`, serve's `at` and `Collection.search(at=...)` all take it: seconds as a number, or
    a str `parse_clock` reads; ValueError (parse_clock's words) for anything else, NaN and negatives included."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and 0 <= value < math.inf:
        return float(value)
    return parse_clock(value if isinstance(value, str) else repr(value))
