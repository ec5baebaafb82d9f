"""Draw one BindWorld scene as an RGB image, a depth map, an infrared frame and a short video (numpy only).

All four views share the scene's geometry (shape, size, position, the same jitter and rotation), as
several sensors looking at one scene would; each has its own background and sensor noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = [
    "COLOURS",
    "Geometry",
    "coverage",
    "render_depth",
    "render_image",
    "render_infrared",
    "render_video",
    "sample_geometry",
]

# Centres of the 3x3 grid, as fractions of the frame; objects jitter around them by `_POSITION_JITTER`.
_GRID = (0.23, 0.5, 0.77)
_ROWS = {"top": 0, "bottom": 2}
_COLUMNS = {"left": 0, "right": 2}
_POSITION_JITTER = 0.03
# Half-extent of the object as a fraction of the frame; neighbours differ by ~1.4x, jitter is +-7%.
_RADIUS = {"small": 0.11, "medium": 0.155, "large": 0.21}
_RADIUS_JITTER = 0.07
_MAX_ROTATION_DEG = 10.0
# Distance travelled over the whole clip as a fraction of the frame (~1 : 2 : 3.2, like the sound's
# impact rates); the clip is centred on the object's position.
_PATH = {"slow": 0.10, "medium": 0.20, "fast": 0.32}
_DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.12),
    "orange": (0.98, 0.55, 0.08),
    "yellow": (0.95, 0.90, 0.15),
    "green": (0.15, 0.70, 0.20),
    "blue": (0.15, 0.35, 0.95),
    "purple": (0.55, 0.20, 0.80),
    "pink": (0.98, 0.50, 0.75),
}

# Infrared intensity (0-255) of the object per temperature; the background sits at 70-110 ambient,
# so cold objects are darker than their surroundings and warm/hot ones brighter (hot ones also glow).
_INFRARED = {"cold": (15.0, 40.0), "warm": (150.0, 175.0), "hot": (215.0, 245.0)}


@dataclass(frozen=True)
class Geometry:
    """Where the object is: centre `(x, y)` and radius in pixels, rotation in radians, motion per clip."""

    shape: str
    x: float
    y: float
    radius: float
    angle: float
    path: tuple[float, float]  # (dx, dy) pixels travelled from the first to the last video frame
    size: int  # frame side in pixels


def sample_geometry(attributes: Mapping[str, str], rng: np.random.Generator, size: int) -> Geometry:
    """Jittered pixel geometry for a scene's shape, size, position, direction and speed."""
    position = attributes["position"]
    row = next((i for word, i in _ROWS.items() if position.startswith(word)), 1)
    column = next((i for word, i in _COLUMNS.items() if position.endswith(word)), 1)
    jitter = rng.uniform(-1, 1, 2) * _POSITION_JITTER
    x, y = (_GRID[column] + jitter[0]) * size, (_GRID[row] + jitter[1]) * size
    radius = _RADIUS[attributes["size"]] * size * (1 + rng.uniform(-1, 1) * _RADIUS_JITTER)
    angle = np.deg2rad(rng.uniform(-_MAX_ROTATION_DEG, _MAX_ROTATION_DEG))
    length = _PATH[attributes["speed"]] * size * rng.uniform(0.92, 1.08)
    dx, dy = _DIRECTIONS[attributes["direction"]]
    return Geometry(attributes["shape"], float(x), float(y), float(radius), float(angle),
                    (dx * length, dy * length), size)


