"""Video decoding: file -> (3, frames, size, size) float32, the reference's 8 uniformly spaced frames.

decord reads the frames (batched seeks); PyAV is the fallback where decord is missing or refuses a file.
Frames are turned upright by the file's display matrix (portrait phone video), resized short side -> `image_size`
(bilinear, as the reference's ShortSideScale), centre-cropped and normalised; never flipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bindsearch.media.errors import MediaError, native_stderr_silenced
from bindsearch.media.windows import Window
from bindsearch.modalities import Preprocess

__all__ = ["frame_indices", "load_video", "read_frames", "video_duration"]


def frame_indices(total: int, count: int, span: tuple[int, int] | None = None) -> np.ndarray:
    """`count` indices spread uniformly over `total` frames, first and last included (linspace, floored); within
    frames [lo, hi) of them when `span` is given."""
    lo, hi = span or (0, total)
    return lo + np.linspace(0, hi - lo - 1, count, dtype=int)


def window_span(path: Path, total: int, fps: float, window: Window | None) -> tuple[int, int] | None:
    """Frames [lo, hi) shown during `window` (seconds), at least one; None for the whole file."""
    if window is None:
        return None
    if not fps or not math.isfinite(fps) or fps <= 0:
        raise MediaError(path, "video does not say its frame rate, so it cannot be cut into windows")
    lo = min(total - 1, max(0, math.ceil(window[0] * fps - 1e-6)))
    hi = min(total, max(lo + 1, math.ceil(window[1] * fps - 1e-6)))
    return lo, hi


def stamped_span(starts: np.ndarray, window: Window) -> tuple[int, int]:
    """Frames [lo, hi) shown during `window` (seconds), at least one, from each frame's start time (sorted, from 0):
    the first frame starting at or after the window's start up to the first starting at or after its end, as
    `window_span` counts them at a constant rate."""
    total = len(starts)
    lo = min(total - 1, int(np.searchsorted(starts, window[0] - 1e-6)))
    hi = min(total, max(lo + 1, int(np.searchsorted(starts, window[1] - 1e-6))))
    return lo, hi


def _read_decord(path: Path, count: int, window: Window | None) -> np.ndarray:
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    try:
        with native_stderr_silenced():  # decord's C++ logs an unreadable file itself
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        total = len(reader)
        if total == 0:
            raise MediaError(path, "video has no frames")
        if window is None:
            span = None
        else:  # by the frames' own timestamps: the average rate puts a variable-rate file's windows elsewhere
            starts = reader.get_frame_timestamp(np.arange(total))[:, 0]
            span = stamped_span(starts - starts[0], window)
        return reader.get_batch(frame_indices(total, count, span).tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as exc:  # decord raises both for unreadable files
        raise MediaError(path, f"not a readable video ({str(exc).splitlines()[0][:200]})") from None


def _read_av(path: Path, count: int, window: Window | None) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                hint = "; it holds sound only: read it as audio" if container.streams.audio else ""
                raise MediaError(path, f"no video stream{hint}")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            # mkv, webm and others do not say how many frames they hold: from their length, where they say that.
            frames = stream.frames or (round(_header_seconds(container, stream) * fps) if fps > 0 else 0)
            if window is not None and frames:
                return _read_av_window(path, container, stream, frames, count, window, fps)
            total = sum(1 for packet in container.demux(stream) if packet.size)
        if total == 0:
            raise MediaError(path, "video has no frames")
        wanted = frame_indices(total, count, window_span(path, total, fps, window))
        keep: dict[int, np.ndarray] = {}
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(video=0)):
                if i in set(wanted.tolist()):
                    keep[i] = _upright(frame)
                if i >= wanted[-1]:
                    break
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"not a readable video ({getattr(exc, 'strerror', None) or exc})") from None
    if not keep:
        raise MediaError(path, "no frame could be decoded")
    last = keep[max(keep)]
    return np.stack([keep.get(int(i), last) for i in wanted])


def _upright(frame) -> np.ndarray:
    """(h, w, 3) uint8 RGB as a player shows the frame: turned by its display matrix, which phones write for
    portrait video (decord turns 180 degrees itself, and refuses 90, which then comes here)."""
    pixels = frame.to_ndarray(format="rgb24")
    quarters = round(getattr(frame, "rotation", 0) / 90) % 4  # counter-clockwise, as FFmpeg's players turn it
    return np.ascontiguousarray(np.rot90(pixels, quarters)) if quarters else pixels


def _header_seconds(container, stream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration else 0.0


def _read_av_window(path: Path, container, stream, total: int, count: int, window: Window, fps: float
                    ) -> np.ndarray:
    """A window's frames by seeking to the key frame before it: a long file is not decoded from its start once
    per window. Frame numbers come from timestamps; each wanted frame is the last one shown at or before it."""
    wanted = frame_indices(total, count, window_span(path, total, fps, window))
    origin = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0
    container.seek(int((origin + wanted[0] / fps) / stream.time_base), stream=stream, backward=True)
    shown: dict[int, np.ndarray] = {}
    for frame in container.decode(stream):
        if frame.time is None:
            raise MediaError(path, "video frames carry no timestamps, so it cannot be cut into windows")
        i = round((frame.time - origin) * fps)
        if wanted[0] - 1 <= i <= wanted[-1] or not shown:  # the frame on screen when the window starts, too
            shown[i] = _upright(frame)
        if i >= wanted[-1]:
            break
    if not shown:
        raise MediaError(path, "no frame could be decoded")
    numbers = np.array(sorted(shown))
    return np.stack([shown[int(numbers[max(np.searchsorted(numbers, w, side="right") - 1, 0)])] for w in wanted])


def read_frames(path: str | Path, count: int, window: Window | None = None) -> np.ndarray:
    """(count, h, w, 3) uint8 RGB frames at uniformly spaced indices (of those shown during `window`, in
    seconds, when given)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty")
    try:
        import decord  # noqa: F401
    except ImportError:
        return _read_av(path, count, window)
    try:
        return _read_decord(path, count, window)
    except MediaError:
        # PyAV reads some files decord refuses, and its error names the cause more plainly.
        return _read_av(path, count, window)


def video_duration(path: str | Path) -> float | None:
    """Seconds from the container's headers (frames / frame rate); None where they do not say."""
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            return None
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        if stream.frames and fps > 0:
            return stream.frames / fps
        return _header_seconds(container, stream) or None


def load_video(path: str | Path, prep: Preprocess | None = None, window: Window | None = None) -> torch.Tensor:
    """Video file (or its `window`, in seconds) -> (3, num_frames, s, s) float32, normalised with CLIP's mean
    and std."""
    prep = prep or Preprocess()
    decoded = torch.from_numpy(read_frames(path, prep.num_frames, window))  # (t, h, w, 3) uint8
    _, h, w, _ = decoded.shape
    size = prep.image_size
    new_h, new_w = (math.floor(h / w * size), size) if w < h else (size, math.floor(w / h * size))
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    # Frame by frame, so that only one frame at a time is float at full size (a 4K frame is 100 MB in float32).
    frames = torch.stack([
        F.interpolate(frame.permute(2, 0, 1)[:, None].float() / 255.0, size=(new_h, new_w), mode="bilinear",
                      align_corners=False)[:, 0, top:top + size, left:left + size]
        for frame in decoded], dim=1)
    mean = torch.tensor(prep.mean).view(3, 1, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1, 1)
    return ((frames - mean) / std).contiguous()
