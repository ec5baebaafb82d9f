"""Audio decoding and LanguageBind's audio front end, in torch (no torchaudio).

file -> channel 0 at 16 kHz -> Kaldi fbank (112 mel bins, 25 ms / 10 ms) -> three crops of 1036 frames
(front, middle, back thirds; deterministic) -> (3, mel, frames), normalised.
"""

from __future__ import annotations

import contextlib
import math
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from bindsearch.media.errors import MediaError, ffmpeg_cause, native_stderr_silenced
from bindsearch.media.windows import Window
from bindsearch.modalities import Preprocess

__all__ = ["audio_duration", "crop_or_tile", "fbank", "load_audio", "read_audio", "resample"]

FRAME_SECONDS, SHIFT_SECONDS = 0.025, 0.010
"""Kaldi fbank's analysis frame and the step between frames."""


def read_audio(path: str | Path, window: Window | None = None) -> tuple[torch.Tensor, int]:
    """Any soundfile-readable file (wav, flac, ogg, mp3), else PyAV -> ((channels, n) float32, rate); only the
    samples of `window` (seconds) when given."""
    path = Path(path)
    import soundfile

    if path.suffix.lower() == ".wav":
        _check_wav_length(path)
    try:
        with _quiet(path):
            if window is None:
                data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            else:
                rate = soundfile.info(str(path)).samplerate
                data, rate = soundfile.read(str(path), dtype="float32", always_2d=True,
                                            start=round(window[0] * rate), stop=round(window[1] * rate))
        samples = torch.from_numpy(np.ascontiguousarray(data.T))
    except soundfile.LibsndfileError:
        samples, rate = _read_with_av(path, window)
    except RuntimeError as exc:  # soundfile raises RuntimeError for some truncated files
        raise MediaError(path, f"audio could not be decoded ({exc})") from None
    if samples.numel() == 0:
        raise MediaError(path, "audio file holds no samples")
    if not torch.isfinite(samples).all():
        raise MediaError(path, "audio holds NaN or infinite samples; re-export it")
    return samples, int(rate)


def _quiet(path: Path):
    """libmpg123 prints warnings about MP3 headers ("Xing stream size off") to stderr itself, naming no file, about
    files that decode fine: silenced while an MP3 is read."""
    return native_stderr_silenced() if path.suffix.lower() == ".mp3" else contextlib.nullcontext()


def _check_wav_length(path: Path) -> None:
    """A WAV whose data chunk is shorter than its header declares was cut off: refuse it."""
    with open(path, "rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return  # not RIFF/WAVE: let the decoder say what it is
        size = path.stat().st_size
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return
            declared = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                present = size - f.tell()
                # 0 and 0xFFFFFFFF mark streams written without knowing their length.
                if declared not in (0, 0xFFFFFFFF) and present < declared:
                    raise MediaError(path, f"truncated WAV: header declares {declared} bytes of audio, "
                                           f"file holds {present} (cut off in a copy or a recording?); copy it "
                                           "again, or save what it holds as a new file")
                return
            f.seek(declared + (declared & 1), 1)


def audio_duration(path: str | Path) -> float | None:
    """Seconds from the file's headers (soundfile, else PyAV); None where they do not say."""
    import soundfile

    try:
        with _quiet(Path(path)):
            return soundfile.info(str(path)).duration
    except soundfile.LibsndfileError:
        import av

        with av.open(str(path)) as container:
            return _av_seconds(container) if container.streams.audio else None


def _av_seconds(container) -> float | None:
    """The first audio stream's length from a PyAV container's header: the stream's own, else the container's."""
    stream = container.streams.audio[0]
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration else None


def _read_with_av(path: Path, window: Window | None = None) -> tuple[torch.Tensor, int]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise MediaError(path, "no audio stream")
            stream = container.streams.audio[0]
            rate, length = stream.rate, _av_length(stream)
            if window is not None and window[0] > 0:
                # Seeking lands on a packet at or before the start, a little earlier still so that a decoder that
                # needs its previous frame (AAC) is warm when the window starts; the samples before it are cut.
                container.seek(int(max(0.0, window[0] - 0.2) / stream.time_base), stream=stream)
            chunks = list(_decoded(path, container, stream, window))
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise MediaError(path, f"not a readable audio file ({ffmpeg_cause(exc)})") from None
    if not chunks:
        raise MediaError(path, "audio stream holds no samples")
    data = np.concatenate(chunks, axis=1)
    if window is None:
        data = data[:, :_without_padding(data.shape[1], length)]
    return torch.from_numpy(_as_float(data)), rate


def _decoded(path: Path, container, stream, window: Window | None = None):
    """The stream's samples as its decoder gives them, (channels, n) arrays in the file's sample format: only those
    of `window` (seconds) when given, else all but an encoder's priming samples (before 0 s)."""
    rate = stream.rate
    for frame in container.decode(stream):
        data = frame.to_ndarray()
        # Packed formats come as (1, n * channels); planar ones as (channels, n).
        data = data if frame.format.is_planar else data.reshape(-1, len(frame.layout.channels)).T
        if window is not None:
            if frame.time is None:
                raise MediaError(path, "audio frames carry no timestamps, so it cannot be cut into windows")
            first = round(frame.time * rate)
            lo, hi = round(window[0] * rate) - first, round(window[1] * rate) - first
            if hi <= 0:
                return
            data = data[:, max(lo, 0):hi]
        elif frame.time is not None and frame.time < 0:  # an encoder's priming samples (AAC), before 0 s
            data = data[:, round(-frame.time * rate):]
        yield data


def _av_length(stream) -> int | None:
    """The samples the header says the sound holds: an encoder pads its last frame (AAC: to 1,024 samples). Only
    that is cut (`_without_padding`): a raw stream's length is a guess from its first packets' bit rate."""
    return round(float(stream.duration * stream.time_base) * stream.rate) if stream.duration and stream.time_base \
        else None


def _without_padding(decoded: int, length: int | None) -> int:
    """How many of the `decoded` samples are the sound: the header's `length` where the rest is an encoder's
    padding."""
    return length if length and 0 < decoded - length <= _PADDING else decoded


def _as_float(data: np.ndarray) -> np.ndarray:
    """Samples in any of the decoders' formats -> float32 in [-1, 1)."""
    if data.dtype == np.uint8:  # 8-bit audio is unsigned, silence at 128
        data = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.integer):
        data = data.astype(np.float32) / (np.iinfo(data.dtype).max + 1)
    return np.ascontiguousarray(data, dtype=np.float32)


