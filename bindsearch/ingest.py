"""One `index` run over a collection (`Ingest`): which files are new, changed, unchanged or gone, and the
vectors of what changed, embedded and committed to the catalog as they come.

Ingest commits what it has encoded every few seconds (`COMMIT_SECONDS`), so a killed `index` loses at most those
seconds of work and the next run finishes the job; a run that left the catalog in many pieces compacts it. The
windows of a long file new to the collection are committed as they are embedded, as partial rows, and a run after
a kill goes on from the next window.
"""

from __future__ import annotations

import errno
import functools
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from stat import S_IFIFO, S_IFMT, S_IFSOCK, S_ISDIR, S_ISREG
from typing import TYPE_CHECKING

import numpy as np

from bindsearch.files import (
    StoredSpellings,
    Walk,
    absolute,
    below,
    content_hash,
    describe_file,
    displayed,
    printable,
    unreadable_cause,
    walk,
)
from bindsearch.report import IngestReport
from indexes import Catalog, Item
from indexes.catalog import COMPACT_FRAGMENTS

if TYPE_CHECKING:  # torch, the models and media decoding are imported where a model is loaded
    from bindsearch.media import MediaError, WindowPlan
    from bindsearch.models import EmbeddingModel
    from bindsearch.pipeline import EncodedBatch

__all__ = ["COMMIT_SECONDS", "PARTIAL", "Ingest", "files_of", "partial", "spelled", "unchanged"]


COMMIT_SECONDS = 5.0
"""Ingest commits at most this often. Each commit adds a data file that every later read visits (a commit per
encoder batch made a GPU ingest commit-bound), and a kill loses at most the work since the last one."""


