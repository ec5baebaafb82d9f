"""Image, infrared and depth decoding: file -> (3, size, size) float32 in CLIP's normalised space."""

from __future__ import annotations

import functools
import importlib.util
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from bindsearch.media.errors import MediaError
from bindsearch.modalities import Preprocess

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["image_for_display", "load_depth", "load_image", "load_infrared", "read_depth", "to_model_input"]


def to_model_input(pixels: torch.Tensor, prep: Preprocess, full: tuple[int, int] | None = None) -> torch.Tensor:
    """(c, h, w) float in [0, 1] -> short side resized (bicubic, antialiased), centre-cropped, normalised.

    The same arithmetic as torchvision's Resize(size) + CenterCrop + Normalize on tensors, without importing
    torchvision (seconds of start-up for every command). `full`: (h, w) of the image these pixels were decoded
    from at a reduced scale, whose proportions set the resized size (see `_short_side`).
    """
    size = prep.image_size
    pixels = _short_side(_centre_band(pixels), size, full)
    new_h, new_w = pixels.shape[1:]
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    pixels = pixels[:, top:top + size, left:left + size]
    mean = torch.tensor(prep.mean).view(3, 1, 1)
    std = torch.tensor(prep.std).view(3, 1, 1)
    return ((pixels - mean) / std).contiguous()


def _short_side(pixels: torch.Tensor, size: int, full: tuple[int, int] | None = None) -> torch.Tensor:
    """(c, h, w) float or uint8 -> short side `size` (bicubic, antialiased; torchvision's Resize(size) on tensors).

    `full`: the (h, w) of the image these pixels are a reduced decode of. Its proportions set the size, as they
    set the full image's: a JPEG decoded at half scale rounds an odd side up (2309 -> 1155), and the resized
    size rounded on (a 3464 x 2309 photo got 335 columns at 224 rows, not 336), shifting the crop by a column.
    """
    _, h, w = pixels.shape
    if full is not None and max(full) <= _MAX_ASPECT * min(full):  # else `_centre_band` cut it: its own shape
        h, w = full
    new_h, new_w = (int(size * h / w), size) if w <= h else (size, int(size * w / h))
    if (new_h, new_w) == tuple(pixels.shape[1:]):
        return pixels
    return F.interpolate(pixels[None], size=(new_h, new_w), mode="bicubic", align_corners=False, antialias=True)[0]


_MAX_ASPECT = 8
"""Beyond this aspect ratio an image is cut to its centre before resizing (see `_centre_band`)."""


def _centre_band(pixels: torch.Tensor) -> torch.Tensor:
    """A (c, h, w) image longer than `_MAX_ASPECT` times its short side, cut to its centre `_MAX_ASPECT` squares.

    Resizing the short side first, as the reference does, would blow a 2 x 40,000 strip up to 224 x 4,480,000
    pixels (12 GB) only to keep its centre square. Images within the ratio (every ordinary photo) are untouched;
    beyond it the centre crop shows the same part of the image, resampled on a grid shifted by up to a pixel
    from the reference's (a few units of normalised value apart on noise, the same picture to the eye).
    """
    _, h, w = pixels.shape
    short, long = min(h, w), max(h, w)
    if long <= _MAX_ASPECT * short:
        return pixels
    keep = _MAX_ASPECT * short
    start = (long - keep) // 2
    return pixels[:, start:start + keep] if h > w else pixels[:, :, start:start + keep]