_DENSE_KERNEL_LIMIT = 1 << 22
"""Kernel entries (16 MB) up to which `resample` runs torchaudio's dense convolution; rates whose reduced ratio is
larger (22,254 Hz -> 16 kHz is 11,127:8,000, a 356 MB kernel) take the sparse path: the same weights, only the
taps that are not zero."""


def _sinc_weights(orig: int, new: int, taps: torch.Tensor, width_zeros: int, rolloff: float) -> torch.Tensor:
    """Hann-windowed sinc weights of output phase i (rows, `new`) at tap offset k (`taps`: (new, T) or (1, 1, K)),
    k counted from `width` source samples before the phase's block: torchaudio's default kernel, in its arithmetic."""
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = (taps - width).to(torch.float32) / orig
    t = torch.arange(0, -new, -1, dtype=torch.float32).view(-1, *[1] * (taps.dim() - 1)) / new + idx
    t = (t * base).clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    return torch.where(t == 0, torch.ones_like(t), t.sin() / t) * window * (base / orig)


_WIDTH_ZEROS, _ROLLOFF = 6, 0.99
"""torchaudio's default resampling: sinc lobes each side, and the cut-off as a share of the lower Nyquist rate."""


def _width(orig: int, new: int, width_zeros: int = _WIDTH_ZEROS, rolloff: float = _ROLLOFF) -> int:
    """Source samples each side of an output sample that its kernel reaches, at the reduced ratio orig:new."""
    return math.ceil(width_zeros * orig / (min(orig, new) * rolloff))


@lru_cache(maxsize=16)
def _sinc_kernel(orig: int, new: int, width_zeros: int = _WIDTH_ZEROS, rolloff: float = _ROLLOFF
                 ) -> tuple[torch.Tensor, int]:
    """(new, 1, 2 * width + orig) convolution kernel with stride orig, and width."""
    width = _width(orig, new, width_zeros, rolloff)
    taps = torch.arange(0, 2 * width + orig)[None, None]
    return _sinc_weights(orig, new, taps, width_zeros, rolloff), width


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """(..., n) float32 at orig_rate -> (..., ceil(n * new / orig)) at new_rate."""
    if orig_rate == new_rate:
        return wave
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    width = _width(orig, new)
    if new * (2 * width + orig) > _DENSE_KERNEL_LIMIT:
        return _resample_sparse(wave, orig, new)
    kernel, width = _sinc_kernel(orig, new)
    shape = wave.shape
    flat = F.pad(wave.reshape(-1, shape[-1]), (width, width + orig))
    out = F.conv1d(flat[:, None], kernel, stride=orig).transpose(1, 2).reshape(flat.shape[0], -1)
    out = out[:, : math.ceil(new * shape[-1] / orig)]
    return out.reshape(*shape[:-1], out.shape[-1])


