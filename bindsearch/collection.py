"""`Collection`: folders of media indexed under one encoder, searchable by text or by files of any modality.

Text files (`.txt`) are items too, so that X->text search runs over a collection: a search returns them when
asked for with `modality="text"` (otherwise every other modality), since text-to-text cosines dwarf cross-modal
ones and would crowd out the media.

Video and audio longer than three windows (`WINDOW_SECONDS`) are indexed as consecutive windows, one vector each,
so a search finds the moment in an hour-long recording. A search returns each file once, at its best window,
unless asked for every window.

The LanceDB catalog (`indexes.Catalog`) is the source of truth; FAISS indexes, one per modality, are a
cache rebuilt from it when stale. `add` runs an `Ingest` (`bindsearch.ingest`) under a writer lock: it commits
what it has encoded every few seconds, so a killed `index` loses at most those seconds of work.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from bindsearch.errors import CollectionError, UnsupportedModalityError
from bindsearch.files import (
    StoredSpellings,
    absolute,
    below,
    check_paths,
    content_hash,
    file_in_the_way,
    given_paths,
    printable,
    spellings,
)
from bindsearch.hits import Hit, inside_test, ranked, search_result
from bindsearch.home import collections_home, holds_collection, list_collections
from bindsearch.ingest import COMMIT_SECONDS, PARTIAL, Ingest, files_of, partial, spelled, unchanged
from bindsearch.models.config import canonical_modality
from bindsearch.moments import rows_at, window_at, window_from
from bindsearch.report import IngestReport
from indexes import (
    Catalog,
    CollectionLock,
    EncoderInfo,
    Item,
    LockTimeout,
    VectorIndex,
    drop_stale_caches,
    merge_topk,
    open_index,
    search_exact,
    subset_index,
)

if TYPE_CHECKING:  # torch, the models and media decoding are imported where a model is loaded
    from bindsearch.models import EmbeddingModel

__all__ = ["Collection", "CollectionError", "Hit", "IngestReport", "check_paths", "collections_home",
           "list_collections", "search_result"]


SUBSET_ROWS = 50_000
"""A search restricted to folders (`under`) whose rows number at most this many scores just those rows, exactly;
above it, the modality's index is searched and rows outside the folders are passed over."""
WINDOW_SECONDS = 10.0
"""Video and audio longer than three of these are indexed as windows of about this many seconds: LanguageBind was
trained on clips of 10-30 s, and sees a longer file through 8 frames or three 10 s crops."""


def _directory(name_or_path: str | Path) -> Path:
    text = str(name_or_path)
    # A bare word is always a name under collections_home(), even if a folder of that name is in the cwd.
    if isinstance(name_or_path, Path) or os.sep in text or text.startswith((".", "~")):
        return absolute(text)
    if not re.fullmatch(r"[\w.-]+", text):
        raise CollectionError(f"collection name {text!r} may use letters, digits, '.', '-' and '_' only")
    return collections_home() / text


def _spelt(directory: Path) -> str:
    """How `-c` names the collection at `directory`: its name where it lives under collections_home(), else its
    path (a Path("c1") from Python is the folder ./c1, where `-c c1` would name another)."""
    return directory.name if directory == collections_home() / directory.name else str(directory)


def _load_encoder(spec: str, device: str, dtype: str | None, compile_towers: bool,
                  modalities: Iterable[str] | None = None) -> EmbeddingModel:
    from bindsearch.models import load_model

    model = load_model(spec, device=device, dtype=dtype, modalities=modalities)
    return model.compile_towers() if compile_towers else model

PathsArg = str | Path | Sequence[str | Path]
"""One path, or several: `files=` and `under=` take either."""


_TIED_ROWS = 1024
"""Rows a search fetches at most to bring in every row tied with its k-th hit (copies of one photo, identical
black windows), in one second search: beyond, which tied copies fill the last places is the index's choice. A query
among 1,500 copies of one photo takes 65 ms where it took 41 ms without ties (130-200 ms fetching 4x at a time)."""