def _open(path: Path, fit: int | None = None, full_size: bool = False):
    """The decoded image; a JPEG at least `fit` pixels on its short side is decoded at a reduced scale (1/2 to 1/8,
    in the DCT) where that still leaves `fit`. With `full_size`: (image, (w, h) of the file's full image)."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() in (".heic", ".heif"):
        _heif_opener()
    try:
        # Pillow warns (several lines on stderr) from MAX_IMAGE_PIXELS and refuses from twice that: every image
        # is downsized to the tower's input anyway, so only the refusal, a MediaError below, is worth saying.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
            size = image.size
            if fit is not None and image.format in ("JPEG", "MPO"):  # MPO: a phone's multi-picture JPEG
                image.draft(image.mode, (fit, fit))
            image.load()  # decode now, so a truncated file fails here and not later
    except UnidentifiedImageError:
        hint = "; HEIC photos need pillow-heif (pip install pillow-heif)" if path.suffix.lower() in (
            ".heic", ".heif") and importlib.util.find_spec("pillow_heif") is None else ""
        raise MediaError(path, f"not a readable image{hint}") from None
    except Image.DecompressionBombError as exc:
        raise MediaError(path, f"too large to decode safely ({exc}); downscale it") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise MediaError(path, f"image could not be decoded ({exc})") from None
    return (image, size) if full_size else image


def _upright(image: Image.Image) -> Image.Image:
    """The image turned by its EXIF orientation; as it is where the EXIF block is broken (the pixels are good)."""
    from PIL import ImageOps

    try:
        if image.getexif().get(_ORIENTATION, 1) in (0, 1):  # upright already: no copy (a 144 MP scan's is 576 MB)
            return image
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):
        return image


_ORIENTATION = 0x0112  # the EXIF tag


@functools.cache
def _heif_opener() -> None:
    """Teach Pillow HEIC/HEIF (phones' photos), once, when the first one is opened: pillow-heif loads libheif."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError:  # an install without it: the file is then "not a readable image", with the fix named
        return
    register_heif_opener()


_HIGH_DEPTH_MODES = ("I;16", "I;16B", "I;16L", "I", "F")
"""Single-channel modes with more than 8 bits (16-bit PNG/TIFF, 32-bit integer or float TIFF)."""


def load_image(path: str | Path, prep: Preprocess | None = None) -> torch.Tensor:
    """RGB, grayscale, RGBA, palette or CMYK file -> (3, s, s), upright by its EXIF orientation; single-channel
    files are repeated to RGB. 16-bit and float single-channel files (raw thermal frames, scientific images) are
    stretched between their own 1st and 99th percentiles, as a thermal camera's automatic gain does for display."""
    path, prep = Path(path), prep or Preprocess()
    fit = PREFILTER * prep.image_size
    image, full = _open(path, fit, full_size=True)
    drafted = image.size != full
    turned = _upright(image)
    if turned.size != image.size:  # turned a quarter: so are the full image's sides
        full = full[::-1]
    image, full_hw = turned, (full[1], full[0]) if drafted else None
    if image.mode in _HIGH_DEPTH_MODES:
        gray = _stretched(np.asarray(image, dtype=np.float32), path)
        pixels = torch.from_numpy(gray).unsqueeze(0).expand(3, -1, -1)
    else:
        rgb = torch.from_numpy(np.array(_on_white(image))).permute(2, 0, 1)  # a copy: Pillow's is read-only
        if min(rgb.shape[1:]) >= 2 * fit:  # resized in uint8: a float copy of 24 megapixels is 290 MB
            rgb = _short_side(_centre_band(rgb), prep.image_size, full_hw)
        pixels = rgb.to(torch.float32) / 255.0
    return to_model_input(pixels, prep, full_hw)


def _on_white(image: Image.Image) -> Image.Image:
    """RGB as a viewer shows the image: transparent pixels over white, as Hugging Face's image processors lay them.
    Dropping the alpha showed what the transparent pixels happen to store: a black logo on a transparent
    background became a black square, a cut-out photo its hidden magenta."""
    from PIL import Image

    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and "transparency" not in image.info:
        return image if image.mode == "RGB" else image.convert("RGB")  # RGB already: no copy
    rgba = image.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")


PREFILTER = 4
"""Photos are decoded and resized cheaply down to this many times the tower's input: a JPEG larger than that is
decoded at a reduced scale (1/2 to 1/8, in its DCT), and an image still twice that large is resized in uint8, not
in float32. A 24-megapixel photo took 0.7-1.1 s and an index of a photo library was bound by it. The tower's input
moves by a fraction of an 8-bit step on average (`benchmarks/image_decode.py`)."""


def _stretched(values: np.ndarray, path: Path) -> np.ndarray:
    """(h, w) values of any range -> [0, 1], from the 1st to the 99th percentile, clipped beyond (a dead or hot
    pixel does not grey out the rest); a constant image is mid grey."""
    finite = np.isfinite(values)
    if not finite.any():
        raise MediaError(path, "image holds no finite pixel value")
    low, high = (float(v) for v in np.percentile(values[finite], [1, 99]))
    if high == low:
        low, high = float(values[finite].min()), float(values[finite].max())
    values = np.where(finite, values, low)
    if high == low:
        return np.full(values.shape, 0.5, dtype=np.float32)
    return np.clip((values - low) / (high - low), 0.0, 1.0).astype(np.float32)


load_infrared = load_image  # LanguageBind's thermal tower takes infrared frames exactly as images


_BROWSER_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP")
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "PA", "RGB", "RGBA")


