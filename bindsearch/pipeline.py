"""Encode many files: decoding in worker processes, overlapped with encoding; bad files skipped and reported.

The one place where files become vectors in bulk; `Collection.add` and the benchmarks both use it. Text files
(modality "text") take the same road: read in the workers, tokenized and embedded by the text tower. With a
`WindowPlan`, long video and audio become several vectors each, one per window, and a file is yielded only once
all its windows are embedded (one that fails is a failure as a whole).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from bindsearch import media
from bindsearch.files import unreadable_cause
from bindsearch.media import MediaError, Window, WindowPlan
from bindsearch.modalities import checked_batch_size
from bindsearch.models.base import EmbeddingModel
from bindsearch.models.config import Preprocess

__all__ = ["EncodedBatch", "default_workers", "encode_files"]


@dataclass
class EncodedBatch:
    """One encoder batch: the files that decoded, their vectors (n, d) float32 unit rows, and the failures.

    `truncated`: text files longer than the text tower reads, embedded from their start. `described`: what
    `encode_files(describe=...)` said of each file in `paths`, before it was decoded. `windows`: the window of the
    file each vector embeds (None: the whole file); a file cut into windows appears once per window, in order.
    `partial`: windows of long files not finished yet, embedded in this batch (`encode_files(progressive=...)`),
    as (path, window, (d,) vector, described); the finished file comes again whole, in `paths`.
    """

    paths: list[Path]
    vectors: torch.Tensor
    failures: list[MediaError] = field(default_factory=list)
    truncated: list[Path] = field(default_factory=list)
    described: list = field(default_factory=list)
    windows: list[Window | None] = field(default_factory=list)
    partial: list[tuple[Path, Window, torch.Tensor, object]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.windows:
            self.windows = [None] * len(self.paths)

    @property
    def files(self) -> int:
        """How many files the batch finished, embedded or failed."""
        return len(set(self.paths)) + len(self.failures)


class _Files(Dataset):
    def __init__(self, modality: str, paths: Sequence[Path], prep: Preprocess | None,
                 describe: Callable[[Path], object] | None):
        self.modality, self.paths, self.prep, self.describe = modality, list(paths), prep, describe

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Path, torch.Tensor | str | None, MediaError | None, object]:
        path = self.paths[i]
        # Described before it is decoded: a file that changes meanwhile is seen as changed on the next run.
        described = _described(self.describe, path)
        if isinstance(described, MediaError):
            return path, None, described, None
        x, error = _decoded(self.modality, path, self.prep)
        return path, x, error, None if error else described


def _described(describe: Callable[[Path], object] | None, path: Path) -> object:
    """`describe(path)`, or the MediaError that says the file went away."""
    try:
        return describe(path) if describe else None
    except OSError as exc:
        return MediaError(path, unreadable_cause(path, exc))


def _decoded(modality: str, path: Path, prep: Preprocess | None, window: Window | None = None
             ) -> tuple[torch.Tensor | str | None, MediaError | None]:
    """(what the tower takes, None), or (None, the MediaError that says why not): never an exception."""
    try:
        if modality == "text":  # a text file's words; the text tower tokenizes them
            return media.read_text(path), None
        with _one_thread():
            return media.load(modality, path, prep, window=window), None
    except MediaError as exc:
        return None, exc
    except Exception as exc:  # a decoder bug must not take the batch down either
        return None, MediaError(path, f"{type(exc).__name__}: {exc}")


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Decode on one torch thread in the encoder's own process (no decoder processes: two cores or fewer), as the
    decoder processes do: a file's tensors are small, and a second thread only waits for the first, or for a core
    another program holds. On two cores beside one busy process, 100 short sounds or small photos were decoded and
    embedded 1.8-2.0x faster; on idle cores 3-8 % slower (`benchmarks/decode_threads.py`).

    Only where this is the program's one thread (`bindsearch index`, a script): torch takes a thread's count from
    the process's the first time that thread runs torch, and a thread of a web app's pool starting meanwhile kept
    one thread for good."""
    threads = torch.get_num_threads()
    if threads == 1 or not _alone():
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


_NO_TORCH_THREADS = frozenset({"LanceDBBackgroundEventLoop"})  # LanceDB's asyncio loop: it never runs torch


def _alone() -> bool:
    """Whether the program runs no thread but this one that could start running torch."""
    here = threading.current_thread()
    return all(t is here or t.name in _NO_TORCH_THREADS for t in threading.enumerate())