class Ingest:
    """One run of `Collection.add`, made while the collection's writer lock is held.

    `encoder(modalities)` gives a model with at least those towers (loaded only if something changed), `encodes`
    what the collection's encoder can embed, `forced` the modality given by `--modality` (None: guessed per file),
    `plan` the windows long files are cut into; `rehash` hashes every file rather than trust its size and mtime.
    """

    def __init__(self, catalog: Catalog, directory: Path, encoder: Callable[[Iterable[str]], EmbeddingModel],
                 encodes: Sequence[str], forced: str | None, plan: WindowPlan, rehash: bool = False):
        self.catalog = catalog
        self.directory = directory
        self.encoder = encoder
        self.encodes = tuple(encodes)
        self.forced = forced
        self.plan = plan
        self.rehash = rehash
        self.report = IngestReport()
        self._stored_spellings: StoredSpellings | None = None  # read from the catalog when first needed

    def run(self, paths: Sequence[str | Path], batch_size: int | None, workers: int | None,
            progress: Callable[[int, int], None] | None, commit_seconds: float) -> IngestReport:
        """Index files and folders (recursively): see `Collection.add`."""
        # Walked under the lock: a run waited for (--wait) may have changed them.
        version = self.catalog.version
        roots, twins = self._spelled_roots(paths)
        todo = self._changes(walk(roots), twins)
        self._embed(todo, batch_size, workers, progress, commit_seconds)
        if self.catalog.version != version or self.catalog.fragments() > COMPACT_FRAGMENTS:
            self.catalog.tidy()
        return self.report

    def _aliases(self) -> StoredSpellings:
        if self._stored_spellings is None:
            self._stored_spellings = StoredSpellings(self.catalog.folders())
        return self._stored_spellings

    def _spelled_roots(self, paths: Sequence[str | Path]) -> tuple[list[Path], dict[Path, Path]]:
        """The folders given, each as the catalog spells it where it holds its files under another spelling (given
        through a link to what was indexed, or the other way round): walked, pruned and guessed under that one;
        then each once in this run (`_one_spelling`), with the folders given twice -> the spelling walked."""
        out = []
        for path in map(absolute, paths):
            alias = None
            if path.is_dir() and printable(path) == str(path) and not self.catalog.count(None, [str(path)]):
                alias = self._aliases().of(path)
            out.append(alias or path)
        return _one_spelling(out)

    def _as_indexed(self, files: list[Path], known: dict[str, list[Item]]) -> tuple[list[Path], dict[Path, Path]]:
        """`files`, those in a folder the catalog holds under another spelling spelt as it holds them (the parent
        of a link's target indexed through the link), their rows added to `known`; and alias -> path as walked.
        Files no modality claims (a photo library's sidecars) are left out: they would cost a scan of the paths."""
        from bindsearch.media import EXTENSIONS

        unknown = [f for f in files if str(f) not in known and f.suffix.lower() in EXTENSIONS]
        if not unknown:
            return files, {}
        renamed = {f: alias for f in unknown if (alias := self._aliases().of(f)) is not None}
        if not renamed:
            return files, {}
        known.update(self.catalog.lookup_paths(str(alias) for alias in renamed.values()))
        return [renamed.get(f, f) for f in files], {alias: f for f, alias in renamed.items()}

    def _changes(self, found: Walk, twins: dict[Path, Path]) -> dict[str, list[tuple[Path, list[Item]]]]:
        """modality -> [(file, its rows before this run)] of the files to embed: new, changed, or resumed (their
        kept windows). Records the new mtimes of unchanged files and deletes the rows of files that are gone (and
        of files held under both spellings of a folder given twice, `twins`, under the one not walked)."""
        from bindsearch import media

        report, encodes, forced = self.report, self.encodes, self.forced
        files = found.files
        for folder, why in found.unreadable:
            report.failed.append(media.MediaError(folder, f"folder cannot be read ({why}); what it held stays "
                                                          "indexed: make it readable and run index again"))
        for f in found.misnamed:
            what = "folder" if f.is_dir() else "file"
            report.failed.append(media.MediaError(printable(f), "its name is not UTF-8, which the catalog "
                                                                f"cannot store: rename the {what}"))
        todo: dict[str, list[tuple[Path, list[Item]]]] = {}
        dead: list[Item] = []  # rows of files that are gone now (a link whose target was deleted)
        outdated: list[Item] = []  # windows an interrupted run kept of a file that has changed since
        retimed: dict[int, float] = {}  # unchanged bytes under a new mtime: recorded, so never hashed again
        fresh: list[tuple[Path, str, os.stat_result, str | None]] = []  # new under their path: (file, as, stat, why)
        cut_before: list[Path] = []  # unchanged long files whose windows this run's --window would cut otherwise
        folders: set[str] = set()  # links to folders: no file (any more) under that name
        known = self.catalog.lookup_paths(str(f) for f in files)
        files, walked = self._as_indexed(files, known)
        roots = {str(root) for root in found.roots}
        given: dict[Path, Path] = {}  # a folder -> the folder given to `index` that holds it (`_given_folder`)
        for f in files:
            try:
                mode = f.stat().st_mode
            except OSError as exc:  # a dangling link, or in a folder that can be listed but not entered
                report.failed.append(media.MediaError(f, unreadable_cause(f, exc)))
                if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):  # no file by that name any more
                    dead += known.get(str(f), [])
                continue
            if S_ISDIR(mode):  # a link to a folder: not followed, as find and fd do not follow them
                report.skipped.append((f, "a link to a folder, not followed; index the folder it points to"))
                report.links.append(f)
                folders.add(str(f))
                continue
            if not S_ISREG(mode):  # opened to be hashed or probed, a named pipe would wait for a writer forever
                report.skipped.append((f, f"{_SPECIAL.get(S_IFMT(mode), 'a special file')}, not a regular file"))
                dead += known.get(str(f), [])  # the file indexed under that name is gone
                continue
            if forced:
                kind, why = forced, "--modality"
            else:
                as_walked = walked.get(f, f)
                if as_walked.parent not in given:
                    given[as_walked.parent] = _given_folder(as_walked, roots)
                kind, why = media.guess_modality(as_walked, given[as_walked.parent])
            indexed_as = sorted({i.modality for i in known.get(str(f), [])} & set(encodes))
            if kind == "video" and not forced and "video" not in indexed_as and media.sound_only(f):
                kind, why = "audio", "sound alone in a video container"  # a voice memo or podcast as .mp4
            carried: list[Item] = []  # the rows of what the file was guessed as before, for its new guess
            if kind == "video" and not forced and indexed_as in (["audio"], ["video"]):
                kind, why, carried = self._guessed_again(f, known.get(str(f), []), kind, why)
                if carried:
                    indexed_as = []
            if (kind is None or kind not in encodes) and indexed_as:  # indexed by --modality before
                kind, why = indexed_as[0], "its earlier --modality"
            elif kind in PICTURES and not forced and kind not in indexed_as and (seen := PICTURES.intersection(
                    indexed_as)):  # guessed otherwise by another folder given to `index`: a picture is one of them
                kind, why = min(seen), "its modality when indexed"
            if kind is None:
                report.skipped.append((f, why))
                continue
            if kind not in encodes:
                report.skipped.append((f, f"{kind}: model {self.catalog.encoder.name} has no {kind} encoder"))
                report.unencodable.setdefault(kind, []).append(f)
                continue
            # The file as this run reads it, and as any other modality it was indexed as (by --modality): a
            # changed file is embedded again as each of them, so that no row keeps its old bytes' vector.
            for as_kind in [kind, *(m for m in indexed_as if m != kind)]:
                previous = carried or [i for i in known.get(str(f), []) if i.modality == as_kind]  # a row a window
                try:
                    stat = f.stat()
                    if previous and partial(previous):  # an interrupted run embedded some of its windows
                        usable = self._resumable(f, as_kind, previous, stat)
                        outdated += [i for i in previous if i not in usable]
                        todo.setdefault(as_kind, []).append((f, usable))
                        if as_kind == kind:
                            report.guessed[(kind, why)] += 1
                        continue
                    if previous and unchanged(f, previous[0], stat, trust_mtime=not self.rehash):
                        report.unchanged += 1
                        if previous[0].start is not None and self._cut_otherwise(previous):
                            cut_before.append(f)
                        if stat.st_mtime != previous[0].mtime:  # the mtime the bytes were hashed under
                            retimed.update((i.id, stat.st_mtime) for i in previous)
                        continue
                except OSError as exc:  # gone (or unreadable) since the folder was walked
                    report.failed.append(media.MediaError(f, unreadable_cause(f, exc)))
                    if not f.exists():  # nothing to embed any more: its rows would be hits for nothing
                        dead += known.get(str(f), [])
                    break
                if not previous:  # embedded below, unless its bytes are indexed under a path gone (`_moved`)
                    fresh.append((f, as_kind, stat, why if as_kind == kind else None))
                    continue
                todo.setdefault(as_kind, []).append((f, previous))
                if as_kind == kind:  # said of what this run embeds, not of every file again on every re-run
                    report.guessed[(kind, why)] += 1
        moved = self._moved(fresh, set(map(str, files)), [folder for folder, _ in found.unreadable])
        for f, as_kind, _, why in fresh:
            took = moved.get(str(f))  # moved as what it was indexed as; --modality adds one
            if took is None or (forced and as_kind not in took):
                todo.setdefault(as_kind, []).append((f, []))
                if why is not None:
                    report.guessed[(as_kind, why)] += 1
        if cut_before:
            report.warnings.append(
                f"{len(cut_before)} unchanged file(s) keep the windows they were indexed with, not this --window "
                f"(e.g. {displayed(str(cut_before[0]))}); a window length applies to the files a run embeds: "
                "`bindsearch remove` them and index them again to cut them anew")
        self.catalog.touch(retimed)
        # A folder walked under another spelling is walked whole: what is gone from it is gone.
        spelt_as = sorted({alias.parent for alias in walked})
        report.removed = self._remove_vanished([*found.roots, *spelt_as], set(map(str, files)) - folders, twins,
                                               [folder for folder, _ in found.unreadable])
        if dead:
            self.catalog.delete(i.id for i in dead)
            report.removed += files_of(dead)
        self.catalog.delete(i.id for i in outdated)
        return todo

    def _moved(self, fresh: list[tuple[Path, str, os.stat_result, str | None]], present: set[str],
               unreadable: Sequence[Path]) -> dict[str, set[str]]:
        """Of the files new under their path, those whose bytes (size and content hash) the catalog holds under a
        path where no file is any more (a folder renamed or moved, in or out of the folders given): all the rows of
        that path, each modality it is indexed as, take the new path, keeping their vectors and ids, instead of
        being embedded again while the old rows stay as hits for nothing. Only files of a size such a row has are
        hashed. Rows in a folder that is empty now move only where all its files turned up (an inbox emptied into
        an archive): such a folder is also how an unmounted drive looks (`_remove_vanished` keeps its rows), and a
        backup copy of one of its files took that file's row, the drive then falling under the count that keeps
        it; the files that did turn up are embedded, and a `warning:` says how to drop the old rows. Rows in
        folders that cannot be read are not taken. -> the paths moved to, and the modalities each took."""
        if not fresh or not len(self.catalog):
            return {}
        kept = tuple(below(folder) for folder in unreadable)  # files there may well be there
        rows_of: dict[str, list[Item]] = {}  # a path -> its rows, every modality and window
        for item in self.catalog.with_sizes(stat.st_size for _, _, stat, _ in fresh):
            if item.path not in present and not (kept and item.path.startswith(kept)):
                rows_of.setdefault(item.path, []).append(item)
        orphans: dict[tuple[int, str], list[str]] = {}  # (size, hash) -> paths gone, holding those bytes
        for path, rows in rows_of.items():
            if not partial(rows) and len({i.content_hash for i in rows}) == 1 and _gone(path):
                orphans.setdefault((rows[0].size, rows[0].content_hash), []).append(path)
        sizes = {size for size, _ in orphans}
        moves: dict[Path, tuple[os.stat_result, str]] = {}  # new file -> (its stat, the old path it is)
        for f, _, stat, _ in fresh:
            if f in moves or stat.st_size not in sizes:
                continue
            try:
                candidates = orphans.get((stat.st_size, content_hash(f)))
            except OSError:  # gone or unreadable since the walk: said where it is embedded
                continue
            if candidates:
                moves[f] = (stat, candidates.pop(0))
        empty = functools.cache(_empty_folder)
        found: dict[Path, int] = {}  # an empty folder -> how many of its files turned up
        for _, old in moves.values():
            if (folder := empty(Path(old).parent)) is not None:
                found[folder] = found.get(folder, 0) + 1
        held = {folder for folder, n in found.items() if n < len(self.catalog.paths_under([str(folder)]))}
        for folder in sorted(held):
            self.report.warnings.append(
                f"{found[folder]} file(s) indexed in {folder}, empty now, turned up elsewhere and were embedded "
                f"again, since not all of its files did (an unmounted drive?); if it was not one, run: bindsearch "
                f"remove {folder} -c {self.directory}")
        moves = {f: move for f, move in moves.items() if empty(Path(move[1]).parent) not in held}
        entries = list(moves.items())
        for start in range(0, len(entries), _MOVES_A_COMMIT):
            rows = [replace(i, path=str(f), mtime=stat.st_mtime) for f, (stat, old) in entries[start:start +
                    _MOVES_A_COMMIT] for i in rows_of[old]]
            self.catalog.upsert(rows, self.catalog.get_vectors([i.id for i in rows]))
        self.report.moved += len(moves)
        return {str(f): {i.modality for i in rows_of[old]} for f, (_, old) in moves.items()}

    def _cut_otherwise(self, rows: list[Item]) -> bool:
        """Whether this run's window plan cuts a long file's length into other windows than its rows hold."""
        held = sorted((i.start, i.end) for i in rows)
        end = held[-1][1]

        def differ(planned: list | None) -> bool:
            planned = planned or []
            return len(planned) != len(held) or any(abs(a - c) > 0.01 or abs(b - d) > 0.01
                                                    for (a, b), (c, d) in zip(planned, held, strict=True))

        # The end is stored to the millisecond: 30.0002 s cut as three windows reads back as 30.0, left whole.
        return all(differ(self.plan.windows(end + e)) for e in (-0.0005, 0.0, 0.0005))

    def _guessed_again(self, path: Path, rows: list[Item], kind: str, why: str) -> tuple[str, str, list[Item]]:
        """(modality, why, rows it replaces) for a video container indexed as one guess, audio or video: a changed
        file is guessed again (a voice memo re-recorded as video, a clip exported as sound alone), and its rows
        go to the new guess, as a fresh index reads it; it kept the old guess, embedded as both or failing. An
        unchanged file is left to the guess as it was (a video indexed by --modality audio gains its video row)."""
        from bindsearch import media

        was = rows[0].modality
        try:
            stat = path.stat()
        except OSError:  # gone or unreadable since the walk: said where it is read
            return kind, why, []
        # By size and mtime alone: a touched file is probed (a header read), not hashed twice (the loop hashes it).
        if partial(rows) or (stat.st_size, stat.st_mtime) == (rows[0].size, rows[0].mtime):
            return kind, why, []
        now = "audio" if media.sound_only(path) else "video"
        return now, "sound alone in a video container" if now == "audio" else why, rows if now != was else []

    def _embed(self, todo: dict[str, list[tuple[Path, list[Item]]]], batch_size: int | None, workers: int | None,
               progress: Callable[[int, int], None] | None, commit_seconds: float) -> None:
        """Embed the files of `_changes`, committing at most every `commit_seconds` and at the end."""
        if not todo:  # nothing changed: no torch, no model
            return
        from bindsearch.pipeline import encode_files

        report = self.report
        total, done = sum(len(v) for v in todo.values()), 0
        # Only the towers of what changed are loaded; a re-run over unchanged folders loads none.
        model = self.encoder(todo) if todo else None
        for kind, entries in todo.items():
            rows = _Rows({str(f): prev for f, prev in entries})
            # Long files new to the collection are kept window by window as they are embedded, so that a kill
            # loses seconds of them; a changed file keeps its old rows until its new ones are all there.
            progressive = {f for f, prev in entries if not prev or partial(prev)}
            stored = {f: self._stored_windows(prev) for f, prev in entries if prev and partial(prev)}
            pending, last_commit = [], time.perf_counter()
            for batch in encode_files(model, kind, [f for f, _ in entries], batch_size, workers, describe_file,
                                      windows=self.plan, progressive=progressive, stored=stored):
                pending.append(batch)
                report.failed.extend(self._failed_again(batch.failures, rows))
                report.truncated.extend(batch.truncated)
                if time.perf_counter() - last_commit >= commit_seconds:
                    self._commit(kind, pending, rows)
                    pending, last_commit = [], time.perf_counter()
                done += batch.files
                if progress:
                    progress(done, total)
            self._commit(kind, pending, rows)

    def _commit(self, kind: str, batches: Sequence[EncodedBatch], state: _Rows) -> None:
        """The encoded batches in one catalog commit: what a kill can lose is what has not been committed.

        A re-embedded file keeps its ids, window by window; rows of windows it no longer has are deleted in the
        same commit. Windows of a long file not finished yet are kept as partial rows (their hash marked, see
        `_partial`), and take their place among its rows when it is.
        """
        report = self.report
        rows = [row for b in batches for row in zip(b.paths, b.windows, b.vectors.numpy(), b.described, strict=True)]
        by_file: dict[str, list] = {}
        for path, window, vector, described in rows:
            by_file.setdefault(str(path), []).append((window, vector, described))
        items, vectors, stale = [], [], []
        unfinished = [row for b in batches for row in b.partial
                      if str(row[0]) not in by_file and str(row[0]) not in state.dropped]
        for path, window, vector, (size, mtime, digest) in unfinished:
            state.written.setdefault(str(path), {})
            items.append(Item(path=str(path), modality=kind, size=size, mtime=mtime, content_hash=PARTIAL + digest,
                              start=window[0], end=window[1]))
            vectors.append(vector.numpy())
        for path, windows in by_file.items():
            old = state.previous.get(path) or []
            if partial(old) and old[0].content_hash != PARTIAL + windows[0][2][2]:
                # Changed after its kept windows were checked: they embed other bytes than the rest.
                from bindsearch.pipeline import changed_while_indexed

                report.failed.extend(self._failed_again([changed_while_indexed(path)], state))
                continue
            if path in state.written or partial(old):  # finished: its partial rows become its rows, window by window
                ids = {(i.start, i.end): i.id for i in old} | state.written.pop(path, {})
                found = [ids.pop(window, None) for window, _, _ in windows]
                stale += list(ids.values())
                report.new += 1
            else:
                found = [old[n].id if n < len(old) else None for n in range(len(windows))]
                stale += [i.id for i in old[len(windows):]]
                report.changed += bool(old)
                report.new += not old
            for (window, vector, (size, mtime, digest)), row_id in zip(windows, found, strict=True):
                start, end = window if window is not None else (None, None)
                items.append(Item(path=path, modality=kind, size=size, mtime=mtime, content_hash=digest, id=row_id,
                                  start=start, end=end))
                vectors.append(vector)
            if windows[0][0] is not None:
                report.split += 1
                report.windows += len(windows)
        if not items:
            return
        start = self.catalog.next_id()
        fresh = iter(range(start, start + len(items)))
        items = [i if i.id is not None else _with_id(i, next(fresh)) for i in items]
        for item in items:
            if item.content_hash.startswith(PARTIAL):
                state.written[item.path][(item.start, item.end)] = item.id
        if all(i.id >= start and not state.previous.get(i.path) for i in items) and not stale and not state.written:
            self.catalog.add(items, np.stack(vectors))
        else:
            self.catalog.upsert(items, np.stack(vectors), delete=stale)

    def _resumable(self, path: Path, kind: str, rows: list[Item], stat: os.stat_result) -> list[Item]:
        """The partial rows of a file that this run can keep: none where the file's bytes are not those they were
        embedded from, and only the windows this run's plan (its `--window`) also cuts."""
        from bindsearch import media

        hashes = {i.content_hash for i in rows}
        if len(hashes) != 1 or stat.st_size != rows[0].size or \
                content_hash(path) != rows[0].content_hash.removeprefix(PARTIAL):
            return []
        windows = set(self.plan.windows(media.duration(kind, path)) or ())
        return [i for i in rows if (i.start, i.end) in windows]

    def _stored_windows(self, rows: Sequence[Item]) -> dict[tuple, object]:
        """window -> (d,) vector of the partial rows an interrupted run kept of a file."""
        import torch

        vectors = self.catalog.get_vectors([i.id for i in rows])
        return {(i.start, i.end): torch.from_numpy(v.copy()) for i, v in zip(rows, vectors, strict=True)}

    def _failed_again(self, failures: Sequence[MediaError], state: _Rows) -> list[MediaError]:
        """Failures of this run's batch; a changed file that no longer decodes loses the rows of its earlier
        bytes, which a search would otherwise keep finding (counted as removed, and said in its error). A long
        file that fails loses the windows kept of it, by this run or an interrupted one."""
        from bindsearch.media import MediaError

        out = []
        for error in failures:
            path = str(error.path)
            state.dropped.add(path)
            self.catalog.delete(state.written.pop(path, {}).values())
            old = state.previous.get(path) or []
            state.previous[path] = []
            self.catalog.delete(i.id for i in old)
            if old and not partial(old):
                self.report.removed += files_of(old)
                error = MediaError(error.path, f"{error.cause}; the vector of its earlier content was removed")
            out.append(error)
        return out

    def _remove_vanished(self, roots: Sequence[Path], present: set[str], twins: dict[Path, Path],
                         unreadable: Sequence[Path] = ()) -> int:
        """Delete catalogued files under the given folders that are no longer there; returns how many files.
        `twins`: folders given in this run under a spelling not walked -> the one walked; a row under the first is
        gone with its file, and where its file was walked under the second (indexed twice by an earlier version).

        Kept: rows under folders the walk could not read (their files may well be there), files the walk does not
        list but that exist (a hidden file or one behind a link to a folder, indexed by name), and the files of a
        folder that is empty now, as an unmounted drive's mount point is, where it is a folder given to index or
        held `_MANY_GONE` indexed files or more (said in `report.warnings`): one picture deleted from its folder is
        gone, a whole drive's worth at once more likely out of reach."""
        kept = tuple(below(folder) for folder in unreadable)
        prefixes = tuple(below(root) for root in [*roots, *twins])
        rows = [i for i in self.catalog.items() if spelled(i.path).startswith(prefixes)
                and not (kept and spelled(i.path).startswith(kept))]

        def twin(path: str) -> str | None:
            given = next((folder for folder in twins if path.startswith(below(folder))), None)
            return None if given is None else str(twins[given] / path[len(below(given)):])

        # A row stored under another spelling (`a/../b`, as versions before the paths were normalised kept them)
        # is gone too: its file is indexed under the one spelling now.
        gone = [i for i in rows if spelled(i.path) != i.path or (i.path not in present and (
            twin(i.path) in present or not os.path.isfile(i.path)))]  # gone, or a folder by that name now
        emptied: dict[Path, list[Item]] = {}
        for item in gone:
            if spelled(item.path) == item.path and (folder := _empty_folder_above(Path(item.path))) is not None:
                emptied.setdefault(folder, []).append(item)
        emptied = {folder: items for folder, items in emptied.items()
                   if folder in roots or files_of(items) >= _MANY_GONE}
        for folder, items in emptied.items():
            self.report.warnings.append(
                f"{folder} is empty now, but {files_of(items)} indexed file(s) were in it (an unmounted drive?); "
                f"they were kept: if they are gone, run: bindsearch remove {folder} -c {self.directory}")
        spared = {i.id for items in emptied.values() for i in items}
        gone = [i for i in gone if i.id not in spared]
        if gone:
            self.catalog.delete(i.id for i in gone)
        return files_of(gone)