class Collection:
    """A named, persistent, searchable set of embedded files; see `open`, `add`, `search`, `remove`, `stats`."""

    def __init__(self, directory: Path, catalog: Catalog, model: EmbeddingModel | None, device: str = "auto",
                 dtype: str | None = None, compile_towers: bool = False):
        from bindsearch.models.loading import register_inputs

        register_inputs(catalog.encoder.name)  # a modality of one's own, named by rows before any model loads
        self.directory = directory
        self.catalog = catalog
        self.device = device
        self.dtype = dtype
        self.compile_towers = compile_towers
        self._model = model
        self._every_tower = model is not None  # False while `_model` holds only the towers a search needed
        self._indexes: dict[str, VectorIndex] = {}  # per modality, held while the catalog does not change
        self._facts: tuple[str, dict] = ("", {})  # (fingerprint, what was read of that version): see `_of_version`
        self._subsets: OrderedDict[tuple, VectorIndex] = OrderedDict()  # folders searched alone, the latest last
        # Searches from several threads take turns: the caches above change under them, an IVF search widens its
        # index's probes for a moment, and each search already uses every core (torch and FAISS).
        self._turn = threading.RLock()

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def model(self) -> EmbeddingModel:
        """The collection's encoder with every tower, loaded on first use from the spec stored in the catalog."""
        return self.encoder()

    def encoder_modalities(self) -> tuple[str, ...]:
        """What the collection's encoder encodes ("text" first), without loading its towers where the spec says."""
        if self._model is not None and self._every_tower:
            return tuple(self._model.modalities)
        from bindsearch.models.loading import spec_modalities

        return spec_modalities(self._stored_spec()) or tuple(self.model.modalities)

    def _stored_spec(self) -> str:
        """The encoder's spec as the catalog stores it, a folder of weights it names checked to be there (gone, it
        read as an unknown model name, whose advice does not help)."""
        spec = self.catalog.encoder.name
        gone = next((s for s in map(str.strip, spec.split(",")) if os.path.isabs(s) and not os.path.isdir(s)), None)
        if gone is not None:
            raise CollectionError(f"{self.directory} was built with the model at {gone}, which is not there any "
                                  "more (moved or deleted?): put it back, or give --model the folder it is in now "
                                  "(the same weights are recognised)")
        return spec

    def encoder(self, modalities: Iterable[str] | None = None) -> EmbeddingModel:
        """The collection's encoder with at least the towers of `modalities` and text (None: every tower).

        Loaded on first use from the spec stored in the catalog, and only as far as asked: LanguageBind's towers
        are 300M parameters each, and a text query of a five-tower collection needs none of them.
        """
        with self._turn:  # two threads' first queries load the towers once
            return self._encoder(modalities)

    def _encoder(self, modalities: Iterable[str] | None) -> EmbeddingModel:
        needed = None if modalities is None else {canonical_modality(m) for m in modalities} | {"text"}
        if self._model is not None and (self._every_tower or needed is not None
                                        and needed <= set(self._model.modalities)):
            return self._model
        if needed is not None and self._model is not None:
            needed |= set(self._model.modalities)
        stored = self.catalog.encoder
        model = _load_encoder(self._stored_spec(), self.device, self.dtype, self.compile_towers, needed)
        if stored.checkpoint not in (model.checkpoint, *model.previous_checkpoints) or model.dim != stored.dim:
            raise CollectionError(
                f"{self.directory} was built with {stored.name} checkpoint {stored.checkpoint}, but that spec "
                f"now loads checkpoint {model.checkpoint}; re-index into a new collection")
        from bindsearch.models.loading import absolute_spec

        # Weights named as this version names them: their checkpoint id, and a folder by its absolute path.
        renamed = replace(stored, name=absolute_spec(stored.name), checkpoint=model.checkpoint)
        if renamed != stored:
            _rename_encoder(self.directory, self.catalog, renamed)
        self._model, self._every_tower = model, needed is None
        return model

    @classmethod
    def open(cls, name_or_path: str | Path, model: EmbeddingModel | str | None = None, device: str = "auto",
             create: bool = True, dtype: str | None = None, compile_towers: bool = False,
             default_model: str | None = None) -> Collection:
        """Open (or create, when `model` or `default_model` is given) a collection by name or path; its encoder
        must match.

        Without `model`, the collection's own encoder is loaded when first needed; `default_model` is the spec a
        collection created here gets when `model` is None. `dtype` ("bfloat16",
        "float16" on a GPU) and `compile_towers` (see `EmbeddingModel.compile_towers`) apply to an encoder
        loaded here by name; vectors of any dtype share one collection (cosine >= 0.999 to fp32).
        """
        directory = _directory(name_or_path)
        in_the_way = file_in_the_way(directory)
        if in_the_way is not None:
            raise CollectionError(f"{in_the_way} is a file, so no collection can live at {directory}; give -c a "
                                  "name or a folder that is not inside a file")
        exists = holds_collection(directory)
        here = Path(str(name_or_path))
        if not exists and not isinstance(name_or_path, Path) and directory == collections_home() / here.name and \
                holds_collection(here.absolute()):  # `-c c1` in the folder that holds the collection ./c1
            raise CollectionError(f"no collection {here.name!r} at {directory}, but ./{here.name} here is one: give "
                                  f"-c ./{here.name} (a bare name names a collection under {collections_home()}; to "
                                  f"make one there, give its path: -c {directory})")
        if not exists and model is None:
            model = default_model
        crowded = not exists and directory.is_dir() and any(p.name not in _OWN_FILES for p in directory.iterdir())
        if not exists and (not create or model is None):
            spelt = _spelt(directory)
            how = (f"{directory} holds other files, so no collection can be made there: index into a name or a new "
                   "folder" if crowded else f"create it with `bindsearch index PATH -c {spelt}`")
            raise CollectionError(f"no collection {str(name_or_path)!r} at {directory}; {how}")
        if crowded:
            # `-c .` in a media folder would mix the catalog's files with the media, and index them next time.
            raise CollectionError(f"{directory} already holds other files; a collection needs a folder of its own: "
                                  "give -c a new or empty folder, or a name")
        if model is None:
            return cls(directory, Catalog.open(directory), None, device, dtype, compile_towers)
        if isinstance(model, str):
            model = _load_encoder(model, device, dtype, compile_towers)
        encoder = EncoderInfo(name=model.spec, checkpoint=model.checkpoint, dim=model.dim)
        if exists:
            from bindsearch.models.loading import absolute_spec

            catalog = Catalog.open(directory)
            stored = catalog.encoder
            # The same weights named as an earlier version named them: a folder given relative to the cwd (before
            # 0.3.1; any spelling will do where the checkpoint ids agree), or ids from the weight files' sizes
            # alone (0.1; then the folder must be the one the stored spelling names from here). Renamed as they
            # are named now, so that only these weights open it, from anywhere.
            same_weights = stored.checkpoint == encoder.checkpoint or (
                stored.checkpoint in model.previous_checkpoints and absolute_spec(stored.name) == encoder.name)
            now = replace(stored, name=encoder.name, checkpoint=encoder.checkpoint)
            if stored != encoder and now == encoder and same_weights:
                if not _rename_encoder(directory, catalog, now):
                    encoder = stored
        return cls(directory, Catalog.open(directory, encoder), model, device, dtype, compile_towers)

    # -- writing --------------------------------------------------------------------------------
    def add(self, paths: PathsArg, modality: str | None = None, batch_size: int | None = None,
            workers: int | None = None, wait: float = 0.0,
            progress: Callable[[int, int], None] | None = None,
            commit_seconds: float = COMMIT_SECONDS, window: float = WINDOW_SECONDS,
            rehash: bool = False) -> IngestReport:
        """Index files and folders (recursively): new files embedded, changed ones re-embedded, unchanged
        skipped, and files gone from the given folders removed. `modality=None` guesses per file.

        A file whose size and mtime are those it was embedded with is unchanged, as rsync and make judge; with
        `rehash` every file is hashed and compared (for files changed under a kept mtime): files up to 64 MiB whole,
        larger ones by their size and 4 MiB at the start, middle and end (`files.content_hash`).

        What is encoded is committed at most every `commit_seconds` (0: after every batch) and at the end.
        Video and audio longer than three `window`s are embedded as windows of about `window` seconds (0: every
        file whole); the length applies to the files this run embeds.
        """
        from bindsearch import media
        from bindsearch.modalities import checked_batch_size

        start = time.perf_counter()
        plan = media.WindowPlan(window)
        batch_size = checked_batch_size(batch_size)
        paths = given_paths(paths, "index")
        check_paths(paths)
        self.catalog.pinned()  # a collection deleted since it was opened says so (the lock would make its folder anew)
        encodes = self.encoder_modalities()
        forced = _known_modality(modality) if modality else None
        if forced and forced not in encodes:
            raise UnsupportedModalityError.of(self.catalog.encoder.name, forced, encodes)
        with CollectionLock(self.directory).acquire(timeout=wait):
            ingest = Ingest(self.catalog, self.directory, self.encoder, encodes, forced, plan, rehash)
            report = ingest.run(paths, batch_size, workers, progress, commit_seconds)
            # Leave fresh FAISS caches behind so the next search starts at once (held here for this one's).
            snapshot = self.catalog.pinned()
            for kind in snapshot.modalities():
                self._index(snapshot, kind)
            drop_stale_caches(snapshot)
        report.seconds = time.perf_counter() - start
        return report

    def remove(self, paths: PathsArg, wait: float = 0.0) -> int:
        """Forget these files (or everything under these folders); returns how many files were removed (a file
        indexed as windows, or as two modalities, counts once per modality)."""
        self.catalog.pinned()  # gone since opened: said, not a folder made anew
        with CollectionLock(self.directory).acquire(timeout=wait):
            targets = {str(p) for p in self.spellings(given_paths(paths, "remove"))}
            prefixes = tuple(below(t) for t in targets)
            gone = [i for i in self.catalog.items()
                    if spelled(i.path) in targets or spelled(i.path).startswith(prefixes)]
            if gone:
                self.catalog.delete(i.id for i in gone)
                self.catalog.tidy()  # a large removal gives its disk back
        return files_of(gone)

    # -- reading --------------------------------------------------------------------------------
    def query_vector(self, text: str | Sequence[str] | None = None, files: PathsArg = (),
                     file_modality: str | None = None, at: float | str | None = None) -> np.ndarray:
        """Text and/or files -> one (d,) float32 unit query: the mean of their unit vectors, renormalised.

        A file's modality is `file_modality`, else the catalog's (its stored vector is reused, also when the file
        has gone since; a long file's windows averaged), else a guess; a text file's words join the query as text.
        `at` (seconds, or "1:20" as `search --at` takes it) makes the query one moment of a single video or audio
        file: its indexed window there, or `WINDOW_SECONDS` decoded from `at`.
        """
        return self._query(text, files, file_modality, at, self.catalog.pinned())[0]

    def _query(self, text: str | Sequence[str] | None, files: PathsArg, file_modality: str | None,
               at: float | str | None, snapshot: Catalog) -> tuple[np.ndarray, set[int], set[str]]:
        """(the query vector, the ids of the indexed windows it is: what a search for more moments leaves out,
        every spelling of its files: what a search leaves out otherwise), read from one version of the catalog:
        a file's rows looked up in one and read in the next, which a writer had removed them from, were a
        KeyError."""
        from bindsearch import media
        from bindsearch.media.windows import parse_moment

        files = given_paths(files, "file")
        file_modality = _known_modality(file_modality) if file_modality is not None else None
        if at is not None and len(files) != 1:
            raise CollectionError(f"a moment is of one file, and {len(files)} were given")
        try:  # "1:20" as search --at and serve take it; NaN made every window's test false, and was searched
            at = None if at is None else parse_moment(at)
        except ValueError as exc:
            raise CollectionError(f"at: {exc}") from None
        several = isinstance(text, Iterable) and not isinstance(text, str | bytes | bytearray)
        texts = [] if text is None else list(text) if several else [text]
        odd = [t for t in texts if not isinstance(t, str)]
        if odd:
            raise TypeError(f"text takes a str or a list of str, not {type(odd[0]).__name__}")
        if any(not t.strip() for t in texts):
            raise CollectionError("the text query is empty: give words to search for")
        parts, to_encode, used = [], [], set()
        spelt = {f: self.spellings([f], snapshot) for f in files}
        # A name that is not UTF-8 cannot be in the catalog (nor asked of it): such a file is read as a new one.
        known = snapshot.lookup_paths(str(p) for f in files for p in spelt[f] if printable(p) == str(p))
        for f in files:
            path = absolute(f)
            rows = next((known[str(p)] for p in spelt[f] if str(p) in known), [])
            stored = _rows_as(rows, path, file_modality)
            spelt[f] += _other_names(snapshot, path, rows)
            if at is not None:  # a moment leaves out the file's own rows at that moment, however it is read
                used.update(i.id for i in rows_at(rows, at))
            # Indexed and unchanged, or gone from the disk since: what the collection holds of it is the query.
            # (Windows an interrupted run kept are not all of it: such a file is read again.)
            if stored and not partial(stored) and (not path.exists() or unchanged(path, stored[0])):
                if at is None:
                    parts.append(_unit(snapshot.get_vectors([i.id for i in stored]).mean(axis=0, keepdims=True)))
                    continue
                if stored[0].start is not None:
                    parts.append(snapshot.get_vectors([window_at(path, stored, at).id]))
                    continue
                # Indexed whole: 10 s decoded from the moment (its row is left out, by `rows_at`).
            if path.is_dir():
                raise CollectionError(f"{path} is a folder; a query is one file (to search a folder's files, "
                                      "index them and search the collection)")
            kind, why = (file_modality, "") if file_modality else (
                (stored[0].modality, "") if stored else media.modality_of(path))
            if kind is None:
                raise CollectionError(f"{path}: cannot tell its modality ({why}); pass --file-modality")
            to_encode.append((kind, path, None if at is None else window_from(path, kind, at, WINDOW_SECONDS)))
        if texts or to_encode:  # the towers this query needs, and no others
            model = self.encoder({kind for kind, _, _ in to_encode})
            parts += [model.encode("text", texts).numpy()] if texts else []
            for kind, path, window in to_encode:
                if window is not None:
                    x = media.load(kind, path, model.preprocess.get(kind), window=window)
                    parts.append(model.embed(kind, x[None]).numpy())
                else:
                    parts.append(model.encode(kind, [media.read_text(path) if kind == "text" else path]).numpy())
        if not parts:
            raise CollectionError("nothing to search with: give a text, a file, or both")
        query = _unit(np.concatenate(parts).astype(np.float32).mean(axis=0))
        return query, used, {str(p) for spelt_as in spelt.values() for p in spelt_as}

    def search(self, text: str | Sequence[str] | None = None, files: PathsArg = (),
               file_modality: str | None = None, modality: str | Sequence[str] | None = None,
               k: int = 10, every_window: bool = False, at: float | str | None = None,
               under: PathsArg = ()) -> list[Hit]:
        """Top-k items of the given modalities for a text and/or file query; query files excluded.

        `modality=None` searches every modality but text, or text where the collection holds nothing else. A long
        file is one hit, at its best window, unless `every_window`. With `at` the query is that moment of its one
        file (see `query_vector`), and only that moment is left out: other moments of the file may come back.
        `under` keeps only files at or below these folders (or files).
        """
        query, used, spelt = self._query(text, files, file_modality, at, self.catalog.pinned())
        exclude = spelt if at is None else set()
        k = _check_k(k)
        with self._turn:  # pinned again under the turn: a search never takes the held indexes back a version
            return self._search_vectors(query[None], modality, k, exclude, every_window, used, under,
                                        self.catalog.pinned())[0]

    def search_texts(self, texts: Sequence[str], modality: str | Sequence[str] | None = None,
                     k: int = 10, every_window: bool = False, under: PathsArg = ()) -> list[list[Hit]]:
        """Top-k hits for each of many text queries: encoded in batches, searched together."""
        if isinstance(texts, str):
            raise TypeError(f"search_texts takes a list of texts, got one str: pass [{texts!r}], or use search")
        texts = list(texts)
        blank = next((i for i, t in enumerate(texts) if isinstance(t, str) and not t.strip()), None)
        if blank is not None:  # as `search` refuses it: an empty query's hits would look like answers
            raise CollectionError(f"text query {blank} of {len(texts)} is empty: give words to search for")
        k = _check_k(k)
        if not texts:
            return []
        queries = self.encoder(()).encode("text", texts).numpy()
        return self.search_vectors(queries, modality, k, every_window=every_window, under=under)

    def search_vector(self, query: np.ndarray, modality: str | Sequence[str] | None = None, k: int = 10,
                      exclude: set[str] = frozenset(), every_window: bool = False,
                      under: PathsArg = ()) -> list[Hit]:
        """Top-k hits for a (d,) unit query vector, from the last committed state of the catalog."""
        return self.search_vectors(np.asarray(query)[None], modality, k, exclude, every_window, under=under)[0]

    def search_vectors(self, queries: np.ndarray, modality: str | Sequence[str] | None = None, k: int = 10,
                       exclude: set[str] = frozenset(), every_window: bool = False,
                       exclude_ids: set[int] = frozenset(), under: PathsArg = ()) -> list[list[Hit]]:
        """Top-k hits for each of (n, d) unit query vectors: one index search for them all.

        Each file counts once, at its best window (unless `every_window`), and files in `exclude` (one path or
        several, str or Path, relative or `~`: the name a file is indexed under, not another reaching it through a
        link; rows in `exclude_ids`) not at all: the index is asked for more rows until k files are found or it has
        no more. With `under`, only files at or below those paths count: where they hold few rows (`SUBSET_ROWS`)
        just those are scored, else the index is searched and the rest passed over.
        """
        queries = self._check_queries(queries)
        k = _check_k(k)
        # As the catalog spells them: a Path, or a relative or `~` spelling, was never equal to a stored path, and
        # one str was matched as a substring of each.
        exclude = {str(absolute(p)) for p in given_paths(exclude, "exclude")}  # (an array has no truth value)
        with self._turn:
            return self._search_vectors(queries, modality, k, exclude, every_window, exclude_ids, under,
                                        self.catalog.pinned())

    def _check_queries(self, queries: np.ndarray) -> np.ndarray:
        """(n, d) float32 unit rows: a row of another length is a clear error, a row that is not unit is made one
        (a score is a cosine only against a unit query)."""
        queries = np.asarray(queries, dtype=np.float32)
        dim = self.catalog.dim
        if queries.ndim != 2 or queries.shape[1] != dim:
            raise CollectionError(f"query vectors must be (n, {dim}) for this collection's encoder, not "
                                  f"{queries.shape}")
        norms = np.linalg.norm(queries, axis=1)
        if not np.isfinite(norms).all() or (norms == 0).any():
            raise CollectionError("a query vector is zero or holds NaN or infinity: nothing to search with")
        off = np.abs(norms - 1) > 1e-4  # rows already unit keep their bits: results equal the other front-ends'
        if off.any():
            queries = queries.copy()
            queries[off] /= norms[off, None]
        return queries

    def _search_vectors(self, queries: np.ndarray, modality: str | Sequence[str] | None, k: int,
                        exclude: set[str], every_window: bool, exclude_ids: set[int], under: PathsArg,
                        snapshot: Catalog) -> list[list[Hit]]:
        present = self._of_version(snapshot, "modalities", snapshot.modalities)
        if modality is not None and not isinstance(modality, str | Iterable):
            raise TypeError(f"modality takes a name or a list of names, not {type(modality).__name__}")
        wanted = [modality] if isinstance(modality, str) else list(modality or _default_targets(present))
        searched = [m for m in dict.fromkeys(_known_modality(m) for m in wanted) if m in present]
        folders = tuple(sorted(str(p) for p in self.spellings(given_paths(under, "under"), snapshot)))
        misnamed = [f for f in folders if printable(f) != f]
        if misnamed:  # `walk` leaves out what lies under such a name: no row can be there
            raise ValueError(f"under {printable(misnamed[0])}: not UTF-8, so nothing can be indexed under it")
        if not searched:
            return [[] for _ in queries]
        indexes = [self._index(snapshot, m, folders) for m in searched]
        if folders:
            self._forget_subsets(snapshot, keep={(snapshot.fingerprint(), m, folders) for m in searched})
        inside = inside_test(folders) if folders else None
        stored = sum(len(index) for index in indexes)
        fetch = min(stored, k + len(exclude) + len(exclude_ids))  # -k 10000000 of 30 rows: 30, not 2.7 GB of room
        if folders:  # where rows outside the folders are passed over, ask for enough that k are likely inside
            rows = sum(self._rows_under(snapshot, m, folders) for m in searched)
            if rows == 0:
                return [[] for _ in queries]
            fetch = min(stored, math.ceil(fetch * 1.25 * stored / rows))
        target = k  # hits a query can have: fewer where the modalities hold fewer files than k
        probes = {index: index.nprobe for index in indexes if index.nlist > 1}
        metric = indexes[0].metric
        ties_until, rounds = max(_TIED_ROWS, 16 * fetch), 0

        def settled(hits: list[Hit], row_scores: np.ndarray, row_ids: np.ndarray) -> bool:
            """Whether more rows cannot change these hits: enough of them, and no row left unfetched that ties the
            k-th (equal scores go by id, so one with a lower id than the k-th would take its place), short of
            fetching more than `ties_until` rows for ties alone."""
            if len(hits) < target:
                return False
            if len(hits) < k or row_ids[-1] < 0 or fetch >= ties_until:
                return True
            last, kth = row_scores[-1], hits[k - 1].score
            return bool(last < kth if metric == "ip" else last > kth)

        try:
            if folders:
                # An IVF search sees the rows of the lists it probes: k rows inside a folder holding a tenth of them
                # lie as deep as 10k rows of all, in ten times the lists (recall@10 0.54 in a folder of 1 % of rows).
                for index in probes:
                    index.nprobe = min(index.nlist, math.ceil(index.nprobe * 1.25 * stored / rows))
            while True:
                scores, ids = merge_topk([search_exact(snapshot, index, queries, fetch) for index in indexes],
                                         fetch, metric)
                found = snapshot.get(int(i) for i in ids.ravel() if i >= 0)
                out = [ranked(row_scores, row_ids, found, exclude, exclude_ids, every_window, inside)[:k]
                       for row_scores, row_ids in zip(scores, ids, strict=True)]
                # An IVF index at fewer probes than lists holds back rows even when asked for every one.
                exhausted = fetch >= stored and all(index.nprobe >= index.nlist for index in probes)
                if exhausted or all(settled(*row) for row in zip(out, scores, ids, strict=True)):
                    return out
                if target == k and not every_window:  # counted once, on the first shortfall
                    target = min(k, self._findable(snapshot, searched, exclude, exclude_ids, folders))
                    if all(settled(*row) for row in zip(out, scores, ids, strict=True)):
                        return out
                # Short of hits, or the k-th hit the last row read (a row past it may tie it): four times the
                # rows. Ties past that (copies of a photo): every row ties may take, in one more search.
                tied = not any(len(hits) < target for hits in out) and rounds > 0
                fetch = min(max(4 * fetch, ties_until) if tied else 4 * fetch, stored)
                rounds += 1
                # An IVF search returns only what its probed lists hold: asked for more rows (the windows of one
                # file crowd the top), it must visit more lists, or the windows collapse into fewer than k files.
                for index in probes:
                    index.nprobe = min(index.nlist, 4 * index.nprobe)
        finally:
            for index, nprobe in probes.items():
                index.nprobe = nprobe

    def _findable(self, snapshot: Catalog, modalities: Sequence[str], exclude: set[str],
                  exclude_ids: set[int], folders: tuple[str, ...] = ()) -> int:
        """How many files of these modalities (under `folders`) a search can return: files, less those left out
        whole."""
        files = sum(self._of_version(snapshot, ("files", m, folders), lambda m=m: snapshot.count_files(m, folders))
                    for m in modalities)
        out = {(i.path, i.modality) for rows in snapshot.lookup_paths(exclude).values() for i in rows}
        out |= {(i.path, i.modality) for i in snapshot.get(exclude_ids).values() if i.start is None}
        inside = inside_test(folders) if folders else None
        return files - sum(m in modalities and (inside is None or inside(p)) for p, m in out)

    def spellings(self, paths: Iterable[str | Path], snapshot: Catalog | None = None) -> list[Path]:
        """Every spelling under which the catalog may hold each path: as given, its target with links resolved, and
        the spelling of what was indexed through another (a link to the folder, or the folder a link points to)."""
        paths = list(paths)
        if not paths:  # nothing to spell: no scan of the catalog's paths
            return []
        snapshot = snapshot or self.catalog
        aliases = self._of_version(snapshot, "spellings", lambda: StoredSpellings(snapshot.folders()))
        out: dict[Path, None] = {}
        for path in paths:
            for spelling in spellings(path):
                out[spelling] = None
                if (alias := aliases.of(spelling)) is not None:
                    out[alias] = None
        return list(out)

    def _of_version(self, snapshot: Catalog, key: object, read: Callable[[], object]):
        """`read()`, once per catalog version: the modalities present, files per modality (each scans a column)."""
        with self._turn:
            if self._facts[0] != snapshot.fingerprint():
                self._facts = (snapshot.fingerprint(), {})
            facts = self._facts[1]
            if key not in facts:
                facts[key] = read()
            return facts[key]

    def _forget_subsets(self, snapshot: Catalog, keep: set[tuple]) -> None:
        """Drop the folder indexes of older catalog versions, then the least recently used, down to 2 x
        `SUBSET_ROWS` rows held, but never those of the search at hand (`keep`): a search under folders holding
        that many rows in several modalities would rebuild its own every time."""
        for key in [key for key in self._subsets if key[0] != snapshot.fingerprint()]:
            del self._subsets[key]
        spare = [key for key in self._subsets if key not in keep]  # oldest first
        while spare and sum(map(len, self._subsets.values())) > 2 * SUBSET_ROWS:
            del self._subsets[spare.pop(0)]

    def _rows_under(self, snapshot: Catalog, modality: str, folders: tuple[str, ...]) -> int:
        return self._of_version(snapshot, ("rows", modality, folders), lambda: snapshot.count(modality, folders))

    def _index(self, snapshot: Catalog, modality: str, folders: tuple[str, ...] = ()) -> VectorIndex:
        """The modality's FAISS index, current with `snapshot`: the one held since the last search while no commit
        came in between (a served collection reads its indexes from disk once, not once a query), else the
        cache `open_index` keeps current. With `folders` holding at most `SUBSET_ROWS` of its rows: an exact
        index of those rows alone, held for the next searches under the same folders (the latest, up to twice
        `SUBSET_ROWS` rows in all)."""
        with self._turn:
            return self._held_index(snapshot, modality, folders)

    def _held_index(self, snapshot: Catalog, modality: str, folders: tuple[str, ...]) -> VectorIndex:
        if folders and self._rows_under(snapshot, modality, folders) <= SUBSET_ROWS:
            key = (snapshot.fingerprint(), modality, folders)
            if key not in self._subsets:
                self._subsets[key] = subset_index(snapshot, modality, folders)
            self._subsets.move_to_end(key)
            return self._subsets[key]
        held = self._indexes.get(modality)
        if held is None or held.fingerprint != snapshot.fingerprint():
            held = self._indexes[modality] = open_index(snapshot, modality, device=self.device)
        return held

    def stats(self) -> dict:
        """Files per modality, vectors stored (`items`: a long file has one per window, `windows` of them in all),
        long files an interrupted run left partly indexed (`partial`), the encoder, and where the collection lives
        (no model is loaded)."""
        self.catalog.pinned()  # gone since opened: said, not LanceDB's missing-file error
        enc = self.catalog.encoder
        size = sum(f.stat().st_size for f in self.directory.rglob("*") if f.is_file())
        files = {m: self.catalog.count_files(m) for m in self.catalog.modalities()}
        return {"name": self.name, "path": str(self.directory), "files": sum(files.values()),
                "items": len(self.catalog), "windows": self.catalog.count_windows(), "modalities": files,
                "partial": len(self.catalog.paths_with_hash(PARTIAL)),
                "encoder": {"spec": enc.name, "checkpoint": enc.checkpoint, "dim": enc.dim, "metric": enc.metric},
                "version": self.catalog.version, "disk_bytes": size}

    def delete(self) -> None:
        """Remove the whole collection from disk."""
        with CollectionLock(self.directory).acquire():
            shutil.rmtree(self.directory)


