"""One writer per collection: an advisory fcntl lock on a file in the collection directory.

The kernel drops the lock when its holder exits, however it exits, so a killed writer never leaves a
stale lock behind. Forked children (decoding workers) close their inherited copy at once: otherwise a
worker outliving a killed writer would keep the lock for it. Readers take no lock: LanceDB versions and
atomic index saves keep them consistent.
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
import weakref
from pathlib import Path
from types import TracebackType

__all__ = ["CollectionLock", "LockTimeout"]

LOCK_FILE = ".writer.lock"
_HELD: weakref.WeakSet = weakref.WeakSet()


def _drop_inherited_locks() -> None:
    # flock belongs to the open file description, which a fork shares: the child lets go of its copy.
    for lock in list(_HELD):
        if lock._fd is not None:
            os.close(lock._fd)
            lock._fd = None
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)
_POLL_SECONDS = 0.05


class LockTimeout(TimeoutError):
    """Another writer (another process, or another thread of this one) held the collection's writer lock for longer
    than the timeout."""

    def __init__(self, directory: Path, pid: int | None, timeout: float, here: bool = False) -> None:
        if here:  # flock is per open file: a lock this process holds elsewhere (another thread's writer)
            super().__init__(f"{directory} is being written elsewhere in this process (waited {timeout:g}s); let one "
                             "writer hold it at a time, or give wait= the seconds to queue behind another thread")
        else:
            holder = f"process {pid}" if pid is not None else "another process"
            super().__init__(f"{directory} is being written by {holder} (waited {timeout:g}s); "
                             "wait for it to finish, or stop it, then try again")
        self.pid = pid


class CollectionLock:
    """Exclusive writer lock for a collection directory; use as `with CollectionLock(d).acquire(timeout=10):`."""

    def __init__(self, directory: str | os.PathLike) -> None:
        """A lock on directory/.writer.lock, not yet acquired."""
        self.directory = Path(directory)
        self.path = self.directory / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, timeout: float = 0.0) -> CollectionLock:
        """Take the lock, waiting up to timeout seconds; LockTimeout names the holder's pid."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this CollectionLock")
        if not timeout >= 0:  # NaN compares false: its deadline never came (inf: as long as it takes)
            raise ValueError(f"wait must be a number of seconds of at least 0, not {timeout}")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise
            raise PermissionError(exc.errno, f"the collection cannot be written here ({exc.strerror}): it can be "
                                             "searched, not changed; make its folder writable, or index into another "
                                             "collection", str(self.directory)) from None
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    pid = _read_pid(fd)
                    here = _held_here(fd)
                    os.close(fd)
                    raise LockTimeout(self.directory, pid, timeout, here) from None
                time.sleep(_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        _HELD.add(self)
        return self

    def release(self) -> None:
        """Give the lock back (the file stays: deleting it would race with a process about to lock it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def holder(self) -> int | None:
        """Pid written by the current holder, or None when the lock is free or the pid unknown."""
        if not self.path.exists():
            return None
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def __enter__(self) -> CollectionLock:
        if self._fd is None:
            self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def _held_here(fd: int) -> bool:
    """Whether a lock of this process holds the file open at `fd` (a pid cannot tell: in another PID namespace,
    two containers sharing a volume, a writer may have this process's pid)."""
    mine = os.fstat(fd)
    for lock in list(_HELD):
        held = lock._fd
        if held is not None:
            try:
                theirs = os.fstat(held)
            except OSError:
                continue
            if (theirs.st_dev, theirs.st_ino) == (mine.st_dev, mine.st_ino):
                return True
    return False


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