def _one_spelling(paths: list[Path]) -> tuple[list[Path], dict[Path, Path]]:
    """`paths`, those in a folder also given under another spelling (through a link, or the link itself) spelt
    below that folder as given, so that one run does not index a file once a spelling (`index ~/media/*` with
    `latest` a link to `2024`); and each folder so respelt -> its new spelling. A folder given without links in its
    path is the spelling kept, else the first (a name that is not UTF-8, which no catalog holds, last)."""
    def real(path: Path) -> Path:  # a file given keeps its own name: a link to a file is indexed by its name
        return Path(os.path.realpath(path)) if path.is_dir() else Path(os.path.realpath(path.parent), path.name)

    folders: dict[Path, Path] = {}  # real folder -> the spelling it is walked under
    for path in sorted((p for p in paths if p.is_dir()), key=lambda p: (printable(p) != str(p), real(p) != p)):
        folders.setdefault(real(path), path)  # sorted is stable: else the first
    out, respelt = [], {}
    for path in paths:
        where = real(path)
        holder = next((folder for folder in (*reversed(where.parents), where) if folder in folders), None)  # outermost
        out.append(path if holder is None else folders[holder] / where.relative_to(holder))
        if out[-1] != path and path.is_dir():
            respelt[path] = out[-1]
    return out, respelt