def _known_modality(name: str) -> str:
    """`canonical_modality`, an unknown name a CollectionError: misuse of a collection, as the README says, not a
    bare ValueError."""
    try:
        return canonical_modality(name)
    except ValueError as exc:
        raise CollectionError(str(exc)) from None


def _rows_as(rows: list[Item], path: Path, file_modality: str | None) -> list[Item]:
    """The rows of a query file that are it as the query reads it: those of `file_modality` where given, else of
    the modality its name says where it was indexed as two (a video indexed as its sound too), else its one."""
    if not rows:
        return []
    kinds = {i.modality for i in rows}
    if file_modality is not None:
        chosen = canonical_modality(file_modality)
    elif len(kinds) > 1:
        from bindsearch.media import modality_of

        guess = modality_of(path)[0] if path.exists() else None
        chosen = guess if guess in kinds else rows[0].modality
    else:
        chosen = rows[0].modality
    return [i for i in rows if i.modality == chosen]


def _other_names(snapshot: Catalog, path: Path, rows: Sequence[Item]) -> list[Path]:
    """The names other than its own under which the catalog holds the file at `path`: links to it, hard links
    (found among the rows of its size and content hash); a query by the file leaves them out with it."""
    try:
        size, digest = (rows[0].size, rows[0].content_hash) if rows else (path.stat().st_size, content_hash(path))
    except OSError:  # gone, or not readable: searched by its stored vector, or said where it is read
        return []
    if digest.startswith(PARTIAL):
        return []
    out = []
    for item in snapshot.with_content(size, [digest]):
        with contextlib.suppress(OSError):
            if item.path != str(path) and os.path.samefile(item.path, path):
                out.append(Path(item.path))
    return out