def image_for_display(path: str | Path, fit: int) -> Image.Image | None:
    """What a browser can show of an image file, as an 8-bit picture upright by its EXIF orientation (a JPEG
    decoded at a reduced scale down to `fit`), or None where the file itself shows as it is: an 8-bit JPEG, PNG,
    GIF, WebP or BMP. A 16-bit or float frame (raw thermal) is stretched as `load_image` reads it; a TIFF, HEIC or
    AVIF is converted. Raises MediaError naming the file."""
    from PIL import Image

    path = Path(path)
    try:
        with Image.open(path) as probe:  # its header alone
            if probe.format in _BROWSER_FORMATS and probe.mode in _EIGHT_BIT_MODES:
                return None
    except Exception:  # noqa: BLE001 - HEIC before its opener is registered, or broken: `_open` says which
        pass
    image = _upright(_open(path, fit))
    if image.mode in _HIGH_DEPTH_MODES:
        gray = _stretched(np.asarray(image, dtype=np.float32), path)
        return Image.fromarray((gray * 255).round().astype(np.uint8), mode="L")
    return image.convert("RGBA" if "A" in image.mode else "RGB")


_NPY_RULE = "depth .npy must be a 2-D array: float in metres, or integer in millimetres (numpy.save)"


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _read_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as f:
        # Without numpy.save's magic, np.load takes the file for a pickle and advises allow_pickle: never here.
        if f.read(6) != b"\x93NUMPY":
            raise MediaError(path, f"not a NumPy array file; {_NPY_RULE}")
        f.seek(0)
        try:
            # A header may claim any shape: allocating it before reading would fail (or swap) on a forged file.
            read_header = _NPY_HEADERS.get(np.lib.format.read_magic(f))
            if read_header is not None:
                shape, _, dtype = read_header(f)
                if not dtype.hasobject and math.prod(shape) * dtype.itemsize > path.stat().st_size:
                    raise MediaError(path, f"its header says {shape} {dtype} values, more than the file holds "
                                           "(cut short?)")
            f.seek(0)
            depth = np.load(f, allow_pickle=False)
        except ValueError as exc:
            if "allow_pickle" in str(exc):  # an object array, which only unpickling could read
                raise MediaError(path, f"holds Python objects, not numbers; {_NPY_RULE}") from None
            raise MediaError(path, f"not a readable .npy depth map ({exc})") from None
    if depth.dtype.kind not in "uif":
        raise MediaError(path, f"holds {depth.dtype} values, not depths; {_NPY_RULE}")
    return depth


def _depth_metres(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".npy":
        stored = _read_npy(path)
        depth = stored.astype(np.float32)
        if stored.dtype.kind in "ui":  # integers count millimetres, as in 16-bit depth PNGs (np.save of one)
            depth /= 1000.0
        while depth.ndim > 2 and 1 in depth.shape:  # (1, h, w) or (h, w, 1), as some tools save one channel
            depth = np.squeeze(depth, axis=depth.shape.index(1))
    else:
        image = _open(path)
        if image.mode not in _HIGH_DEPTH_MODES:
            raise MediaError(path, f"{image.mode} image is not a depth map: save depth as a 16-bit PNG in "
                                   "millimetres, a float TIFF or a .npy in metres")
        depth = np.asarray(image, dtype=np.float32)
        if image.mode != "F":  # integer depth images count millimetres; float ones (32-bit TIFF) metres
            depth = depth / 1000.0
    if depth.ndim != 2 or depth.size == 0:
        raise MediaError(path, f"depth map must be 2-D, got shape {depth.shape}")
    finite = np.isfinite(depth)
    if not finite.all():
        if not finite.any():
            raise MediaError(path, "depth map holds no finite value (all NaN or infinite); nothing to embed")
        # Pixels with no reading (NaN, as float depth tools write them): 0, as sensors write theirs in 16-bit PNGs.
        depth = np.where(finite, depth, 0.0).astype(np.float32)
    return depth


def read_depth(path: str | Path) -> np.ndarray:
    """A depth map as (h, w) float32 metres, from a 16-bit PNG in millimetres, a float TIFF, or a .npy in metres
    (float) or millimetres (integer)."""
    return _depth_metres(Path(path))


def load_depth(path: str | Path, prep: Preprocess | None = None) -> torch.Tensor:
    """16-bit PNG (mm), float TIFF or .npy (float m, integer mm) -> metres clipped to [0.01, max_depth] / max_depth,
    as 3 channels."""
    prep = prep or Preprocess()
    depth = _depth_metres(Path(path))
    if not (depth > 0).any():  # 0 is "no reading": a blank frame, whose vector every other blank frame would share
        raise MediaError(path, "depth map holds no reading (every pixel 0 or less); nothing to embed")
    depth = np.clip(depth, 0.01, prep.max_depth) / prep.max_depth
    pixels = torch.from_numpy(depth).unsqueeze(0).expand(3, -1, -1)
    return to_model_input(pixels, prep)