def coverage(
    geometry: Geometry, offset: tuple[float, float] = (0.0, 0.0), supersample: int = 4
) -> np.ndarray:
    """`(size, size)` float32 in [0, 1]: the share of each pixel the object covers (anti-aliased)."""
    s, r = geometry.size, geometry.radius
    cx, cy = geometry.x + offset[0], geometry.y + offset[1]
    alpha = np.zeros((s, s), np.float32)
    # Only the object's bounding box is supersampled: the rest of the frame is empty.
    x0, x1 = max(int(cx - 1.2 * r) - 1, 0), min(int(cx + 1.2 * r) + 2, s)
    y0, y1 = max(int(cy - 1.2 * r) - 1, 0), min(int(cy + 1.2 * r) + 2, s)
    if x0 >= x1 or y0 >= y1:
        return alpha
    xs = x0 + (np.arange((x1 - x0) * supersample) + 0.5) / supersample - cx
    ys = y0 + (np.arange((y1 - y0) * supersample) + 0.5) / supersample - cy
    dx, dy = np.meshgrid(xs / r, ys / r)
    cos, sin = np.cos(geometry.angle), np.sin(geometry.angle)
    inside = _inside(geometry.shape, cos * dx + sin * dy, -sin * dx + cos * dy)
    block = inside.reshape(y1 - y0, supersample, x1 - x0, supersample).mean(axis=(1, 3))
    alpha[y0:y1, x0:x1] = block
    return alpha


def render_image(
    attributes: Mapping[str, str], geometry: Geometry, rng: np.random.Generator
) -> np.ndarray:
    """`(size, size, 3)` uint8 RGB: a coloured object on a textured, unevenly lit grey background."""
    return render_video(attributes, geometry, rng, frames=1, moving=False)[0]


def render_video(
    attributes: Mapping[str, str], geometry: Geometry, rng: np.random.Generator, frames: int = 8,
    moving: bool = True,
) -> np.ndarray:
    """`(frames, size, size, 3)` uint8 RGB: the object crossing its position along `geometry.path`."""
    s = geometry.size
    light = rng.uniform(0, 2 * np.pi)
    lx, ly = np.cos(light), np.sin(light)
    background = rng.uniform(0.3, 0.6) + rng.uniform(-0.05, 0.05, 3)
    grid = (np.arange(s) - s / 2) / s
    ramp = rng.uniform(0.0, 0.15) * (lx * grid[None, :] + ly * grid[:, None])
    texture = 0.06 * _smooth_noise(rng, s)
    base = np.clip(background[None, None, :] + (ramp + texture)[:, :, None], 0, 1)
    colour = np.clip(np.array(COLOURS[attributes["colour"]]) + rng.normal(0, 0.03, 3), 0, 1)
    colour = colour * rng.uniform(0.85, 1.1)
    out = np.empty((frames, s, s, 3), np.uint8)
    for t in range(frames):
        share = (t / (frames - 1) - 0.5) if moving and frames > 1 else 0.0
        offset = (geometry.path[0] * share, geometry.path[1] * share)
        alpha = coverage(geometry, offset)[:, :, None]
        # Lit from the same side as the background ramp, so the object looks like part of the scene.
        cx, cy = geometry.x + offset[0], geometry.y + offset[1]
        xs, ys = (np.arange(s) - cx) / geometry.radius, (np.arange(s) - cy) / geometry.radius
        shade = 1 + np.clip(0.15 * (lx * xs[None, :] + ly * ys[:, None]), -0.2, 0.2)
        frame = base * (1 - alpha) + np.clip(colour * shade[:, :, None], 0, 1) * alpha
        frame = frame + rng.normal(0, 0.015, frame.shape)
        out[t] = np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8)
    return out


def render_depth(geometry: Geometry, rng: np.random.Generator) -> np.ndarray:
    """`(size, size)` float32 mm: a slightly domed object at 1-2 m before a tilted wall at 2.5-4 m."""
    s = geometry.size
    grid = (np.arange(s) - s / 2) / s
    wall = (
        rng.uniform(2500, 4000)
        + rng.uniform(-600, 600) * grid[None, :]
        + rng.uniform(-200, 800) * grid[:, None]
        + 30 * _smooth_noise(rng, s)
    )
    xs, ys = (np.arange(s) - geometry.x) / geometry.radius, (np.arange(s) - geometry.y) / geometry.radius
    rho2 = np.clip(xs[None, :] ** 2 + ys[:, None] ** 2, 0, 1)
    near = rng.uniform(1000, 2000) - rng.uniform(40, 120) * (1 - rho2)
    alpha = coverage(geometry)
    depth = wall * (1 - alpha) + near * alpha
    # Structured-light sensors get noisier with distance (roughly quadratically).
    depth = depth + rng.normal(0, 1, depth.shape) * 6 * (depth / 2000) ** 2
    return depth.astype(np.float32)


