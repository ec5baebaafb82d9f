"""The one error type every decoder raises, and the silencing of native libraries that print beside it."""

from __future__ import annotations

import os
import sys
import threading
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


_SILENCE = threading.Lock()
_silenced = [0, -1]  # threads inside `native_stderr_silenced`, and the saved descriptor of the real stderr


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 to /dev/null for a moment: C libraries (decord, libmpg123) print to it themselves, in lines
    that name no file, beside the MediaError that already names it (or about a file that decodes fine).

    The descriptor belongs to the process, so it is silenced only where nothing else can be writing to it: in a
    decoder worker process, or in a process running no other Python thread but daemons (a command-line search). A script
    decoding in one thread while others log, or `serve`'s request threads, keep their stderr whole and may see
    those lines. Threads decoding at once in a worker share one silence: the first to enter saves the real
    stderr, the last to leave restores it."""
    with _SILENCE:
        silence = _silenced[0] > 0 or _stderr_is_ours()
        if silence:
            if _silenced[0] == 0:
                _silenced[1] = os.dup(2)
                with open(os.devnull, "wb") as devnull:
                    os.dup2(devnull.fileno(), 2)
            _silenced[0] += 1
    try:
        yield
    finally:
        if silence:
            with _SILENCE:
                _silenced[0] -= 1
                if _silenced[0] == 0:
                    os.dup2(_silenced[1], 2)
                    os.close(_silenced[1])


def _stderr_is_ours() -> bool:
    # Daemon threads are libraries' own (LanceDB's event loop starts one on import, IPython its heartbeat): a
    # script's threads and a ThreadPoolExecutor's are not.
    if sum(not thread.daemon for thread in threading.enumerate()) == 1:
        return True
    data = sys.modules.get("torch.utils.data")  # a DataLoader worker: its other threads only feed its queue
    return data is not None and data.get_worker_info() is not None


def ffmpeg_cause(error: Exception) -> str:
    """What PyAV's error says of a file, in words that say what to do where FFmpeg's do not: "Invalid data found
    when processing input" is a file damaged, cut short (a download stopped) or of another kind."""
    import av

    if isinstance(error, av.InvalidDataError):
        return "damaged, cut short or of another kind: FFmpeg found invalid data; copy it again, or re-save it"
    return getattr(error, "strerror", None) or str(error)
