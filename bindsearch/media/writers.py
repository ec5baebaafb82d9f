"""Write media files with Python packages only (PyAV, soundfile, Pillow): no ffmpeg or sox needed.

Used by the tests, the benchmarks' dataset replicas and the BindWorld generator.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

__all__ = ["write_audio", "write_depth_png", "write_image", "write_video"]


def write_image(path: str | Path, pixels: np.ndarray) -> Path:
    """Write `(h, w, 3)` or `(h, w)` uint8 pixels as PNG/JPEG (by suffix)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8)).save(path)
    return path


def write_depth_png(path: str | Path, depth_mm: np.ndarray) -> Path:
    """Write a `(h, w)` depth map in millimetres as a 16-bit PNG (the NYU-D convention)."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = np.clip(np.rint(depth_mm), 0, 65535).astype(np.uint16)
    Image.fromarray(values).save(path)
    return path


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int) -> Path:
    """Write `(n,)` mono or `(n, channels)` float samples in [-1, 1]: 16-bit PCM in wav/flac/aiff, Vorbis in ogg, or
    compressed through PyAV in the formats soundfile cannot write: AAC in .m4a, .mp4 and raw .aac, Opus in .webm and
    .mka (48 kHz and its divisors only), WMA in .wma."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.clip(samples, -1.0, 1.0)
    if path.suffix.lower() in _PYAV_AUDIO:
        _write_audio_with_av(path, samples, sample_rate)
        return path
    import soundfile

    # Opened here, so that a folder in the way or no permission is the system's error naming the file: libsndfile
    # said only "Error opening '...': System error."
    pcm = path.suffix.lower() in (".wav", ".flac", ".aif", ".aiff")  # Ogg takes Vorbis, soundfile's default for it
    try:
        with path.open("wb") as handle:
            soundfile.write(handle, samples, sample_rate, subtype="PCM_16" if pcm else None)
    except (soundfile.LibsndfileError, TypeError, ValueError):  # a format it cannot write: no empty file left
        path.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def _naming(path: Path) -> Iterator[None]:
    """PyAV's OSErrors with `path` as their file name: its IsADirectoryError (a folder in the way) named none."""
    try:
        yield
    except OSError as exc:
        if exc.filename is not None or exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror, str(path)) from None


_PYAV_AUDIO = {".m4a": "aac", ".mp4": "aac", ".aac": "aac", ".webm": "libopus", ".mka": "libopus", ".wma": "wmav2"}


def _write_audio_with_av(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    import av

    planes = np.ascontiguousarray(np.atleast_2d(samples.T), dtype=np.float32)  # (channels, n)
    layout = {1: "mono", 2: "stereo"}[len(planes)]
    with _naming(path), av.open(str(path), mode="w", format="adts" if path.suffix.lower() == ".aac" else None
                                ) as container:
        stream = container.add_stream(_PYAV_AUDIO[path.suffix.lower()], rate=sample_rate, layout=layout)
        stream.bit_rate = 128000
        for start in range(0, planes.shape[1], sample_rate):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, start:start + sample_rate]),
                                               format="fltp", layout=layout)
            frame.sample_rate, frame.pts = sample_rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_video(path: str | Path, frames: np.ndarray | Iterable[np.ndarray], fps: int = 8,
                codec: str = "libx264", rotation: int = 0) -> Path:
    """Write `(t, h, w, 3)` uint8 RGB frames (or `(h, w, 3)` frames one by one, for long videos) as an H.264 mp4
    (even width and height required); `rotation` (degrees, counter-clockwise) is recorded in the display matrix
    for players to turn the frames by, as phones record portrait video."""
    import av

    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError("a video needs at least one frame")
    h, w, _ = np.shape(first)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _naming(path), av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # Constant quality and no B-frame reordering keep small synthetic clips faithful.
        stream.options = {"crf": "18", "bf": "0"} if codec == "libx264" else {}
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in itertools.chain([first], frames):
            picture = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame, dtype=np.uint8), format="rgb24")
            for packet in stream.encode(picture):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
