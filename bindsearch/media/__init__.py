"""Media decoding: `load(modality, path) -> Tensor` in the layout each tower takes.

| modality | output | from |
|---|---|---|
| image, infrared | (3, s, s) | any Pillow image, HEIC/HEIF (pillow-heif) and AVIF; upright by EXIF; grayscale and
|  |  | RGBA converted to RGB; 16-bit and float single-channel files stretched between their 1st and 99th percentiles |
| depth | (3, s, s) | 16-bit PNG in millimetres, float TIFF in metres, or .npy (float metres, integer mm) |
| audio | (3, mel, frames) | wav/flac/ogg/mp3 (soundfile), anything else PyAV reads |
| video | (3, t, s, s) | anything decord or PyAV reads |

Text files (`.txt`, UTF-8) are items too, but they are read, not decoded: `read_text(path) -> str` gives the words
the text tower takes. New modalities register a loader with `register_modality`.

Video and audio also decode a window of a file, `load(modality, path, window=(start, end))` in seconds: how long
files are indexed as moments (`bindsearch.media.windows`).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bindsearch.files import printable, user_path
from bindsearch.media.errors import MediaError
from bindsearch.media.text import READ_BYTES
from bindsearch.media.text import read_text as _read_text
from bindsearch.media.windows import WINDOWED, Window, WindowPlan, duration, format_clock, format_window, parse_clock
from bindsearch.modalities import Preprocess, add_modality, canonical_modality, check_new_modality

if TYPE_CHECKING:
    import torch

__all__ = ["EXTENSIONS", "WINDOWED", "MediaError", "Window", "WindowPlan", "builtin_reader", "duration", "format_clock",
           "format_window", "guess_modality", "load", "modality_of", "parse_clock", "read_text", "register_modality",
           "registered_modalities", "sound_only"]

Loader = Callable[[Path, Preprocess], "torch.Tensor"]

# The decoders are imported when a file is first decoded: telling what changed in a folder (`index` with nothing
# to embed) needs the names here and none of torch, which takes a second and a half to import.
_LOADERS: dict[str, Loader | tuple[str, str]] = {
    "image": ("bindsearch.media.image", "load_image"),
    "infrared": ("bindsearch.media.image", "load_infrared"),
    "depth": ("bindsearch.media.image", "load_depth"),
    "audio": ("bindsearch.media.audio", "load_audio"),
    "video": ("bindsearch.media.video", "load_video"),
}
_BUILTIN = frozenset({*_LOADERS, "text"})

EXTENSIONS: dict[str, str] = {
    **dict.fromkeys((".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".heic", ".heif", ".avif"),
                    "image"),
    **dict.fromkeys((".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".mts",
                     ".m2ts", ".3gp"), "video"),
    **dict.fromkeys((".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".aiff", ".aif", ".wma",
                     ".mka", ".weba"), "audio"),
    ".npy": "depth",
    ".txt": "text",
}
# A folder with one of these names anywhere in a file's path decides the modality of images inside it.
FOLDER_HINTS = {"depth": "depth", "infrared": "infrared", "thermal": "infrared", "ir": "infrared",
                "lwir": "infrared"}


def builtin_reader(extension: str) -> str | None:
    """The built-in modality (text included) that files of `extension` (".png") are guessed as, if one is."""
    modality = EXTENSIONS.get(extension.lower())
    return modality if modality in _BUILTIN else None


def register_modality(name: str, loader: Loader, extensions: tuple[str, ...] = ()) -> None:
    """Teach `load` a new modality (e.g. a tactile pressure map); `extensions` are claimed for guessing."""
    check_new_modality(name)
    for ext in extensions:  # taken over, a photo was guessed as `name` and failed to decode
        if (reader := builtin_reader(ext)) is not None:
            raise ValueError(f"{ext} files are {reader} (a built-in modality); give {name} extensions of its own, or "
                             f"none and pick its files with --modality {name}")
    _LOADERS[name] = loader
    add_modality(name)
    for ext in extensions:
        EXTENSIONS[ext.lower()] = name


def registered_modalities() -> tuple[str, ...]:
    """Every modality `load` decodes: the built-in ones, then those registered."""
    return tuple(_LOADERS)


def load(modality: str, path: str | Path, preprocess: Preprocess | None = None,
         window: Window | None = None) -> torch.Tensor:
    """Decode one file for `modality` ('thermal' means infrared), or for video and audio the `window` (start, end)
    of it in seconds; raises MediaError naming the file (and the window)."""
    name = canonical_modality(modality)
    if name == "text":
        raise ValueError("text files are read, not decoded into a tensor: use media.read_text")
    if name not in _LOADERS:
        raise ValueError(f"no decoder for modality {modality!r}")
    prep = preprocess or Preprocess()
    loader = _loader(name)
    path = user_path(path)
    if window is None:
        return _guarded(name, path, lambda p: loader(p, prep))
    if name not in WINDOWED:
        raise ValueError(f"{name} has no time axis to take a window of")
    start, end = window
    if not 0 <= start < end < math.inf:
        raise ValueError(f"a window runs from a start >= 0 to a later, finite end, got {window}")
    try:
        return _guarded(name, path, lambda p: loader(p, prep, window))
    except MediaError as exc:
        raise MediaError(exc.path, f"at {format_window(window)}: {exc.cause}") from None


def _loader(name: str) -> Loader:
    loader = _LOADERS[name]
    if isinstance(loader, tuple):
        module, function = loader
        loader = _LOADERS[name] = getattr(importlib.import_module(module), function)
    return loader


def sound_only(path: str | Path) -> bool:
    """Whether a video file (by its extension) holds sound and no picture: a voice memo or podcast as .mp4. False
    where the file cannot be opened: its decoder then says why."""
    import av

    from bindsearch.media.video import picture_streams

    try:
        with av.open(str(path)) as container:  # cover art is no picture: a podcast's .mp4 is its sound
            return not picture_streams(container) and bool(container.streams.audio)
    except (av.FFmpegError, OSError, ValueError):
        return False


def read_text(path: str | Path, limit: int = READ_BYTES) -> str:
    """The words of a UTF-8 text file, whitespace collapsed (its first `limit` bytes: 64 KiB); raises MediaError
    naming it."""
    return _guarded("text", Path(path), lambda p: _read_text(p, limit))


def _guarded(name: str, path: Path, read: Callable[[Path], object]):
    """`read(path)`, with a missing, empty, unreadable or undecodable file turned into one MediaError naming it."""
    if not path.is_file():
        if path.is_symlink():
            raise MediaError(path, f"broken link to {os.readlink(path)}")
        raise MediaError(path, "no such file" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:  # said once for every modality, not in each decoder's own words
        raise MediaError(path, "file is empty")
    if name in WINDOWED and printable(path) != str(path):
        # libsndfile, FFmpeg and decord take names as UTF-8 text: bytes of another encoding cannot reach them.
        raise MediaError(printable(path), f"its name is not UTF-8, which the {name} decoders cannot open: rename "
                                          "the file")
    try:
        return read(path)
    except MediaError:
        raise
    except PermissionError:
        raise MediaError(path, "permission denied") from None
    except (OSError, ValueError, RuntimeError) as exc:
        raise MediaError(path, f"could not decode as {name} ({type(exc).__name__}: {exc})") from None


def guess_modality(path: str | Path, within: str | Path | None = None) -> tuple[str | None, str]:
    """(modality or None, why): from the extension, with folder names deciding depth/infrared images: the names
    of the folders from `within` (a folder given to `index`, its own name included) down to the file, or without
    it the name of the file's own folder (`index .` inside ~/depth/holiday holds photos)."""
    path = path if isinstance(path, Path) else Path(path)  # called once a file on every `index`
    modality = EXTENSIONS.get(path.suffix.lower())
    if modality is None and path.suffix.lower() == ".ts":  # a recorder's MPEG-TS, or (more often) TypeScript
        if _mpeg_ts(path):
            return "video", "MPEG-TS packets in a .ts file"
        return None, "a .ts file that is not MPEG-TS video"
    if modality is None:
        return None, f"unknown extension {path.suffix or '(none)'}"
    if modality == "image":
        top = Path(within) if within is not None and path.is_relative_to(within) else path.parent
        for part in reversed(path.parent.relative_to(top.parent).parts):
            hint = FOLDER_HINTS.get(part.lower())
            if hint:
                return hint, f"image inside a '{part}' folder"
    return modality, f"extension {path.suffix.lower()}"


def _mpeg_ts(path: Path) -> bool:
    """Whether the file starts with MPEG-TS packets: the sync byte 0x47 every 188 bytes (192 in Blu-ray's M2TS,
    which puts a 4-byte timestamp before each)."""
    try:
        if not path.is_file():  # a named pipe would wait for a writer for ever
            return False
        with path.open("rb") as f:
            head = f.read(3 * 192)
    except OSError:
        return False
    return any(len(head) >= start + 2 * size + 1 and head[start:start + 2 * size + 1:size] == b"GGG"
               for start, size in ((0, 188), (4, 192)))


def modality_of(path: str | Path) -> tuple[str | None, str]:
    """`guess_modality` of a file given by itself, a video file that holds sound alone (a voice memo as .mp4)
    being audio: one container open for each video file."""
    kind, why = guess_modality(path)
    if kind == "video" and sound_only(path):
        return "audio", "sound alone in a video container"
    return kind, why