def _resample_sparse(wave: torch.Tensor, orig: int, new: int, chunk: int = 1 << 15) -> torch.Tensor:
    """`resample` for a reduced ratio orig:new whose dense kernel would be large: output phase i reads only the
    2 * width + 2 source samples around it (the dense kernel's other taps are zero), gathered `chunk` outputs at
    a time."""
    width = _width(orig, new)
    span = 2 * width + 2
    first = torch.arange(new) * orig // new  # (new,) first non-zero tap of each phase, within its block
    taps = first[:, None] + torch.arange(span)  # (new, span)
    weights = _sinc_weights(orig, new, taps, _WIDTH_ZEROS, _ROLLOFF)
    weights[taps >= 2 * width + orig] = 0.0  # beyond the dense kernel's last tap
    shape = wave.shape
    flat = F.pad(wave.reshape(-1, shape[-1]), (width, width + orig + span))
    count = math.ceil(new * shape[-1] / orig)
    out = torch.empty(flat.shape[0], count, dtype=wave.dtype)
    for start in range(0, count, chunk):
        j = torch.arange(start, min(start + chunk, count))
        phase = j % new
        positions = ((j // new) * orig + first[phase])[:, None] + torch.arange(span)  # (chunk, span)
        out[:, start:start + len(j)] = (flat[:, positions] * weights[phase]).sum(-1)
    return out.reshape(*shape[:-1], count)


@lru_cache(maxsize=8)
def _mel_banks(num_bins: int, padded: int, rate: int, low: float = 20.0) -> torch.Tensor:
    """Kaldi's triangular mel filters: (num_bins, padded // 2 + 1), the Nyquist column zero."""
    def mel(f):
        return 1127.0 * np.log1p(np.asarray(f, dtype=np.float64) / 700.0)

    lo, hi = mel(low), mel(rate / 2)
    delta = (hi - lo) / (num_bins + 1)
    left = lo + np.arange(num_bins)[:, None] * delta
    centre, right = left + delta, left + 2 * delta
    freqs = mel((rate / padded) * np.arange(padded // 2))[None, :]
    up, down = (freqs - left) / (centre - left), (right - freqs) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return torch.from_numpy(np.pad(banks, ((0, 0), (0, 1))).astype(np.float32))


def fbank(wave: torch.Tensor, rate: int = 16000, num_mel_bins: int = 112) -> torch.Tensor:
    """Kaldi-compatible log mel filterbank of a (n,) waveform -> (frames, num_mel_bins) float32.

    Matches `torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type='hanning',
    dither=0, frame_length=25, frame_shift=10)` (snip_edges, DC removal, pre-emphasis 0.97, power spectrum).
    """
    size, shift = int(rate * FRAME_SECONDS), int(rate * SHIFT_SECONDS)
    padded = 1 << (size - 1).bit_length()
    if wave.shape[-1] < size:
        raise ValueError(f"audio shorter than one {size}-sample frame")
    count = 1 + (wave.shape[-1] - size) // shift
    frames = wave.contiguous().as_strided((count, size), (shift, 1))
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = (frames - 0.97 * previous) * torch.hann_window(size, periodic=False)
    power = torch.fft.rfft(F.pad(frames, (0, padded - size))).abs().pow(2)
    energies = power @ _mel_banks(num_mel_bins, padded, rate).T
    return energies.clamp_min(torch.finfo(torch.float32).eps).log()


def crop_or_tile(mel: torch.Tensor, target: int) -> torch.Tensor:
    """(frames, bins) -> (3, target, bins): longer clips give front/middle/back crops (each third's first
    start), shorter ones are tiled to length and repeated three times."""
    total = mel.shape[0]
    if total > target:
        return torch.stack([mel[s:s + target] for s in _crop_starts(total, target)])
    if total < target:
        mel = mel.repeat(target // total + 1, 1)[:target]
    return mel.unsqueeze(0).expand(3, -1, -1)


def load_audio(path: str | Path, prep: Preprocess | None = None, window: Window | None = None) -> torch.Tensor:
    """Audio file (or its `window`, in seconds) -> (3, num_mel_bins, target_length) float32, normalised as
    LanguageBind was trained."""
    prep = prep or Preprocess()
    crops = _long_file_crops(Path(path), prep) if window is None else None
    if crops is None:
        wave, rate = read_audio(path, window)
        wave = resample(wave, rate, prep.sample_rate)
        wave = wave - wave.mean()
        if wave.shape[-1] < int(prep.sample_rate * FRAME_SECONDS):
            raise MediaError(path, f"audio is {wave.shape[-1] / prep.sample_rate:.3f} s long, shorter than one "
                                   f"{FRAME_SECONDS * 1000:g} ms analysis frame; nothing to embed")
        crops = crop_or_tile(fbank(wave[0], prep.sample_rate, prep.num_mel_bins), prep.target_length)
    return (crops.transpose(1, 2) - prep.audio_mean) / (prep.audio_std * 2)


LONG_FILE_CROPS = 4
"""A file whose fbank is longer than this many crops is read crop by crop: a two-hour recording whole is gigabytes
of samples, three crops of 10 s are a few megabytes."""
_MARGIN_SECONDS = 0.1  # read around each crop, so that the resampler's edges fall outside it


def _long_file_crops(path: Path, prep: Preprocess) -> torch.Tensor | None:
    """(3, target_length, num_mel_bins) fbank crops of a long file, reading only the samples each crop covers (the
    same crops `crop_or_tile` cuts from the whole file, to float rounding: fbank removes each frame's mean, so the
    file's own mean drops out); None where the file is short. Formats soundfile cannot read (AAC in .m4a and .mp4,
    the voice memos and podcasts) are read by PyAV seeking to each crop: whole, 20 minutes of them took 4.5 GB.
    Where PyAV's seeks do not land on the sample, or the header's length is a guess (Opus in .webm, WMA, raw AAC),
    the file is decoded twice instead, once to count its samples and once to keep those under the crops."""
    header = _header_length(path)
    if header is None:
        return _streamed_crops(path, prep)
    rate, frames, via_av = header
    spans = _crop_spans(rate, frames, prep)
    if spans is None:
        return None
    samples = [_read_span(path, span.begin, span.stop, rate, via_av) for span in spans]
    return _crops_of(path, samples, spans, rate, prep)


class _Span(NamedTuple):
    """One crop's fbank input: 16 kHz samples [first, end), read as the file's samples [begin, stop), which
    resample to the 16 kHz samples from `lo` on."""
    first: int
    end: int
    lo: int
    begin: int
    stop: int


def _crop_spans(rate: int, frames: int, prep: Preprocess) -> list[_Span] | None:
    """What to read of a file of `frames` samples at `rate` for each of its three crops; None where the file is
    short enough to read whole."""
    new_rate = prep.sample_rate
    size, shift = int(new_rate * FRAME_SECONDS), int(new_rate * SHIFT_SECONDS)
    resampled = math.ceil(new_rate * frames / rate) if frames > 0 else 0
    total = 1 + (resampled - size) // shift if resampled >= size else 0
    if total <= LONG_FILE_CROPS * prep.target_length:
        return None
    g = math.gcd(rate, new_rate)
    orig, new = rate // g, new_rate // g
    margin = round(_MARGIN_SECONDS * new_rate)
    spans = []
    for start in _crop_starts(total, prep.target_length):
        first, end = start * shift, start * shift + (prep.target_length - 1) * shift + size
        lo = max(0, first - margin) // new * new  # on the grid where input and output samples coincide
        hi = min(resampled, end + margin)
        spans.append(_Span(first, end, lo, lo // new * orig, min(frames, math.ceil(hi * orig / new) + orig)))
    return spans


def _crops_of(path: Path, samples: list[torch.Tensor], spans: list[_Span], rate: int, prep: Preprocess
              ) -> torch.Tensor | None:
    """The fbank crops of the samples read for `spans`; None where the file held fewer than its header said."""
    crops = []
    for wave, span in zip(samples, spans, strict=True):
        if not torch.isfinite(wave).all():
            raise MediaError(path, "audio holds NaN or infinite samples; re-export it")
        wave = resample(wave, rate, prep.sample_rate)[span.first - span.lo:span.end - span.lo]
        if wave.shape[-1] < span.end - span.first:  # the header promised more than the file holds
            return None
        crops.append(fbank(wave, prep.sample_rate, prep.num_mel_bins))
    return torch.stack(crops)


def _streamed_crops(path: Path, prep: Preprocess) -> torch.Tensor | None:
    """`_long_file_crops` of a file PyAV reads but cannot seek in to the sample: two passes through the decoder,
    never more than a frame and the three crops' samples in memory (20 minutes of Opus in .webm, read whole,
    took 4.2 GB); None where the file is short, or not one PyAV reads (read whole, where the decoder says why)."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            rate, length, seconds = stream.rate, _av_length(stream), _av_seconds(container)
            # A header that says the file is short is believed: a container's to its padding, a raw stream's
            # (guessed from its first packets' bit rate) to half.
            trust = 0.5 if container.format.name in _LENGTH_GUESSED else 0.95
            if seconds is not None and seconds < trust * LONG_FILE_CROPS * prep.target_length * SHIFT_SECONDS:
                return None
            frames = _without_padding(sum(chunk.shape[1] for chunk in _decoded(path, container, stream)), length)
        spans = _crop_spans(rate, frames, prep)
        if spans is None:
            return None
        samples = [np.empty(span.stop - span.begin, np.float32) for span in spans]
        position = 0
        with av.open(str(path)) as container:
            for chunk in _decoded(path, container, container.streams.audio[0]):
                for into, span in zip(samples, spans, strict=True):
                    lo, hi = max(span.begin, position), min(span.stop, position + chunk.shape[1])
                    if lo < hi:
                        into[lo - span.begin:hi - span.begin] = _as_float(chunk[:1, lo - position:hi - position])[0]
                position += chunk.shape[1]
                if position >= spans[-1].stop:
                    break
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError):
        return None  # read whole, where the decoder says what is wrong
    if position < spans[-1].stop:  # the second pass decoded less than the first
        return None
    return _crops_of(path, [torch.from_numpy(wave) for wave in samples], spans, rate, prep)


def _header_length(path: Path) -> tuple[int, int, bool] | None:
    """(sample rate, samples, whether PyAV reads it) from the file's header: soundfile's, else PyAV's where its
    seeks land on the sample; None where neither says."""
    import soundfile

    if path.suffix.lower() == ".wav":
        _check_wav_length(path)
    try:
        with _quiet(path):
            info = soundfile.info(str(path))
        return int(info.samplerate), int(info.frames), False
    except (soundfile.LibsndfileError, RuntimeError):
        pass
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.audio or container.format.name not in _SEEKS_TO_THE_SAMPLE:
                return None
            seconds = _av_seconds(container)
            rate = container.streams.audio[0].rate
            return None if seconds is None else (int(rate), int(seconds * rate), True)
    except (av.FFmpegError, OSError, ValueError):
        return None


_SEEKS_TO_THE_SAMPLE = frozenset({"mov,mp4,m4a,3gp,3g2,mj2", "ogg"})
"""PyAV containers whose length is in their header and whose seeks land where a whole read has the same samples
(checked: AAC and ALAC in .m4a and .mp4, FLAC in .ogg). The rest are streamed (`_streamed_crops`): raw streams
(.aac, .ac3) have a length guessed from their bit rate, WMA's seeks land frames away, and Matroska (.webm, .mka)
counts Opus's padding in its length and seeks 24 samples early."""
_LENGTH_GUESSED = frozenset({"aac", "ac3", "eac3", "dts", "truehd", "mp3"})
"""PyAV formats of raw streams, whose length in the header is a guess from the bit rate of their first packets."""
_PADDING = 2048  # samples an encoder may add after the sound (AAC pads to 1,024 a frame)


def _read_span(path: Path, begin: int, stop: int, rate: int, via_av: bool) -> torch.Tensor:
    """Samples [begin, stop) of the file's first channel, (n,) float32."""
    if via_av:
        return _read_with_av(path, (begin / rate, stop / rate))[0][0].contiguous()
    import soundfile

    try:
        with _quiet(path):
            data, _ = soundfile.read(str(path), dtype="float32", always_2d=True, start=begin, stop=stop)
    except (soundfile.LibsndfileError, RuntimeError) as exc:
        raise MediaError(path, f"audio could not be decoded ({exc})") from None
    return torch.from_numpy(np.ascontiguousarray(data[:, 0]))


def _crop_starts(total: int, target: int) -> list[int]:
    """Where `crop_or_tile` cuts its three crops of `target` frames from `total` > `target`: each third's first
    start."""
    thirds = np.array_split(np.arange(total - target + 1), 3)
    return [int(part[0]) if len(part) else 0 for part in thirds]