class _Windows(IterableDataset):
    """Windows of files, one item each: (path, window number, windows in the file, window, tensor, error, described).

    With n workers, a file kept whole goes to worker `f % n` (f its place in the list), and window j of a long
    file to worker `(f + j) % n`: one long recording is decoded by every worker at once. So every worker reads
    every file's length from its headers, and each one that decodes a file describes it, the file's own worker
    before it reads the length: a file whose workers saw different lengths or descriptions changed while it was
    read (`_encode_windows` refuses it). A worker stops decoding a file at its first window that fails.
    """

    def __init__(self, modality: str, paths: Sequence[Path], prep: Preprocess | None,
                 describe: Callable[[Path], object] | None, plan: WindowPlan,
                 stored: dict[Path, set[Window]] | None = None):
        self.modality, self.paths, self.prep, self.describe, self.plan = modality, list(paths), prep, describe, plan
        self.stored = stored or {}  # windows embedded by an earlier run: not decoded again (tensor None)

    def __iter__(self):
        worker = get_worker_info()
        me, n = (0, 1) if worker is None else (worker.id, worker.num_workers)
        for f, path in enumerate(self.paths):
            # Described before its length is read: the hash stored is of bytes no newer than the windows' plan.
            described = _described(self.describe, path) if f % n == me else None
            if isinstance(described, MediaError):
                yield path, 0, 1, None, None, described, None
                continue
            windows = self.plan.windows(media.duration(self.modality, path))
            if windows is None:
                if f % n == me:
                    yield from self._decode(path, [(0, None)], 1, described)
                continue
            jobs = [(j, w) for j, w in enumerate(windows) if (f + j) % n == me]
            if jobs and f % n != me:
                described = _described(self.describe, path)
                if isinstance(described, MediaError):
                    yield path, jobs[0][0], len(windows), jobs[0][1], None, described, None
                    continue
            yield from self._decode(path, jobs, len(windows), described)

    def _decode(self, path: Path, jobs: list[tuple[int, Window | None]], count: int, described):
        stored = self.stored.get(path, set())
        for j, window in jobs:
            if window in stored:
                yield path, j, count, window, None, None, described
                continue
            x, error = _decoded(self.modality, path, self.prep, window)
            yield path, j, count, window, x, error, None if error else described
            if error:
                return


def _collate(items):
    return items


def default_workers() -> int:
    """Decoder processes: one per core beyond two, up to four; none on two cores or fewer.

    On two cores a decoder process competes with the encoder's threads and hands over every tensor through its own
    shared-memory segment: indexing with bindsearch-mini ran 1.25-1.4x faster decoding in the encoder's process
    (1,800 BindWorld files, alternating rounds). A ViT-L tower is ~30x slower than decoding, so there it costs
    ~3 %."""
    return max(0, min(4, (os.cpu_count() or 2) - 2))


def encode_files(model: EmbeddingModel, modality: str, paths: Sequence[str | Path], batch_size: int | None = None,
                 workers: int | None = None, describe: Callable[[Path], object] | None = None,
                 windows: WindowPlan | None = None, progressive: set[Path] | None = None,
                 stored: dict[Path, dict[Window, torch.Tensor]] | None = None) -> Iterator[EncodedBatch]:
    """Yield EncodedBatch in input order; decoding runs `workers` batches ahead in other processes.

    `describe(path)`, run in the decoding worker just before the file is read (a module-level function, since
    workers may be spawned), is yielded beside each vector: `Collection.add` takes its size, mtime and hash
    there, in parallel, and of the bytes it embedded. A file it cannot describe (gone) is a failure.

    `windows` cuts long video and audio into windows (`WindowPlan`): files then come in the order their windows
    finish, not in input order. The windows of the `progressive` files also come as they are embedded (in
    `EncodedBatch.partial`), so that a caller can keep them before the file is done; `stored` gives, per file,
    windows an earlier run embedded (window -> (d,) vector): they are not decoded again, and come back with the
    finished file.
    """
    modality = model.check_modality(modality)
    paths = [Path(p) for p in paths]
    if not paths:
        return
    size = checked_batch_size(batch_size) or model.batch_size.get(modality, 16)
    workers = default_workers() if workers is None else workers
    prep = model.preprocess.get(modality)
    cut = windows is not None and windows.seconds > 0 and modality in media.WINDOWED
    stored = {Path(p): windows_ for p, windows_ in (stored or {}).items()}
    if cut:
        dataset = _Windows(modality, paths, prep, describe, windows, {p: set(w) for p, w in stored.items()})
    else:
        dataset = _Files(modality, paths, prep, describe)
    loader = DataLoader(dataset, batch_size=size, num_workers=workers, collate_fn=_collate,
                        prefetch_factor=2 if workers else None, persistent_workers=False,
                        worker_init_fn=_stop_quietly_on_sigterm)
    with warnings.catch_warnings():
        # Decoder workers are forked and never touch LanceDB, whose fork warning is about its own state.
        warnings.filterwarnings("ignore", message="lancedb fork support")
        if cut:
            yield from _encode_windows(model, modality, loader, {Path(p) for p in progressive or ()}, stored)
        else:
            yield from _encode_batches(model, modality, loader)


