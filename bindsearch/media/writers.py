"""Write media files with Python packages only (PyAV, soundfile, Pillow): no ffmpeg or sox needed.

Used by the tests, the benchmarks' dataset replicas and the BindWorld generator.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
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
    """Write `(n,)` mono or `(n, channels)` float samples in [-1, 1] as 16-bit PCM (wav/flac by suffix)."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
    return path


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
    with av.open(str(path), mode="w") as container:
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
