"""The one error type every decoder raises, and the silencing of native libraries that print beside it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MediaError", "native_stderr_silenced"]


class MediaError(Exception):
    """A file that cannot be decoded; `str()` is one line naming the file and the cause."""

    def __init__(self, path: str | Path, cause: str):
        self.path = Path(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")

    def __reduce__(self):  # survive the trip back from a decoding worker process
        return (MediaError, (self.path, self.cause))


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment: C libraries (decord, libmpg123) print to it themselves, in lines
    that name no file, beside the MediaError that already names it (or about a file that decodes fine)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