def _stop_quietly_on_sigterm(worker_id: int) -> None:
    """In a decoder process: SIGTERM stops it as Ctrl-C does, its loop's way out. Sent to the whole process group
    (`timeout`, systemd's stop), it killed the decoders, and the stopping command printed torch's "DataLoader worker
    is killed by signal: Terminated" traceback under its own "interrupted" line."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # Python's own Ctrl-C handler: KeyboardInterrupt


def _encode_batches(model: EmbeddingModel, modality: str, loader: DataLoader) -> Iterator[EncodedBatch]:
    for items in loader:
        good = [(p, x) for p, x, err, _ in items if err is None]
        failures = [err for _, _, err, _ in items if err is not None]
        described = [d for _, _, err, d in items if err is None]
        truncated = []
        if not good:
            vectors = torch.empty(0, model.dim)
        elif modality == "text":
            texts = [x for _, x in good]
            vectors = model.encode("text", texts)
            truncated = [p for (p, _), long in zip(good, model.overflowing(texts), strict=True) if long]
        else:
            vectors = model.embed(modality, torch.stack([x for _, x in good]))
        paths = [p for p, _ in good]
        finite = _finite_rows(vectors)
        failures += [_not_finite(path) for path, ok in zip(paths, finite, strict=True) if not ok]
        keep = [i for i, ok in enumerate(finite) if ok]
        yield EncodedBatch([paths[i] for i in keep], vectors[keep], failures, truncated, [described[i] for i in keep])


def changed_while_indexed(path: str | Path) -> MediaError:
    """The failure of a file whose bytes differed between two reads of one run."""
    return MediaError(Path(path), "changed while it was being indexed (read twice, it differed); run index again")


def _finite_rows(vectors: torch.Tensor) -> list[bool]:
    """Whether each row of `vectors` is finite."""
    return torch.isfinite(vectors).all(dim=1).tolist() if len(vectors) else []


def _not_finite(path: Path) -> MediaError:
    """A file whose vector holds NaN fails on its own: in the index a NaN would refuse the whole batch."""
    return MediaError(path, "the model gave a NaN or infinite vector (the decoded input holds NaN or infinite "
                            "values); check or re-export the file")


def _encode_windows(model: EmbeddingModel, modality: str, loader: DataLoader, progressive: set[Path],
                    stored: dict[Path, dict[Window, torch.Tensor]]) -> Iterator[EncodedBatch]:
    """Embed windows as they come, from whichever worker; yield each file once all its windows are embedded (in
    order), or once as a failure at its first window that fails (its other windows are dropped as they come).
    Windows of `progressive` files also come in `partial` as they are embedded; `stored` windows are not embedded
    again (their items carry no tensor)."""
    started: dict[Path, dict[int, tuple]] = {}  # a file's windows so far: number -> (window, vector, described)
    counts: dict[Path, int] = {}  # how many windows the first of a file's workers planned
    failed: set[Path] = set()

    def changed(path: Path) -> MediaError:
        failed.add(path)
        started.pop(path, None)
        return changed_while_indexed(path)

    for items in loader:
        good = [item for item in items if item[5] is None and item[0] not in failed]
        fresh = [item for item in good if item[4] is not None]  # the rest an earlier run embedded (`stored`)
        embedded = model.embed(modality, torch.stack([item[4] for item in fresh])) if fresh else torch.empty(0)
        rows, failures, partial = [], [], []
        for item, ok in zip(fresh, _finite_rows(embedded), strict=True):
            if not ok and item[0] not in failed:
                failed.add(item[0])
                started.pop(item[0], None)
                failures.append(_not_finite(item[0]))
        by_item = iter(embedded)
        vectors = [next(by_item) if item[4] is not None else stored[item[0]][item[3]] for item in good]
        for error in (item[5] for item in items if item[5] is not None):
            if error.path not in failed:
                failed.add(error.path)
                started.pop(error.path, None)
                failures.append(error)
        for (path, j, count, window, _, _, described), vector in zip(good, vectors, strict=True):
            if path in failed:  # a window of this file failed in another worker, in this same batch
                continue
            if counts.setdefault(path, count) != count:  # two workers cut it differently: its length changed
                failures.append(changed(path))
                continue
            windows = started.setdefault(path, {})
            windows[j] = (window, vector, described)
            if path in progressive and window not in stored.get(path, {}):
                partial.append((path, window, vector, described))
            if len(windows) < count:
                continue
            if len({repr(d) for _, _, d in windows.values() if d is not None}) > 1:
                failures.append(changed(path))
                continue
            del started[path]
            rows += [(path, *windows[j]) for j in sorted(windows)]
        done = {r[0] for r in rows}
        partial = [p for p in partial if p[0] not in done and p[0] not in failed]  # finished ones come whole
        stacked = torch.stack([r[2] for r in rows]) if rows else torch.empty(0, model.dim)
        yield EncodedBatch([r[0] for r in rows], stacked, failures, [], [r[3] for r in rows], [r[1] for r in rows],
                           partial)
    if started:  # windows that never all came: workers that planned fewer of them than the first one
        yield EncodedBatch([], torch.empty(0, model.dim), [changed(path) for path in list(started)], [], [], [])
