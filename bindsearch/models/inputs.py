"""Modalities that are not built in: how their files become an image-like tensor (`InputConfig`), stored in a
mini checkpoint beside their tower, and taught to `bindsearch.media`. Free of torch until a file is decoded: a
collection of such a modality registers it when opened, and `info` or a search by stored vectors loads no model.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bindsearch.models.config import Preprocess

if TYPE_CHECKING:
    import torch

__all__ = ["ADAPTERS", "InputConfig", "register_input"]

ADAPTERS = ("array", "image")


@dataclass(frozen=True)
class InputConfig:
    """How a new modality's files become a (3, s, s) image-like tensor; stored in the checkpoint.

    `adapter`: 'array' reads a 2-D .npy/.csv/.txt grid (e.g. a tactile pressure map), 'image' a grayscale
    picture. Values are mapped from `value_range` to [0, 1] (None: each map's own min..max), repeated to
    three channels, then resized and normalised by the modality's `Preprocess`.
    """

    name: str
    adapter: str = "array"
    extensions: tuple[str, ...] = ()
    value_range: tuple[float, float] | None = None

    def check(self) -> None:
        """Refuse (ValueError) what a config to train from may not hold. Not at load: a checkpoint written before
        these checks must still open, as its collections were indexed with it."""
        if self.adapter not in ADAPTERS:  # else every file failed to decode, one by one
            raise ValueError(f"adapter must be one of {', '.join(ADAPTERS)}, not {self.adapter!r}")
        for ext in self.extensions:  # "npy" never matched a suffix, which `Path.suffix` gives with its dot
            if not isinstance(ext, str) or not re.fullmatch(r"\.[^./\\\s]+", ext):
                raise ValueError(f"extensions are file suffixes such as \".npy\", not {ext!r}")
        if self.value_range is not None:
            lo, hi = self.value_range
            # Reversed or empty, every value clipped to one end: the tower trained on blank inputs.
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"value_range must be [low, high], finite numbers with low < high, not "
                                 f"{list(self.value_range)}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InputConfig:
        """Inverse of `dataclasses.asdict` (JSON lists back to tuples); extensions may leave out their dot."""
        rng = data.get("value_range")
        if rng is not None and (not isinstance(rng, list | tuple) or len(rng) != 2):
            raise ValueError(f"value_range must be [low, high] (two numbers) or null, not {json.dumps(rng)}")
        extensions = data.get("extensions", ())
        if not isinstance(extensions, list | tuple):  # a string was taken letter by letter
            raise ValueError(f"extensions must be a list, e.g. [\".npy\"], not {json.dumps(extensions)}")
        extensions = tuple(ext if not isinstance(ext, str) or ext.startswith(".") else "." + ext
                           for ext in extensions)
        return cls(name=str(data["name"]), adapter=str(data.get("adapter", "array")),
                   extensions=tuple(ext.lower() if isinstance(ext, str) else ext for ext in extensions),
                   value_range=(float(rng[0]), float(rng[1])) if rng is not None else None)


def _read_grid(path: Path, adapter: str) -> np.ndarray:
    if adapter == "image":
        from PIL import Image

        return np.asarray(Image.open(path).convert("F"), dtype=np.float32)
    if adapter != "array":
        raise ValueError(f"unknown input adapter {adapter!r}; expected 'array' or 'image'")
    if path.suffix.lower() == ".npy":
        grid = np.load(path, allow_pickle=False)
    else:
        grid = np.loadtxt(path, delimiter="," if path.suffix.lower() == ".csv" else None, dtype=np.float32)
    grid = np.squeeze(np.asarray(grid, dtype=np.float32))
    if grid.ndim != 2 or grid.size == 0:
        raise ValueError(f"expected a 2-D grid, got shape {grid.shape}")
    return grid


def _own_extensions(config: InputConfig) -> InputConfig:
    """`config` less the extensions a built-in modality reads, with a warning: a checkpoint trained before such
    configs were refused (`train tower` refuses them now) loads, and photos or depth maps stay what they are."""
    from bindsearch import media

    taken = {ext: reader for ext in config.extensions if (reader := media.builtin_reader(ext)) is not None}
    if not taken:
        return config
    warnings.warn(f"the {config.name} tower claims {', '.join(taken)}, which built-in modalities read: those files "
                  f"stay {', '.join(sorted(set(taken.values())))}; pick {config.name} files with --modality "
                  f"{config.name}", stacklevel=3)
    return replace(config, extensions=tuple(ext for ext in config.extensions if ext not in taken))


def register_input(config: InputConfig) -> None:
    """Teach `bindsearch.media.load` to decode `config.name` files: (3, s, s) float32, normalised."""
    from bindsearch import media

    def load(path: Path, prep: Preprocess) -> torch.Tensor:
        import torch  # when a file is decoded: a collection registers its modalities on opening, loading nothing

        from bindsearch.media.image import to_model_input

        grid = np.nan_to_num(_read_grid(path, config.adapter))
        lo, hi = config.value_range if config.value_range else (float(grid.min()), float(grid.max()))
        unit = np.clip((grid - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
        return to_model_input(torch.from_numpy(unit).unsqueeze(0).expand(3, -1, -1), prep)

    media.register_modality(config.name, load, config.extensions)
