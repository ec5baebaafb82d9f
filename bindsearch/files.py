"""Files on disk as a collection sees them: one spelling of a path, what tells a file changed, and a folder walk."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

__all__ = ["absolute", "check_paths", "content_hash", "describe_file", "walk"]


def content_hash(path: Path, full_below: int = 64 << 20) -> str:
    """blake2b of the file; files over `full_below` bytes hash their size plus 4 MiB at each end and middle."""
    digest = hashlib.blake2b(digest_size=16)
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= full_below:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
        else:
            digest.update(str(size).encode())
            for offset in (0, size // 2, size - (4 << 20)):
                f.seek(offset)
                digest.update(f.read(4 << 20))
    return digest.hexdigest()


def describe_file(path: Path) -> tuple[int, float, str]:
    """(size, mtime, content hash): what tells a file changed since it was indexed."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime, content_hash(path)


def absolute(path: str | Path) -> Path:
    """The one spelling of a path the catalog keeps: absolute, `~` and `..` resolved, symlinks kept.

    `..` is resolved on the disk, as the shell does (after a link to a folder it leads to the link's target's
    parent): the part up to the last `..` is resolved, links and all; the rest is kept as written.
    """
    path = Path(path).expanduser().absolute()
    if ".." not in path.parts:
        return Path(os.path.normpath(path))
    last = len(path.parts) - path.parts[::-1].index("..")
    return Path(os.path.realpath(Path(*path.parts[:last]))).joinpath(*path.parts[last:])


def check_paths(paths: Iterable[str | Path]) -> None:
    """Raise FileNotFoundError naming the first of `paths` that does not exist (before anything is opened)."""
    for p in paths:
        if not Path(p).expanduser().exists():
            raise FileNotFoundError(f"{absolute(p)} does not exist; give files or folders to index")


def walk(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(files found recursively, sorted; the directories given)."""
    paths = [absolute(p) for p in paths]
    check_paths(paths)
    files, roots = [], []
    for p in paths:
        if p.is_dir():
            roots.append(p)
            # Dangling links are kept so that they are reported, not silently passed over.
            files.extend(f for f in p.rglob("*") if (f.is_file() or f.is_symlink()) and not f.name.startswith("."))
        else:
            files.append(p)
    return sorted(set(files)), roots
