"""Where named collections live. Nothing heavy is imported here, so `bindsearch list` answers at once."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["collections_home", "list_collections"]


def collections_home() -> Path:
    """`$BINDSEARCH_HOME/collections`; BINDSEARCH_HOME defaults to $XDG_DATA_HOME/bindsearch (~/.local/share)."""
    home = os.environ.get("BINDSEARCH_HOME")
    if not home:
        home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "bindsearch"
    return Path(home).expanduser() / "collections"


def list_collections() -> list[str]:
    """Names of the collections under `collections_home()`."""
    root = collections_home()
    return sorted(p.name for p in root.iterdir() if (p / "items.lance").exists()) if root.is_dir() else []