def render_infrared(temperature: str, geometry: Geometry, rng: np.random.Generator) -> np.ndarray:
    """`(size, size)` uint8 thermal intensity: the object's brightness says its temperature."""
    s = geometry.size
    grid = (np.arange(s) - s / 2) / s
    angle = rng.uniform(0, 2 * np.pi)
    ambient = (
        rng.uniform(70, 110)
        + rng.uniform(0, 30) * (np.cos(angle) * grid[None, :] + np.sin(angle) * grid[:, None])
        + 8 * _smooth_noise(rng, s)
    )
    low, high = _INFRARED[temperature]
    body = rng.uniform(low, high) + 5 * _smooth_noise(rng, s)
    alpha = coverage(geometry)
    frame = ambient * (1 - alpha) + body * alpha
    if temperature == "hot":
        glow = _blur(alpha, sigma=1.5)
        frame = frame + rng.uniform(25, 45) * glow * (1 - alpha)
    frame = frame + rng.normal(0, 3, frame.shape)
    return np.clip(np.rint(frame), 0, 255).astype(np.uint8)


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean mask of points `(u, v)` (units of the radius, v pointing down) inside a unit shape."""
    au, av = np.abs(u), np.abs(v)
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return np.maximum(au, av) <= 0.82
    if shape == "diamond":  # a tall rhombus, so that no rotation makes it a square
        return au / 0.72 + av / 1.12 <= 1.0
    if shape == "cross":
        return ((au <= 0.32) & (av <= 0.98)) | ((av <= 0.32) & (au <= 0.98))
    if shape == "triangle":
        angles = np.deg2rad([-90.0, 30.0, 150.0])
        return _inside_polygon(u, v - 0.1, 1.2 * np.cos(angles), 1.2 * np.sin(angles))
    if shape == "star":
        angles = np.deg2rad(-90.0 + 36.0 * np.arange(10))
        radii = np.where(np.arange(10) % 2 == 0, 1.12, 0.47)
        return _inside_polygon(u, v - 0.05, radii * np.cos(angles), radii * np.sin(angles))
    raise ValueError(f"unknown shape {shape!r}")


def _inside_polygon(u: np.ndarray, v: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Even-odd rule: points `(u, v)` inside the polygon with vertices `(px, py)`."""
    inside = np.zeros(u.shape, bool)
    for i in range(len(px)):
        x0, y0, x1, y1 = px[i], py[i], px[i - 1], py[i - 1]
        crosses = (y0 > v) != (y1 > v)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_at = x0 + (v - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (u < x_at)
    return inside


def _smooth_noise(rng: np.random.Generator, size: int, cells: int = 6) -> np.ndarray:
    """`(size, size)` float64 in about [-1, 1]: bilinearly upsampled coarse noise (background texture)."""
    coarse = rng.uniform(-1, 1, (cells + 1, cells + 1))
    pos = np.linspace(0, cells, size)
    i = np.minimum(pos.astype(int), cells - 1)
    f = pos - i
    rows = coarse[i] * (1 - f)[:, None] + coarse[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a `(h, w)` array, same shape."""
    radius = int(3 * sigma)
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    rows = np.apply_along_axis(np.convolve, 1, image, kernel, mode="same")
    return np.apply_along_axis(np.convolve, 0, rows, kernel, mode="same")
