"""The errors a collection raises, in a module of their own so that every part of it can raise them (and a command
that only reads a catalog need not import torch to name them)."""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["CollectionError", "UnsupportedModalityError", "catalog_advice", "is_catalog_error"]


class CollectionError(ValueError):
    """A collection cannot be opened, written or searched as asked.

    The index layer's own errors reach the caller as they are (each exported by `bindsearch` too): `CatalogError`
    (the collection was deleted or moved; `EncoderMismatchError`: opened with another encoder) and `LockTimeout`
    (another process, or another thread of this one, is writing it; `add` and `remove` wait up to `wait` seconds
    for it)."""


class UnsupportedModalityError(ValueError):
    """The model has no tower for the requested modality."""

    @classmethod
    def of(cls, spec: str, name: str, modalities: Sequence[str]) -> UnsupportedModalityError:
        return cls(f"model {spec} has no {name} encoder (it encodes: {', '.join(modalities)}); "
                   f"load a checkpoint for {name} too, e.g. --model {spec},{_companion(spec, name)}")


def _companion(spec: str, modality: str) -> str:
    """A spec that adds a `modality` tower to `spec` in the same space: LanguageBind's for CLIP-anchored models,
    the shipped mini one's (or one trained with `bindsearch train tower`) for MiniLM-anchored ones."""
    from bindsearch.models.loading import mini_directory
    from bindsearch.models.specs import MINI

    parts = [s.strip() for s in spec.split(",")]
    if not any(mini_directory(s) for s in parts):
        return f"languagebind:{modality}"
    if all(s.lower() != MINI for s in parts):
        return MINI
    return f"PATH (bindsearch train tower pairs.csv --modality {modality})"


def is_catalog_error(error: Exception) -> bool:
    """LanceDB could not read or write a catalog's files: raised as a bare RuntimeError (or OSError)."""
    return isinstance(error, (RuntimeError, OSError)) and str(error).startswith("lance error")


def catalog_advice(error: Exception) -> str:
    """One line: LanceDB's cause, and what to do. Only a missing or cut-short file means the catalog is damaged; a
    refused permission or a full disk leaves it whole, and deleting it would lose it for nothing."""
    cause = re.sub(r",\s*\S+\.rs:\d+:\d+", "", str(error).splitlines()[0])  # less the Rust source line
    if re.search(r"Not found|corrupt|unexpected end|invalid|too small", cause, re.IGNORECASE):
        return (f"a collection's catalog is damaged ({cause}): one of its files is missing or cut short; index "
                "into a new collection (-c NEW), and delete the damaged one once that works")
    return (f"a collection's catalog cannot be read or written ({cause}): check that its folder is readable and "
            "writable and that the disk has room, then run the command again")
