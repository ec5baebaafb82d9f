"""The modalities' names and what each tower was trained on: the vocabulary shared by decoders and models.

It sits below both: `bindsearch.media` decodes by these names and constants, and `bindsearch.models` builds towers
for them, so neither has to import the other for them.
"""

from __future__ import annotations

import numbers
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CLIP_MEAN", "CLIP_STD", "MODALITIES", "Preprocess", "add_modality", "canonical_modality",
           "check_new_modality"]

MODALITIES = ("image", "video", "audio", "depth", "infrared")
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_ALIASES = {"thermal": "infrared", "ir": "infrared", "rgb": "image", "sound": "audio"}
_REGISTERED: set[str] = set()  # modalities of one's own


def check_new_modality(name: str) -> None:
    """Refuse (ValueError) a name a modality of one's own cannot have: a built-in modality's, an alias of one
    ("thermal" was trained, and read as infrared), or one with capitals (`canonical_modality` matches lower case:
    "Sketch" was trained into a tower no name found)."""
    key = name.lower()
    if key in (*MODALITIES, "text") or key in _ALIASES:
        builtin = _ALIASES.get(key, key)
        raise ValueError(f"{name} is a built-in modality{'' if builtin == name else f' ({builtin})'}; give a new "
                         "modality a name of its own")
    if name != key:
        raise ValueError(f"a modality's name is lower case, as names are matched: give {key!r}, not {name!r}")


def add_modality(name: str) -> None:
    """Make `name` a modality `canonical_modality` accepts (`bindsearch.media.register_modality` calls it)."""
    _REGISTERED.add(name)


def checked_batch_size(batch_size: object) -> int | None:
    """`batch_size` as a Python int, or None for a modality's default; ValueError for anything else (0 is no size:
    it read as the default)."""
    if batch_size is None:
        return None
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) or batch_size < 1:
        raise ValueError(f"batch_size must be a whole number of at least 1, or None, not {batch_size!r}")
    return int(batch_size)


def canonical_modality(name: str) -> str:
    """'thermal' -> 'infrared'; raises ValueError for names no model knows (TypeError for what is no name)."""
    if not isinstance(name, str):
        raise TypeError(f"a modality is a name such as 'video', not {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in (*MODALITIES, "text") and key not in _REGISTERED:
        raise ValueError(f"unknown modality {name!r}; expected one of {', '.join((*MODALITIES, 'text'))}")
    return key


@dataclass(frozen=True)
class Preprocess:
    """What a modality's tower was trained on; `bindsearch.media.load` follows it."""

    image_size: int = 224
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    num_frames: int = 8
    max_depth: float = 10.0
    sample_rate: int = 16000
    num_mel_bins: int = 112
    target_length: int = 1036
    audio_mean: float = -4.2677393
    audio_std: float = 4.5689974

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