_MOVES_A_COMMIT = 4096  # rows whose path a commit changes (with their vectors: 12 MB at 768 dimensions)


def _gone(path: str) -> bool:
    """Whether no file is at `path` any more (a folder by its name counts as gone; one not readable, not)."""
    try:
        return not S_ISREG(os.stat(path).st_mode)
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


_SPECIAL = {S_IFIFO: "a named pipe (FIFO)", S_IFSOCK: "a socket"}
"""What a path that is no regular file is, by its type (a device otherwise: 'a special file')."""


def _given_folder(path: Path, roots: set[str]) -> Path:
    """The outermost folder given to `index` that holds `path` (a folder given beside one below it guesses as when
    given alone); for a file given itself, its own folder."""
    return next((parent for parent in reversed(path.parents) if str(parent) in roots), path.parent)


PICTURES = frozenset({"image", "depth", "infrared"})
"""What a picture file can be indexed as, one at a time: a photo, a depth map or a thermal frame. A plain run given
another folder (one below a `depth` folder reads its depth maps as photos, the folder above the other way round)
keeps what a picture is indexed as, which may have been `--modality`'s choice: the catalog does not say. To read
pictures as another modality, `bindsearch remove` them and index them again; `--modality` adds one."""


@dataclass
class _Rows:
    """What one modality's ingest knows of its files' rows: those each had before the run (`previous`), the
    partial rows the run wrote of long files not finished yet (`written`: path -> window -> id), and the files
    that failed (`dropped`: their windows still to come are not kept)."""

    previous: dict[str, list[Item]]
    written: dict[str, dict[tuple, int]] = field(default_factory=dict)
    dropped: set[str] = field(default_factory=set)