def _check_k(k: object) -> int:
    """`k` as a Python int (FAISS takes no numpy integer), or a CollectionError saying what it must be."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise CollectionError(f"k must be a whole number of at least 1, not {k!r}")
    return int(k)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


_OWN_FILES = {"items.lance", "indexes", ".writer.lock"}
"""What a collection's folder holds: a new collection is made only where nothing else is."""


def _rename_encoder(directory: Path, catalog: Catalog, encoder: EncoderInfo) -> bool:
    """Store how this version names the collection's weights in place of how an earlier version named them (0.1
    identified weights by their files' sizes alone, which retrained weights share; before 0.3.1 a local folder was
    stored as given, relative to the cwd), so that from now on only these weights open it, from anywhere. False
    while another process writes, or where the collection cannot be written (a search of a read-only copy):
    renamed by a later opening."""
    try:
        with CollectionLock(directory).acquire(timeout=0):
            catalog.rename_encoder(encoder)
    except (LockTimeout, OSError, RuntimeError):  # RuntimeError: LanceDB's own refusal to write
        return False
    return True


def _default_targets(present: Sequence[str]) -> list[str]:
    """What a search with no modality named returns: every modality but text, or text if that is all there is."""
    media = [m for m in present if m != "text"]
    return media or list(present)
