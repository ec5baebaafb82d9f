"""Deterministic media files for the preprocessing parity goldens.

Imports numpy, Pillow and soundfile only, so the reference venv (which writes the goldens) and ours
(which checks against them) regenerate identical pixels and samples. Every sample is computed with
+ - * / and floor on float64 (no sin/exp, whose last bit varies between numpy builds and CPUs) and
quantised here, so the files do not depend on a library's rounding either. Sizes are width x height.

The video is the exception: H.264 encoding is not bit-reproducible across encoder builds, so
`clip.mp4` is written once (by `make_fixtures.py --rewrite-video`) and committed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CLIP_MP4", "clip_frames", "decoded_arrays", "make_media"]

CLIP_MP4 = Path(__file__).resolve().parents[1] / "fixtures" / "parity" / "media" / "clip.mp4"
SAMPLE_RATE = 44100


def _sin_turns(turns: np.ndarray) -> np.ndarray:
    """sin(2 pi turns) from arithmetic only: a degree-17 odd Taylor polynomial on [-pi, pi)."""
    frac = turns - np.floor(turns)
    x = 2.0 * np.pi * (frac - 0.5)  # sin(2 pi frac) = -sin(x)
    x2 = x * x
    acc = np.zeros_like(x)
    for n in range(17, 0, -2):
        coeff = 1.0
        for k in range(2, n + 1):
            coeff /= k
        acc = acc * x2 + (coeff if (n // 2) % 2 == 0 else -coeff)
    return -(acc * x)


def _uniform(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Uniform [0, 1) float64 noise; PCG64 `random()` is the most stable numpy stream."""
    return np.random.default_rng(seed).random(shape)


def _grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    return x / (width - 1), y / (height - 1)


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(values + 0.5), 0, 255).astype(np.uint8)


def rgb_pixels() -> np.ndarray:
    """(97, 131, 3) uint8: smooth colour ramps and a bump, plus seeded noise."""
    u, v = _grid(131, 97)
    bump = 1.0 - 4.0 * ((u - 0.35) ** 2 + (v - 0.6) ** 2)
    noise = (_uniform(11, (97, 131, 3)) - 0.5) * 24.0
    base = np.stack([255.0 * u, 255.0 * v * (1.0 - 0.5 * u), 128.0 + 110.0 * bump], axis=-1)
    return _to_uint8(base + noise)


def rgba_pixels() -> np.ndarray:
    """(60, 80, 4) uint8 with an alpha ramp (the reference would feed 4 channels to its network)."""
    u, v = _grid(80, 60)
    noise = (_uniform(12, (60, 80, 4)) - 0.5) * 16.0
    base = np.stack([200.0 * v + 30.0, 255.0 * u * v, 255.0 * (1.0 - u), 40.0 + 215.0 * u], axis=-1)
    return _to_uint8(base + noise)


def gray_pixels() -> np.ndarray:
    """(120, 90) uint8 single channel."""
    u, v = _grid(90, 120)
    ring = (u - 0.5) ** 2 + (v - 0.4) ** 2
    noise = (_uniform(13, (120, 90)) - 0.5) * 20.0
    return _to_uint8(40.0 + 180.0 * v + 300.0 * ring * (1.0 - v) + noise)


def depth_mm() -> np.ndarray:
    """(128, 96) uint16 millimetres in 0..12000: zeros (invalid) and > 10 m both appear."""
    u, v = _grid(96, 128)
    depth = 12000.0 * v + 1500.0 * (u - 0.5) * (1.0 - v) + (_uniform(14, (128, 96)) - 0.5) * 200.0
    depth[:6, :20] = 0.0
    return np.clip(np.floor(depth + 0.5), 0, 12000).astype(np.uint16)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(samples * 32767.0 + 0.5), -32768, 32767).astype(np.int16)


def short_audio() -> np.ndarray:
    """(3 s * 44100, 2) int16: different tones, DC offsets and noise per channel."""
    t = np.arange(3 * SAMPLE_RATE, dtype=np.float64) / SAMPLE_RATE
    noise = _uniform(21, (t.size, 2)) - 0.5
    envelope = 0.6 + 0.4 * t / 3.0
    left = envelope * (0.35 * _sin_turns(440.0 * t) + 0.2 * _sin_turns(1250.0 * t)) + 0.04 + 0.05 * noise[:, 0]
    # A chirp from 300 Hz upwards: phase is the integral of the frequency.
    right = 0.4 * _sin_turns(300.0 * t + 250.0 * t * t) - 0.03 + 0.08 * noise[:, 1]
    return _to_int16(np.stack([left, right], axis=1))


def long_audio() -> np.ndarray:
    """(25 s * 44100, 2) int16: a tone that steps every 5 s, so the three crops differ."""
    t = np.arange(25 * SAMPLE_RATE, dtype=np.float64) / SAMPLE_RATE
    noise = _uniform(22, (t.size, 2)) - 0.5
    step = np.floor(t / 5.0)
    freq = 300.0 + 350.0 * step
    # Phase accumulates per step so the tone is continuous: sum of earlier steps' turns.
    turns = freq * (t - 5.0 * step) + 5.0 * (300.0 * step + 350.0 * step * (step - 1.0) / 2.0)
    left = 0.4 * _sin_turns(turns) + 0.15 * _sin_turns(97.0 * t) + 0.02 + 0.06 * noise[:, 0]
    right = 0.3 * _sin_turns(523.0 * t) * (0.5 + 0.5 * _sin_turns(0.2 * t)) + 0.1 * noise[:, 1]
    return _to_int16(np.stack([left, right], axis=1))


def clip_frames() -> np.ndarray:
    """(50, 120, 160, 3) uint8 RGB: a drifting colour field, a moving square and a growing disc."""
    u, v = _grid(160, 120)
    frames = np.empty((50, 120, 160, 3), dtype=np.uint8)
    for i in range(50):
        s = i / 49.0
        r = 255.0 * (u * (1.0 - s) + s * v)
        g = 60.0 + 150.0 * v * (1.0 - u)
        b = 255.0 * s * (1.0 - v) + 40.0 * u
        frame = np.stack([r, g, b], axis=-1)
        x0, y0 = 10 + int(100 * s), 20 + int(60 * s * s)
        frame[y0 : y0 + 30, x0 : x0 + 30] = (250.0, 240.0, 30.0)
        disc = (u - 0.75) ** 2 + ((v - 0.3) * 0.75) ** 2 < (0.05 + 0.1 * s) ** 2
        frame[disc] = (20.0, 30.0 + 200.0 * s, 220.0)
        frames[i] = _to_uint8(frame)
    return frames


def decoded_arrays() -> dict[str, np.ndarray]:
    """The exact arrays that `make_media` writes (before encoding), by file name."""
    return {
        "rgb.png": rgb_pixels(),
        "rgba.png": rgba_pixels(),
        "gray.png": gray_pixels(),
        "depth.png": depth_mm(),
        "short.wav": short_audio(),
        "long.wav": long_audio(),
    }


def make_media(directory: str | Path) -> dict[str, Path]:
    """Write the PNG/WAV cases into `directory`; return {file name: path}, plus the committed clip.mp4."""
    import soundfile
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, array in decoded_arrays().items():
        path = directory / name
        if name.endswith(".png"):
            # uint8 (h, w) -> L, (h, w, 3) -> RGB, (h, w, 4) -> RGBA, uint16 (h, w) -> 16-bit grey.
            Image.fromarray(array).save(path)
        else:
            soundfile.write(str(path), array, SAMPLE_RATE, subtype="PCM_16")
        paths[name] = path
    paths["clip.mp4"] = CLIP_MP4
    return paths