PARTIAL = "partial:"
"""Marks the hash of a window row kept before its file was finished: an interrupted run's windows."""


def partial(rows: Sequence[Item]) -> bool:
    """Whether a file's rows are windows an interrupted run kept (so not all of them may be there)."""
    return any(i.content_hash.startswith(PARTIAL) for i in rows)


_MANY_GONE = 10
"""Indexed files gone from one folder, now empty, from which `index` takes it for a drive that is not mounted."""


def _empty_folder_above(path: Path) -> Path | None:
    """The nearest existing folder above a file that is gone, when that folder is empty (nothing in it at all)."""
    return _empty_folder(path.parent)


def _empty_folder(folder: Path) -> Path | None:
    """The nearest existing folder at or above `folder`, when it is empty (nothing in it at all)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return folder if folder.is_dir() and not any(folder.iterdir()) else None
    except OSError:
        return None


def _with_id(item: Item, new_id: int) -> Item:
    return replace(item, id=new_id)


def files_of(items: Iterable[Item]) -> int:
    """How many files (each modality of a path once) these rows are: a long file has a row per window."""
    return len({(i.path, i.modality) for i in items})


def spelled(stored: str) -> str:
    """A stored path as `absolute` spells it now (rows written before the paths were normalised may differ)."""
    return stored if "/." not in stored else str(absolute(stored))


def unchanged(path: Path, item: Item, stat: os.stat_result | None = None, trust_mtime: bool = True) -> bool:
    """Whether a file holds the bytes its row was embedded from: the same size and mtime (unless not
    `trust_mtime`), or the same hash."""
    stat = stat or path.stat()
    if trust_mtime and stat.st_size == item.size and stat.st_mtime == item.mtime:
        return True
    return stat.st_size == item.size and content_hash(path) == item.content_hash
