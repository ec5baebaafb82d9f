"""The sound of a BindWorld scene: a train of impacts (numpy only).

Material is the timbre of each impact (which partials ring, how long), size is its pitch (bigger is
lower), speed is the impact rate (the same ratio as the distance the object covers in the video).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["MATERIALS", "Timbre", "render_audio"]

# Fundamental per size: an octave apart, jittered by up to 4% (under a semitone).
_PITCH_HZ = {"small": 880.0, "medium": 440.0, "large": 220.0}
_PITCH_JITTER = 0.04
# Impacts per second per speed, jittered by up to 7%.
_RATE_HZ = {"slow": 2.0, "medium": 4.0, "fast": 6.5}
_RATE_JITTER = 0.07


@dataclass(frozen=True)
class Timbre:
    """One material's impact: partial frequency ratios, amplitudes, decay times (s) and a noise burst."""

    ratios: tuple[float, ...]
    amplitudes: tuple[float, ...]
    decays: tuple[float, ...]
    noise_level: float  # peak of the broadband burst at the contact, relative to the partials
    noise_seconds: float  # its decay time
    noise_smoothing: int  # box low-pass length in samples: 1 leaves a bright click, larger is duller


MATERIALS: dict[str, Timbre] = {
    # Short, dull knock with a woody noise burst.
    "wood": Timbre((1.0, 2.57, 4.21), (1.0, 0.5, 0.2), (0.06, 0.035, 0.02), 0.5, 0.008, 4),
    # Long inharmonic ring with beating (two nearly equal modes): a bell-like clang.
    "metal": Timbre((1.0, 1.006, 2.76, 5.40, 8.93), (0.8, 0.8, 0.7, 0.5, 0.3), (0.6, 0.6, 0.4, 0.25, 0.15),
                    0.15, 0.003, 1),
    # Bright clink: strong high partials, medium decay, sharp click.
    "glass": Timbre((1.0, 2.32, 4.25, 6.63), (0.8, 0.9, 0.8, 0.6), (0.14, 0.1, 0.07, 0.05), 0.4, 0.002, 1),
    # Dead thud: fundamental and a weak octave, short, with heavily low-passed noise.
    "rubber": Timbre((1.0, 2.0), (1.0, 0.15), (0.05, 0.02), 0.5, 0.01, 24),
}


def render_audio(
    attributes: Mapping[str, str], rng: np.random.Generator, sample_rate: int = 16000, seconds: float = 2.0
) -> np.ndarray:
    """`(round(sample_rate * seconds),)` float32 in [-1, 1]: impacts of the material, size and speed."""
    n = int(round(sample_rate * seconds))
    timbre = MATERIALS[attributes["material"]]
    f0 = _PITCH_HZ[attributes["size"]] * (1 + rng.uniform(-1, 1) * _PITCH_JITTER)
    grain = _impact(timbre, f0, rng, sample_rate)

    period = 1.0 / (_RATE_HZ[attributes["speed"]] * (1 + rng.uniform(-1, 1) * _RATE_JITTER))
    onsets = np.arange(rng.uniform(0.02, period), seconds, period)
    onsets = onsets + rng.normal(0, 0.03 * period, onsets.shape)
    audio = np.zeros(n, np.float64)
    for onset in onsets:
        start = int(round(onset * sample_rate))
        if not 0 <= start < n:
            continue
        stop = min(n, start + len(grain))
        audio[start:stop] += rng.uniform(0.75, 1.0) * grain[: stop - start]

    audio /= max(np.abs(audio).max(), 1e-9)
    audio *= rng.uniform(0.5, 0.9)
    audio += rng.uniform(0.003, 0.015) * _pink_noise(rng, n)
    return np.clip(audio, -1, 1).astype(np.float32)


def _impact(timbre: Timbre, f0: float, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """`(samples,)` float64: one impact, partials under the Nyquist limit plus the contact noise."""
    length = int(sample_rate * min(1.0, 5 * max(timbre.decays)))
    t = np.arange(length) / sample_rate
    grain = np.zeros(length)
    for ratio, amplitude, decay in zip(timbre.ratios, timbre.amplitudes, timbre.decays, strict=True):
        frequency = f0 * ratio
        if frequency >= 0.45 * sample_rate:
            continue
        phase = rng.uniform(0, 2 * np.pi)
        grain += amplitude * np.exp(-t / decay) * np.sin(2 * np.pi * frequency * t + phase)
    noise = rng.normal(0, 1, length)
    if timbre.noise_smoothing > 1:
        noise = np.convolve(noise, np.ones(timbre.noise_smoothing), mode="same")
        noise /= noise.std()
    grain += timbre.noise_level * noise * np.exp(-t / timbre.noise_seconds)
    # A 1 ms attack avoids a click that every material would share.
    attack = min(length, int(0.001 * sample_rate))
    grain[:attack] *= np.linspace(0, 1, attack)
    return grain / max(np.abs(grain).max(), 1e-9)


def _pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """`(n,)` float64 with unit peak and a 1/f spectrum: room tone."""
    spectrum = np.fft.rfft(rng.normal(0, 1, n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    noise = np.fft.irfft(spectrum, n)
    return noise / max(np.abs(noise).max(), 1e-9)
