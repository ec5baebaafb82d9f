"""The one error type every decoder raises."""

from __future__ import annotations

from pathlib import Path

__all__ = ["MediaError"]


class MediaError(Exception):
    """A file that cannot be decoded; `str()` is one line naming the file and the cause."""

    def __init__(self, path: str | Path, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")

    def __reduce__(self):  # survive the trip back from a decoding worker process
        return (MediaError, (self.path, self.cause))
