"""The errors a collection raises, in a module of their own so that every part of it can raise them."""

from __future__ import annotations

__all__ = ["CollectionError"]


class CollectionError(ValueError):
    """A collection cannot be opened, written or searched as asked."""
