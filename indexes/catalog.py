"""The LanceDB catalog, the source of truth: one row per item (path, modality, size, mtime, content hash, vector).

An item is a whole file, or a window of one (`start` and `end` in seconds): long video and audio are catalogued as
consecutive windows, one row each, that share the file's path, size, mtime and hash.

Every write is one LanceDB commit (a new table version). A commit becomes visible atomically when its manifest
is renamed into place, so a writer killed mid-write leaves the last committed version readable. The encoder
that made the vectors lives in the table's schema metadata; opening with another encoder is refused.
Hold a `CollectionLock` around writes: ids are allocated by the caller (or by `add`) from `next_id()`.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["Catalog", "CatalogError", "EncoderInfo", "EncoderMismatchError", "Item"]

TABLE = "items"
_NEVER = timedelta(days=36500)
_DISK_SLACK = 1 << 20  # what a small collection's superseded versions may hold before `tidy` compacts for them
_CLOCK_MARGIN = timedelta(seconds=1)  # LanceDB reads its clock a moment after `_superseded` does
COMPACT_FRAGMENTS = 32
"""A catalog spread over more data files than this is compacted by `tidy` (a path look-up scans every file)."""
SUPERSEDED_GRACE = timedelta(minutes=10)
"""How long the files of a superseded version are kept: a search that pinned it before the next commit (a served
collection's) still reads them. `tidy` and `compact` delete the rest."""
_ENCODER_KEY = b"bindsearch.encoder"
_NEXT_ID_KEY = b"bindsearch.next_id"  # on the `id` field: see `Catalog.next_id`
_COLLECTION_KEY = b"bindsearch.collection_id"
_IN_CHUNK = 1000  # ids or paths per SQL `IN (...)` list


class CatalogError(ValueError):
    """A catalog cannot be opened or written as asked."""


class EncoderMismatchError(CatalogError):
    """The collection's vectors were made by another encoder than the one given."""


@dataclass(frozen=True)
class EncoderInfo:
    """Where vectors come from: the model spec users type, its checkpoint, dimension and metric."""

    name: str
    checkpoint: str
    dim: int
    metric: str = "cosine"

    def describe(self) -> str:
        """'languagebind:video_ft (checkpoint abc, 768-d, cosine)'."""
        return f"{self.name} (checkpoint {self.checkpoint}, {self.dim}-d, {self.metric})"


@dataclass(frozen=True)
class Item:
    """One catalogued file, or a window of one (`start`, `end` in seconds; None for a whole file), without its
    vector. `id` and `added_at` are filled in by `Catalog.add` when None."""

    path: str
    modality: str
    size: int
    mtime: float
    content_hash: str
    id: int | None = None
    added_at: datetime | None = None
    start: float | None = None
    end: float | None = None


class Catalog:
    """A LanceDB table of items and their (n, dim) float32 vectors, tied to one encoder."""

    def __init__(self, directory: Path, table: lancedb.table.Table, encoder: EncoderInfo, collection_id: str) -> None:
        """Use `Catalog.open`; this wraps an already opened table."""
        self.directory = directory
        self.table = table
        self.encoder = encoder
        self.collection_id = collection_id
        # Catalogs written before windows existed lack their columns until the first write adds them (maybe in
        # another process: `_has_windows` looks again until it sees them).
        self._windows = _WINDOW_COLUMNS[0] in table.schema.names

    @classmethod
    def open(cls, directory: str | os.PathLike, encoder: EncoderInfo | None = None) -> Catalog:
        """Open the catalog in directory, creating it for encoder if absent; encoder=None opens with the stored one."""
        directory = Path(directory).absolute()
        # A zero interval re-reads the latest manifest on every call, so readers see other processes' commits.
        db = lancedb.connect(directory, read_consistency_interval=timedelta(0))
        try:
            table = db.open_table(TABLE)
        except ValueError:  # "Table 'items' was not found"
            table = None
        if table is not None:
            return cls._checked(directory, table, encoder)
        if encoder is None:
            raise CatalogError(f"no collection at {directory}; create it by indexing files with an encoder")
        collection_id = uuid.uuid4().hex
        schema = _schema(encoder.dim).with_metadata(
            {_ENCODER_KEY: json.dumps(asdict(encoder)).encode(), _COLLECTION_KEY: collection_id.encode()}
        )
        try:
            table = db.create_table(TABLE, schema=schema)
        except ValueError:  # "Table 'items' already exists": another process created it first
            return cls._checked(directory, db.open_table(TABLE), encoder)
        return cls(directory, table, encoder, collection_id)

    @classmethod
    def _checked(cls, directory: Path, table: lancedb.table.Table, encoder: EncoderInfo | None) -> Catalog:
        metadata = table.schema.metadata or {}
        if _ENCODER_KEY not in metadata:
            raise CatalogError(f"{directory} holds a LanceDB table {TABLE!r} that bindsearch did not create")
        if table.schema.names not in (_schema(1).names, _LEGACY_NAMES):
            raise CatalogError(f"{directory} was written by another version of bindsearch; index into a new directory")
        # A table's schema metadata is fixed at creation; a renamed checkpoint is kept on the `id` field.
        renamed = (table.schema.field("id").metadata or {}).get(_ENCODER_KEY)
        stored = EncoderInfo(**json.loads(renamed or metadata[_ENCODER_KEY]))
        if encoder is not None and encoder != stored:
            raise EncoderMismatchError(
                f"the collection at {directory} was built with encoder {stored.describe()}, not "
                f"{encoder.describe()}. Search it with {stored.name!r}, or index into a new collection "
                f"directory (or delete {directory}) to use {encoder.name!r}."
            )
        return cls(directory, table, stored, metadata[_COLLECTION_KEY].decode())

    def rename_encoder(self, encoder: EncoderInfo) -> None:
        """Record the encoder under another name or checkpoint id, for the same weights (the caller checks that):
        as a newer bindsearch identifies them. One commit; the caller holds the writer lock."""
        if encoder.dim != self.encoder.dim or encoder.metric != self.encoder.metric:
            raise CatalogError(f"{encoder.describe()} is not the encoder of {self.directory}")
        self.table.update_field_metadata(
            {"path": "id", "metadata": {_ENCODER_KEY.decode(): json.dumps(asdict(encoder))}})
        self.encoder = encoder

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self.encoder.dim

    @property
    def version(self) -> int:
        """The LanceDB table version: it grows by one with every commit."""
        return self.table.version

    def fingerprint(self) -> str:
        """Changes with every commit, and between collections: what a cached FAISS index is checked against."""
        encoder = hashlib.sha256(json.dumps(asdict(self.encoder), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.collection_id}:{encoder}:v{self.version}"

    def version_of(self, fingerprint: str) -> int | None:
        """The version a fingerprint of this collection and encoder names; None for any other fingerprint."""
        prefix, _, version = fingerprint.rpartition(":v")
        if prefix != self.fingerprint().rpartition(":v")[0] or not version.isdigit():
            return None
        return int(version)

    def row_versions(self, modality: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n,) int64 ascending, written_in (n,) int64): the commit that last wrote each row."""
        table = self._query(_modality_filter(modality), ["id", "written_in"]).sort_by("id")
        return table["id"].to_numpy(), table["written_in"].to_numpy()

    def pinned(self) -> Catalog:
        """A read-only view of the current version: reads stay consistent while others write.

        Raises CatalogError when the collection was deleted and created again since this catalog was opened:
        its version numbers start again, and what was read of the old one (a FAISS index held in memory) must
        not be taken for the new one.
        """
        if not (Path(self.directory) / f"{TABLE}.lance").is_dir():  # lancedb.connect would make the folder anew
            raise CatalogError(f"the collection {self.directory} is gone (deleted or moved); put it back, or open "
                               "another")
        table = lancedb.connect(self.directory).open_table(TABLE)
        table.checkout(self.version)
        if (table.schema.metadata or {}).get(_COLLECTION_KEY, b"").decode() != self.collection_id:
            raise CatalogError(f"{self.directory} was deleted and created again since it was opened; open it again "
                               "(restart bindsearch serve)")
        return Catalog(self.directory, table, self.encoder, self.collection_id)

    def add(self, items: Sequence[Item], vectors: np.ndarray) -> np.ndarray:
        """Add items with their vectors (n, dim) float32 in one commit; returns their ids (n,) int64."""
        vectors = self._check_vectors(vectors, len(items))
        if not items:
            return np.empty(0, np.int64)
        _check_paths(items)
        keys = [(item.path, item.modality, item.start) for item in items]
        if len(set(keys)) != len(keys):
            raise CatalogError("the same (path, modality, window) appears twice in one add")
        existing = {(i.path, i.modality, i.start) for i in _flat(self.lookup_paths(path for path, _, _ in keys))}
        clash = [key for key in keys if key in existing]
        if clash:
            raise CatalogError(f"already catalogued: {clash[:3]}; delete those rows first or use upsert")
        items = self._assign_ids(items)
        ids = np.array([item.id for item in items], np.int64)
        if len(np.unique(ids)) != len(ids) or self._any_ids(ids):
            raise CatalogError("ids must be new and unique; allocate them from next_id() or leave them None")
        self._add_window_columns()
        self.table.add(self._arrow(items, vectors))
        return ids

    def upsert(self, items: Sequence[Item], vectors: np.ndarray, delete: Iterable[int] = ()) -> None:
        """Replace the rows whose id exists, insert the rest and delete the rows with ids in `delete`, in one
        commit: re-indexed files keep their ids, and a file that lost windows loses their rows in the same step."""
        vectors = self._check_vectors(vectors, len(items))
        if not items:
            return
        _check_paths(items)
        if any(item.id is None for item in items):
            raise CatalogError("upsert needs ids; use add for new items")
        self._add_window_columns()
        data = self._arrow(items, vectors)
        merge = self.table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
        gone = np.setdiff1d(np.fromiter(delete, np.int64), [item.id for item in items])
        if len(gone):
            self._keep_next_id(gone)
            merge = merge.when_not_matched_by_source_delete(_in("id", gone))
        merge.execute(data)

    def touch(self, mtimes: dict[int, float]) -> None:
        """Record new modification times for rows whose content is unchanged (one commit; vectors untouched).

        A file copied or checked out again has a new mtime and the same bytes: once its hash has said so, the
        next run need not hash it again.
        """
        if mtimes:
            data = pa.table({"id": pa.array(list(mtimes), pa.int64()), "mtime": pa.array(list(mtimes.values()),
                                                                                         pa.float64())})
            self.table.merge_insert("id").when_matched_update_all().execute(data)

    def delete(self, ids: Iterable[int]) -> None:
        """Delete the rows with these ids (unknown ids are ignored) in one commit."""
        ids = np.unique(np.fromiter(ids, np.int64))
        if len(ids):
            self._keep_next_id(ids)
            self.table.delete(_in("id", ids))

    def get(self, ids: Iterable[int]) -> dict[int, Item]:
        """The items with these ids (absent ones left out), keyed by id."""
        ids = np.unique(np.fromiter(ids, np.int64))
        found: dict[int, Item] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            rows = self._query(_in("id", ids[start : start + _IN_CHUNK]), self._item_columns).to_pylist()
            found.update((row["id"], Item(**row)) for row in rows)
        return found

    def get_vectors(self, ids: Sequence[int]) -> np.ndarray:
        """Vectors (n, dim) float32 of ids, in the order given; KeyError names the first id not catalogued."""
        ids = np.asarray(ids, np.int64)
        unique = np.unique(ids)
        out = np.empty((len(unique), self.dim), np.float32)
        seen = np.zeros(len(unique), bool)
        for start in range(0, len(unique), _IN_CHUNK):
            table = self._query(_in("id", unique[start : start + _IN_CHUNK]), ["id", "vector"])
            rows = np.searchsorted(unique, table["id"].to_numpy())
            out[rows] = _vectors(table["vector"], self.dim)
            seen[rows] = True
        if not seen.all():
            raise KeyError(f"id {int(unique[~seen][0])} is not in the catalog")
        return out[np.searchsorted(unique, ids)]

    def lookup_paths(self, paths: Iterable[str]) -> dict[str, list[Item]]:
        """The items catalogued under each of these absolute paths (usually one; one per modality, or one per window
        of a long file, in order), keyed by path."""
        paths = sorted(set(paths))
        found: dict[str, list[Item]] = {}
        if len(paths) > _IN_CHUNK and 4 * len(paths) >= len(self):
            # Most of the catalog asked for (`index` over a whole library): one scan beats a query per chunk,
            # 0.17 s against 0.7 s at 18,000 files.
            wanted = set(paths)
            rows = [row for table in self._scan(None, self._item_columns, 10_000) for row in table.to_pylist()
                    if row["path"] in wanted]
        else:
            rows = [row for start in range(0, len(paths), _IN_CHUNK)
                    for row in self._query(_in("path", paths[start : start + _IN_CHUNK]), self._item_columns)
                    .to_pylist()]
        for row in sorted(rows, key=lambda r: (r["path"], r["modality"], r.get("start") or 0.0)):
            found.setdefault(row["path"], []).append(Item(**row))
        return found

    def with_content(self, size: int, hashes: Sequence[str]) -> list[Item]:
        """The items of files of this size whose content hash is one of `hashes`: copies of one file's bytes."""
        table = self._query(f"size = {int(size)} AND {_in('content_hash', list(hashes))}", self._item_columns)
        return [Item(**row) for row in table.to_pylist()]

    def paths_under(self, under: Sequence[str]) -> set[str]:
        """The paths of the files at or below `under` (each once, whatever its modalities and windows)."""
        return set(pc.unique(self._query(_under_filter(under), ["path"])["path"]).to_pylist())

    def with_sizes(self, sizes: Iterable[int]) -> list[Item]:
        """The items of files of these sizes (bytes)."""
        sizes = sorted(set(map(int, sizes)))
        return [Item(**row) for start in range(0, len(sizes), _IN_CHUNK)
                for row in self._query(_in("size", sizes[start : start + _IN_CHUNK]), self._item_columns).to_pylist()]

    def items(self, modality: str | None = None, batch_size: int = 10_000) -> Iterator[Item]:
        """Every item (of one modality), streamed without vectors."""
        for batch in self._scan(modality, self._item_columns, batch_size):
            yield from (Item(**row) for row in batch.to_pylist())

    def iter_vectors(
        self, modality: str | None = None, batch_size: int = 8192
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Stream (ids (n,) int64 ascending, vectors (n, dim) float32), n <= batch_size, from one version.

        Memory is one batch plus 8 bytes per row: each batch is a query for a range of ids. A plain scan
        would read ahead: ~1 GB resident for a 900k x 768 table, whatever the batch size.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        snapshot = self.pinned()
        ids = np.sort(snapshot._query(_modality_filter(modality), ["id"])["id"].to_numpy())
        for start in range(0, len(ids), batch_size):
            low, high = ids[start], ids[min(start + batch_size, len(ids)) - 1]
            where = " AND ".join(filter(None, [f"id >= {low} AND id <= {high}", _modality_filter(modality)]))
            table = snapshot._query(where, ["id", "vector"]).sort_by("id")
            yield table["id"].to_numpy(), _vectors(table["vector"], self.dim)

    def count(self, modality: str | None = None, under: Sequence[str] = ()) -> int:
        """Number of items (of one modality; with `under`, only those at or below these absolute paths)."""
        return self.table.count_rows(_where(_modality_filter(modality), _under_filter(under)))

    def count_files(self, modality: str, under: Sequence[str] = ()) -> int:
        """Number of files of one modality (at or below the paths `under`): the windows of a long file count once."""
        if not self._has_windows():
            return self.count(modality, under)
        where = _where(_modality_filter(modality), _under_filter(under))
        whole = self.table.count_rows(f"{_WINDOW_COLUMNS[0]} IS NULL AND {where}")
        cut = self._query(f"{_WINDOW_COLUMNS[0]} IS NOT NULL AND {where}", ["path"])["path"]
        return whole + len(pc.unique(cut))

    def vectors_under(self, under: Sequence[str], modality: str) -> tuple[np.ndarray, np.ndarray]:
        """(ids (n,) int64, vectors (n, dim) float32) of one modality's items at or below these absolute paths."""
        table = self._query(_where(_modality_filter(modality), _under_filter(under)), ["id", "vector"])
        return table["id"].to_numpy(), _vectors(table["vector"], self.dim)

    def folders(self) -> set[str]:
        """Every folder that holds an indexed file, and the folders above them."""
        out: set[str] = set()
        for path in pc.unique(self._query(None, ["path"])["path"]).to_pylist():
            folder = os.path.dirname(path)
            while folder not in out:
                out.add(folder)
                folder = os.path.dirname(folder)
        return out

    def paths_with_hash(self, prefix: str) -> list[tuple[str, str]]:
        """(path, modality) of the files some row of which has a content hash starting with `prefix`, sorted."""
        table = self._query(f"starts_with(content_hash, {_sql_string(prefix)})", ["path", "modality"])
        return sorted(set(zip(table["path"].to_pylist(), table["modality"].to_pylist(), strict=True)))

    def count_windows(self) -> int:
        """Number of items that are windows of a longer file."""
        return self.table.count_rows(f"{_WINDOW_COLUMNS[0]} IS NOT NULL") if self._has_windows() else 0

    def modalities(self) -> list[str]:
        """The modalities present, sorted."""
        column = self._query(None, ["modality"])["modality"]
        return sorted(m for m in pc.unique(column).to_pylist() if m is not None)

    def next_id(self) -> int:
        """The first id `add` would allocate: one more than the largest id present or ever deleted (0 when none
        was): an id never names another file later (`serve`'s pages link files by id)."""
        largest = pc.max(self._query(None, ["id"])["id"]).as_py()
        deleted = int((self.table.schema.field("id").metadata or {}).get(_NEXT_ID_KEY, 0))
        return max(0 if largest is None else largest + 1, deleted)

    def _keep_next_id(self, gone: np.ndarray) -> None:
        """Before the rows `gone` are deleted: where the largest id is among them, record the next id on the `id`
        field (a commit, only then) for `next_id`."""
        if len(gone) and (upcoming := self.next_id()) - 1 <= int(gone.max()):
            self.table.update_field_metadata({"path": "id", "metadata": {_NEXT_ID_KEY.decode(): str(upcoming)}})

    def fragments(self) -> int:
        """How many data files the rows are spread over: every commit adds one, and every read and write visits
        them all (at 300, a path look-up takes 70 ms instead of 2), until `compact` merges them."""
        return int(self.table.stats()["fragment_stats"]["num_fragments"])

    def compact(self) -> None:
        """Merge the small files of many adds, drop deleted rows from the data files, bring the B-tree indexes on
        `id`, `path` and `content_hash` up to date (made the first time: a search's rows by id, an ingest's look-up
        by path and a served upload's by its hash then skip the scan), and delete the versions `tidy` deletes. Rows
        added since are found by scanning them alone."""
        from lancedb.index import BTree

        if self.count():
            indexed = {tuple(index.columns) for index in self.table.list_indices()}
            for column in _LOOKUP_COLUMNS:
                if (column,) not in indexed:
                    self.table.create_index(column, config=BTree())
        # Merged first, deleting nothing (LanceDB's own default deletes what was created a week ago, superseded or
        # not a second ago); then deleted, by a horizon read after the merge: LanceDB reads its clock as it deletes,
        # and a merge of hundreds of thousands of rows takes seconds.
        self.table.optimize(cleanup_older_than=_NEVER)
        if (horizon := self._superseded()) is not None:
            self.table.optimize(cleanup_older_than=horizon)

    def tidy(self) -> bool:
        """`compact` where it pays, after a run wrote: the table is spread over more than `COMPACT_FRAGMENTS`
        files, over a tenth of its stored rows are deleted ones (LanceDB only marks them), or its files written
        before the grace hold over three times the live data (after a large removal, or the same folders indexed
        again and again). True where it compacted.

        Compacting is what deletes superseded versions: LanceDB kept each for a week, so an hourly `index` held
        a week of rewrites, 27 times the live rows. A compaction rewrites the table, and the copy it leaves is
        deleted by a later one: three times the live data is what that copy and as much again of changes take."""
        versions = self.table.list_versions()
        latest = max(versions, key=lambda v: v["version"])["metadata"]
        live = int(latest.get("total_files_size", 0))
        deleted = int(latest.get("total_deletion_file_rows", 0))
        horizon = self._superseded(versions)
        if (self.fragments() > COMPACT_FRAGMENTS or deleted > 0.1 * int(latest.get("total_data_file_rows", 0))
                or horizon is not None and self._bytes_older_than(horizon) > 3 * live + _DISK_SLACK):
            self.compact()
            return True
        return False

    def _bytes_older_than(self, age: timedelta) -> int:
        """Bytes of the table's files written more than `age` ago: what deleting versions could free is among
        them. Files newer than that (the copy a compaction just wrote, versions inside their grace) are not, and
        counting them had every frequent run compact the table again."""
        cutoff = (datetime.now() - age).timestamp()
        folder = Path(self.directory) / f"{TABLE}.lance"
        return sum(stat.st_size for f in folder.rglob("*") if f.is_file() and (stat := f.stat()).st_mtime < cutoff)

    def _superseded(self, versions: list[dict] | None = None) -> timedelta | None:
        """The age past which every version was superseded at least `SUPERSEDED_GRACE` ago, as LanceDB's cleanup
        takes it (versions created before then go); None where none was. LanceDB dates a version by its creation,
        but a reader may have pinned it until the next one came: only then does the grace start."""
        stamps = sorted((v["version"], v["timestamp"]) for v in versions or self.table.list_versions())
        now = datetime.now(stamps[-1][1].tzinfo)
        settled = [stamp for _, stamp in stamps[1:] if now - stamp >= SUPERSEDED_GRACE]
        if not settled:
            return None
        return now - settled[-1] + _CLOCK_MARGIN

    def __len__(self) -> int:
        """Number of items."""
        return self.count()

    def __repr__(self) -> str:
        return f"Catalog({str(self.directory)!r}, encoder={self.encoder.name!r}, version={self.version})"

    def _check_vectors(self, vectors: np.ndarray, n: int) -> np.ndarray:
        vectors = np.asarray(vectors, np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            got = vectors.shape[1] if vectors.ndim == 2 else f"shape {vectors.shape}"
            raise ValueError(f"vectors: expected dimension {self.dim}, got {got}")
        if len(vectors) != n:
            raise ValueError(f"got {n} items for {len(vectors)} vectors")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinite values")
        return np.ascontiguousarray(vectors)

    def _assign_ids(self, items: Sequence[Item]) -> list[Item]:
        now = datetime.now(timezone.utc)
        next_id = 0
        if any(item.id is None for item in items):
            next_id = max([self.next_id(), *(item.id + 1 for item in items if item.id is not None)])
        out = []
        for item in items:
            if item.id is None:
                item = replace(item, id=next_id)
                next_id += 1
            out.append(item if item.added_at is not None else replace(item, added_at=now))
        return out

    def _has_windows(self) -> bool:
        if not self._windows:
            self._windows = _WINDOW_COLUMNS[0] in self.table.schema.names
        return self._windows

    @property
    def _item_columns(self) -> list[str]:
        return _ITEM_COLUMNS + (list(_WINDOW_COLUMNS) if self._has_windows() else [])

    def _add_window_columns(self) -> None:
        """Give a catalog written before windows existed their columns (one commit, made under the writer lock)."""
        if not self._has_windows():
            self.table.add_columns({name: "CAST(NULL AS DOUBLE)" for name in _WINDOW_COLUMNS})
            self._windows = True

    def _any_ids(self, ids: np.ndarray) -> bool:
        return any(self.table.count_rows(_in("id", ids[s : s + _IN_CHUNK])) for s in range(0, len(ids), _IN_CHUNK))

    def _arrow(self, items: Sequence[Item], vectors: np.ndarray) -> pa.Table:
        now = datetime.now(timezone.utc)
        columns = {
            "id": pa.array([item.id for item in items], pa.int64()),
            "path": pa.array([item.path for item in items], pa.string()),
            "modality": pa.array([item.modality for item in items], pa.string()),
            "size": pa.array([item.size for item in items], pa.int64()),
            "mtime": pa.array([item.mtime for item in items], pa.float64()),
            "content_hash": pa.array([item.content_hash for item in items], pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim),
            "added_at": pa.array([item.added_at or now for item in items], pa.timestamp("us", tz="UTC")),
            # The commit this write becomes (exact under the writer lock): lets an index catch up on changes.
            "written_in": pa.array(np.full(len(items), self.version + 1), pa.int64()),
            "start": pa.array([item.start for item in items], pa.float64()),
            "end": pa.array([item.end for item in items], pa.float64()),
        }
        return pa.table(columns, schema=_schema(self.dim))

    def _query(self, where: str | None, columns: list[str]) -> pa.Table:
        query = self.table.search().select(columns)
        if where:
            query = query.where(where)
        return query.to_arrow()

    def _scan(self, modality: str | None, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        query = self.table.search().select(columns)
        where = _modality_filter(modality)
        if where:
            query = query.where(where)
        yield from query.to_batches(batch_size)


_ITEM_COLUMNS = ["id", "path", "modality", "size", "mtime", "content_hash", "added_at"]
_WINDOW_COLUMNS = ("start", "end")
_LOOKUP_COLUMNS = ("id", "path", "content_hash")  # what rows are found by: B-tree indexes made by `compact`


def _schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.int64(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("modality", pa.string(), nullable=False),
            pa.field("size", pa.int64(), nullable=False),
            pa.field("mtime", pa.float64(), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dim), nullable=False),
            pa.field("added_at", pa.timestamp("us", tz="UTC"), nullable=False),
            pa.field("written_in", pa.int64(), nullable=False),
            # A window of a long file, in seconds from its start; null for a whole file. Added last, where
            # `add_columns` puts them in catalogs written before windows existed.
            pa.field("start", pa.float64(), nullable=True),
            pa.field("end", pa.float64(), nullable=True),
        ]
    )


_LEGACY_NAMES = _schema(1).names[: -len(_WINDOW_COLUMNS)]  # before windows: readable, and given them on first write


def _vectors(column: pa.Array | pa.ChunkedArray, dim: int) -> np.ndarray:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


def _check_paths(items: Sequence[Item]) -> None:
    relative = [item.path for item in items if not os.path.isabs(item.path)]
    if relative:
        raise CatalogError(f"catalog paths must be absolute, got {relative[0]!r}")


def _flat(groups: dict[str, list[Item]]) -> Iterator[Item]:
    for items in groups.values():
        yield from items


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: Sequence) -> str:
    if len(values) and isinstance(values[0], str):
        listed = ",".join(_sql_string(v) for v in values)
    else:
        listed = ",".join(str(int(v)) for v in values)
    return f"{column} IN ({listed})" if listed else "false"


def _modality_filter(modality: str | None) -> str | None:
    return None if modality is None else f"modality = {_sql_string(modality)}"


def _under_filter(under: Sequence[str]) -> str | None:
    """Rows whose path is one of `under` or lies below it (a folder), as SQL; None for no filter."""
    if not under:
        return None
    tests = []
    for path in sorted(set(under)):
        folder = path if path.endswith(os.sep) else path + os.sep
        tests.append(f"(path = {_sql_string(path)} OR starts_with(path, {_sql_string(folder)}))")
    return "(" + " OR ".join(tests) + ")"


def _where(*tests: str | None) -> str | None:
    return " AND ".join(t for t in tests if t) or None
