"""Video decoding: file -> (3, frames, size, size) float32, the reference's 8 uniformly spaced frames.

decord reads the frames (batched seeks) of the files it numbers right: H.264, HEVC, VP8/9 and the like in MP4, MOV,
Matroska/WebM and FLV. PyAV reads the rest (AVI, MPEG-PS and -TS, WMV, MPEG-2 and -4 Part 2 with B-frames anywhere:
decord's seeks land on other frames there), and any file where decord is missing or refuses it.
Frames are turned upright by the file's display matrix (portrait phone video), resized short side -> `image_size`
(bilinear, as the reference's ShortSideScale), centre-cropped and normalised; never flipped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from bindsearch.media.errors import MediaError, ffmpeg_cause, native_stderr_silenced
from bindsearch.media.windows import Window
from bindsearch.modalities import Preprocess

__all__ = ["frame_indices", "load_video", "read_frames", "video_duration"]


def picture_streams(container) -> list:
    """A container's video streams that are pictures in time: not the cover art an .mp4 or .m4a of a podcast,
    audiobook or song carries as a one-frame video stream (`attached_pic`)."""
    import av

    cover = av.stream.Disposition.attached_pic
    return [s for s in container.streams.video if not s.disposition & cover]


def frame_indices(total: int, count: int) -> np.ndarray:
    """`count` indices spread uniformly over `total` frames, first and last included (linspace, floored): how
    LanguageBind samples a whole clip."""
    return np.linspace(0, total - 1, count, dtype=int)


def window_times(window: Window, count: int) -> np.ndarray:
    """`count` moments (seconds) spread over `window`, one in the middle of each of its `count` equal parts: a
    window's frames are those on screen then. By time, not by frame number: a screen recording or a phone's
    variable-rate video writes a frame only when the picture changes, and its frame numbers say nothing of when."""
    start, end = window
    return start + (np.arange(count) + 0.5) * (end - start) / count


def frames_at(starts: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The frame on screen at each of `times`: the last one starting at or before it (`starts` sorted, from 0)."""
    return np.clip(np.searchsorted(starts, times + 1e-6, side="right") - 1, 0, len(starts) - 1)


# Where decord's batched seeks were checked to land on the frames asked for (a generated file whose frames show their
# own number, B-frames included). Elsewhere they land frames or seconds away: AVI, MPEG-PS and -TS and ASF (WMV)
# carry timestamps it misreads, and MPEG-2 and MPEG-4 Part 2 with B-frames are off by a few frames even in MP4.
_DECORD_FORMATS = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "flv"})
_DECORD_CODECS = frozenset({"h264", "hevc", "vp8", "vp9", "flv", "mjpeg"})  # FFmpeg's decoder names ("flv": Sorenson)


def _decord_reads_it_right(path: Path) -> bool:
    import av

    try:
        # The headers name the codec: skip_frame keeps the open from decoding a frame (1 ms, not 25 at 640x360).
        with av.open(str(path), options={"skip_frame": "all"}) as container:
            pictures = picture_streams(container)
            if not pictures or len(pictures) != len(container.streams.video):
                return False  # PyAV says what the file holds instead, or reads its picture past its cover art
            codec = container.streams.video[0].codec_context.name
            return container.format.name in _DECORD_FORMATS and codec in _DECORD_CODECS
    except (av.FFmpegError, OSError, ValueError):
        return True  # decord may still read it, and PyAV says why not after it


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
            picks = frame_indices(total, count)
        else:  # by the frames' own timestamps: the average rate puts a variable-rate file's windows elsewhere
            starts = reader.get_frame_timestamp(np.arange(total))[:, 0]
            # A frame without a timestamp reads as FFmpeg's "none" in seconds (-1e14 in MPEG-PS, -9e17 for every
            # frame of an AVI): the windows would all cut at the first frame, or the last.
            if not (np.isfinite(starts).all() and starts.min() > -1e6 and (np.diff(starts) >= 0).all()):
                raise MediaError(path, "decord's frame timestamps are missing or out of order")  # PyAV reads it
            if starts[0] < 0:  # an edit list trims the start (`ffmpeg -ss N -c copy`): decord counts frames never
                raise MediaError(path, "decord reads frames an edit list cuts")  # shown, its windows a GOP early
            picks = frames_at(starts - starts[0], window_times(window, count))
        return reader.get_batch(picks.tolist()).asnumpy()
    except (decord.DECORDError, RuntimeError) as exc:  # decord raises both for unreadable files
        raise MediaError(path, f"not a readable video ({str(exc).splitlines()[0][:200]})") from None


def _read_av(path: Path, count: int, window: Window | None) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            pictures = picture_streams(container)
            if not pictures:
                hint = "; it holds sound only: read it as audio" if container.streams.audio else ""
                raise MediaError(path, f"no video stream{hint}")
            stream = pictures[0]
            picture = stream.index  # read again below, from a container opened anew
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            if window is not None:  # by timestamps, with or without a count of frames or a length in the headers
                return _read_av_window(path, container, stream, count, window, fps)
            total = sum(1 for packet in container.demux(stream) if packet.size)
        if total == 0:
            raise MediaError(path, "video has no frames")
        wanted = frame_indices(total, count)
        keep: dict[int, np.ndarray] = {}
        with av.open(str(path)) as container:
            for i, frame in enumerate(container.decode(container.streams[picture])):
                if i in set(wanted.tolist()):
                    keep[i] = _upright(frame)
                if i >= wanted[-1]:
                    break
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"not a readable video ({ffmpeg_cause(exc)})") from None
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


