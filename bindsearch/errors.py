"""The errors a collection raises, in a module of their own so that every part of it can raise them."""

from __future__ import annotations

import re

__all__ = ["CollectionError", "catalog_advice", "is_catalog_error"]


class CollectionError(ValueError):
    """A collection cannot be opened, written or searched as asked."""


def is_catalog_error(error: Exception) -> bool:
    """LanceDB could not read or write a catalog's files: raised as a bare RuntimeError (or OSError)."""
    return isinstance(error, (RuntimeError, OSError)) and str(error).startswith("lance error")


def catalog_advice(error: Exception) -> str:
    """One line: LanceDB's cause, and what to do. Only a missing or cut-short file means the catalog is damaged; a
    refused permission or a full disk leaves it whole, and deleting it would lose it for nothing."""
    cause = re.sub(r",\s*\S+\.rs:\d+:\d+", "", str(error).splitlines()[0])  # less the Rust source line
    if re.search(r"Not found|corrupt|unexpected end|invalid", cause, re.IGNORECASE):
        return (f"a collection's catalog is damaged ({cause}): one of its files is missing or cut short; index "
                "into a new collection (-c NEW), and delete the damaged one once that works")
    return (f"a collection's catalog cannot be read or written ({cause}): check that its folder is readable and "
            "writable and that the disk has room, then run the command again")
