"""The collection writer lock between real processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from indexes import CollectionLock, LockTimeout


def hold(directory: str, seconds: float, locked, release) -> None:
    """Child process: take the lock, say so, and keep it until told (or for `seconds`)."""
    with CollectionLock(directory).acquire(timeout=5):
        locked.set()
        release.wait(seconds)


@pytest.fixture
def spawn():
    context = multiprocessing.get_context("fork")  # the child only locks and waits: no re-import, no 2 s start
    children = []

    def start(directory: Path, seconds: float = 30):
        locked, release = context.Event(), context.Event()
        child = context.Process(target=hold, args=(str(directory), seconds, locked, release))
        child.start()
        children.append(child)
        assert locked.wait(30), "the child never took the lock"
        return child, release

    yield start
    for child in children:
        if child.is_alive():
            child.kill()
        child.join()


def test_a_second_writer_waits_then_names_the_holder(tmp_path: Path, spawn) -> None:
    child, release = spawn(tmp_path)
    lock = CollectionLock(tmp_path)
    assert lock.holder() == child.pid
    started = time.monotonic()
    with pytest.raises(LockTimeout, match=f"being written by process {child.pid} \\(waited 0.3s\\)") as info:
        lock.acquire(timeout=0.3)
    assert info.value.pid == child.pid and time.monotonic() - started >= 0.3
    release.set()
    with lock.acquire(timeout=10):  # the holder lets go while we wait
        assert lock.held and lock.holder() == os.getpid()
    assert not lock.held and lock.holder() is None


def test_a_holder_in_another_pid_namespace_with_this_pid_is_another_process(tmp_path: Path, spawn,
                                                                            monkeypatch) -> None:
    """Two containers sharing a volume may both be pid 1: the pid alone said 'another thread of this process'."""
    spawn(tmp_path)
    monkeypatch.setattr("indexes.lock._read_pid", lambda fd: os.getpid())
    with pytest.raises(LockTimeout, match=f"being written by process {os.getpid()} .*stop it, then try again"):
        CollectionLock(tmp_path).acquire(timeout=0)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path, spawn) -> None:
    child, _ = spawn(tmp_path)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    with CollectionLock(tmp_path).acquire(timeout=5) as lock:
        assert lock.held


def test_two_locks_in_one_process_also_exclude_each_other(tmp_path: Path) -> None:
    with CollectionLock(tmp_path).acquire():
        with pytest.raises(LockTimeout, match=r"elsewhere in this process \(waited 0s\); let one writer"):
            CollectionLock(tmp_path).acquire(timeout=0)  # it named this process, and said to stop it


def test_a_wait_that_is_no_number_of_seconds_is_refused(tmp_path: Path) -> None:
    """NaN never reached its deadline: a second writer waited for ever (`--wait nan`)."""
    for wait in (float("nan"), -5.0):
        with pytest.raises(ValueError, match="wait must be a number of seconds of at least 0"):
            CollectionLock(tmp_path).acquire(timeout=wait)
    with CollectionLock(tmp_path).acquire(timeout=float("inf")):  # as long as it takes
        pass


def test_a_collection_that_cannot_be_written_says_it_can_be_searched(tmp_path: Path, monkeypatch) -> None:
    """A read-only collection (or file system): '.writer.lock: Permission denied', and nothing on what to do."""
    import errno

    def refused(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", path)

    monkeypatch.setattr(os, "open", refused)
    with pytest.raises(PermissionError, match="can be searched, not changed; make its folder writable") as refusal:
        CollectionLock(tmp_path).acquire()
    assert refusal.value.filename == str(tmp_path)