def _read_av_window(path: Path, container, stream, count: int, window: Window, fps: float) -> np.ndarray:
    """A window's frames by seeking to the key frame before it: a long file is not decoded from its start once
    per window. Each is the frame on screen at one of `window_times`, told by timestamps counted from the first
    frame's."""
    first = next(container.decode(stream), None)
    if first is None:
        raise MediaError(path, "no frame could be decoded")
    if first.time is None:
        raise MediaError(path, "video frames carry no timestamps, so it cannot be cut into windows")
    # Frame 0's time, not the stream's start: an AVI with B-frames starts at 0 and shows its first frame at 0.1 s.
    origin = first.time
    # AVI holds no timestamps, only one slot a frame: reordering B-frames gives each frame another's (0, 3, 2, 4,
    # 1), so frames are counted on from the key frame a seek lands on, at its constant rate.
    counted = container.format.name == "avi"
    if counted and not fps > 0:
        raise MediaError(path, "video does not say its frame rate, so it cannot be cut into windows")
    times = window_times(window, count)
    back = 0.0
    while True:
        seconds = times[0] - back
        if seconds > 0:
            container.seek(int((origin + seconds) / stream.time_base), stream=stream, backward=True)
            frames = _shown(path, container.decode(stream), times, origin, fps, counted)
        else:  # from the start, opened anew: AVI refuses a seek before its first frame, MPEG-TS lands seconds after
            import av

            with av.open(str(path)) as again:
                frames = _shown(path, again.decode(again.streams[stream.index]), times, origin, fps, counted)
            if frames is None:
                raise MediaError(path, "no frame could be decoded")
        if frames is None:  # MPEG-PS and -TS seek by guessing a byte position, and can land after the window starts
            back = max(1.0, 2 * back)
            continue
        return np.stack(frames)


def _shown(path: Path, frames, times: np.ndarray, origin: float, fps: float, counted: bool
           ) -> list[np.ndarray] | None:
    """The frame on screen at each of `times` (seconds from the first frame; the last decoded repeats past the
    end), or None where the first frame decoded comes after the first time. Only the picks are kept as pixels: a
    window of 1080p frames is gigabytes."""
    picks: list = []
    latest, number = None, -1
    for frame in frames:
        if frame.time is None:
            raise MediaError(path, "video frames carry no timestamps, so it cannot be cut into windows")
        if counted:  # numbered on from the first frame decoded, whose number its time gives
            number = number + 1 if latest is not None else round((frame.time - origin) * fps)
            shown_from = number / fps
        else:
            shown_from = frame.time - origin
        if latest is None and shown_from > times[0] + 1e-6:
            return None
        while len(picks) < len(times) and times[len(picks)] + 1e-6 < shown_from:
            picks.append(latest)
        latest = frame
        if len(picks) == len(times) or shown_from >= times[-1] - 1e-6:
            break
    if latest is None:
        return None
    picks += [latest] * (len(times) - len(picks))
    pixels = {id(frame): _upright(frame) for frame in picks}
    return [pixels[id(frame)] for frame in picks]


def read_frames(path: str | Path, count: int, window: Window | None = None) -> np.ndarray:
    """(count, h, w, 3) uint8 RGB frames at uniformly spaced indices (of those shown during `window`, in
    seconds, when given)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty")
    if window is not None:  # past the end the decoders would repeat the last frame; windows `index` plans end there
        lasts = _seconds_or_none(path)
        if lasts is not None and window[0] >= lasts:
            raise MediaError(path, f"the video lasts {lasts:.1f} s, so nothing of it is shown from {window[0]:g} s")
    try:
        import decord  # noqa: F401
    except ImportError:
        return _read_av(path, count, window)
    if not _decord_reads_it_right(path):
        return _read_av(path, count, window)
    try:
        return _read_decord(path, count, window)
    except MediaError:
        # PyAV reads some files decord refuses, and its error names the cause more plainly.
        return _read_av(path, count, window)


def video_duration(path: str | Path) -> float | None:
    """Seconds from the container's headers (the video stream's length, else the file's, else frames / frame
    rate); None where they do not say."""
    import av

    with av.open(str(path)) as container:
        pictures = picture_streams(container)
        if not pictures:
            return None
        stream = pictures[0]
        # Not frames / average rate first: a variable-rate file's average is of its frame intervals, not of its
        # length (110 frames of a 40 s screen recording made 45.8 s, and windows were planned past its end).
        seconds = _header_seconds(container, stream)
        if seconds > 0:
            return seconds
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        return stream.frames / fps if stream.frames and fps > 0 else None


def _seconds_or_none(path: Path) -> float | None:
    """`video_duration`, or None where the headers cannot be read (the decoder then says why)."""
    import av

    try:
        return video_duration(path)
    except (av.FFmpegError, OSError, ValueError):
        return None


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
