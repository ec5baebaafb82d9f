"""Where named collections live. Nothing heavy is imported here, so `bindsearch list` answers at once."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["collections_home", "holds_collection", "list_collections"]


def collections_home() -> Path:
    """`$BINDSEARCH_HOME/collections`; BINDSEARCH_HOME defaults to $XDG_DATA_HOME/bindsearch (~/.local/share)."""
    home = os.environ.get("BINDSEARCH_HOME")
    if not home:
        home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "bindsearch"
    return Path(home).expanduser() / "collections"


def holds_collection(directory: Path) -> bool:
    """Whether a folder holds a collection: a catalog with a version committed. A run killed while it created one
    leaves a catalog folder without any, which the next `index` creates anew."""
    versions = directory / "items.lance" / "_versions"
    try:
        return any(p.suffix == ".manifest" for p in versions.iterdir())
    except (FileNotFoundError, NotADirectoryError):  # nothing committed
        return False
    except OSError:  # a catalog it may not read: one, and opening it says what is wrong
        return (directory / "items.lance").exists()


def list_collections() -> list[str]:
    """Names of the collections under `collections_home()`."""
    root = collections_home()
    return sorted(p.name for p in root.iterdir() if holds_collection(p)) if root.is_dir() else []
