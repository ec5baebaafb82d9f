"""BindWorld's attribute vocabularies and which sensor senses which attribute.

Every attribute is discrete, so "same attributes" is well defined: two scenes match for a pair of
modalities when they agree on every attribute both modalities sense (`same_on`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from math import prod

__all__ = [
    "ATTRIBUTES",
    "MODALITIES",
    "SENSES",
    "chance",
    "same_on",
    "shared_attributes",
]

# Values are the labels written to scenes.csv; caption words live in `captions.py`.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle", "diamond", "star", "cross"),
    "size": ("small", "medium", "large"),
    "position": (
        "top-left", "top", "top-right",
        "left", "centre", "right",
        "bottom-left", "bottom", "bottom-right",
    ),
    "colour": ("red", "orange", "yellow", "green", "blue", "purple", "pink"),
    "temperature": ("cold", "warm", "hot"),
    "material": ("wood", "metal", "glass", "rubber"),
    "direction": ("left", "right", "up", "down"),
    "speed": ("slow", "medium", "fast"),
}

MODALITIES: tuple[str, ...] = ("image", "depth", "infrared", "video", "audio")

_GEOMETRY = frozenset({"shape", "size", "position"})

# The way real sensors split a scene: depth and infrared see geometry but no colour, only infrared
# sees temperature, only sound hears material (timbre); sound also hears size (pitch) and speed
# (impact rate), which it shares with video. Text describes everything.
SENSES: dict[str, frozenset[str]] = {
    "text": frozenset(ATTRIBUTES),
    "image": _GEOMETRY | {"colour"},
    "depth": _GEOMETRY,
    "infrared": _GEOMETRY | {"temperature"},
    "video": _GEOMETRY | {"colour", "direction", "speed"},
    "audio": frozenset({"size", "material", "speed"}),
}


def shared_attributes(a: str, b: str) -> tuple[str, ...]:
    """The attributes both modality `a` and modality `b` sense, in `ATTRIBUTES` order."""
    for modality in (a, b):
        if modality not in SENSES:
            raise ValueError(f"unknown modality {modality!r}; expected one of {sorted(SENSES)}")
    return tuple(name for name in ATTRIBUTES if name in SENSES[a] and name in SENSES[b])


def same_on(
    scene_a: Mapping[str, str] | object, scene_b: Mapping[str, str] | object, attributes: Iterable[str]
) -> bool:
    """True when both scenes (Scene objects or attribute mappings) agree on every listed attribute."""
    return all(_value(scene_a, name) == _value(scene_b, name) for name in attributes)


def chance(a: str, b: str) -> float:
    """Probability that a random scene matches a query on `shared_attributes(a, b)`, values uniform."""
    return 1.0 / prod(len(ATTRIBUTES[name]) for name in shared_attributes(a, b))


def _value(scene: Mapping[str, str] | object, name: str) -> str:
    if isinstance(scene, Mapping):
        return scene[name]
    return getattr(scene, name)
