"""The LanceDB catalog: round trips, encoder identity, bounded streaming and crash safety, on a real table."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from indexes import Catalog, CatalogError, EncoderInfo, EncoderMismatchError, Item

DIM = 16
ENCODER = EncoderInfo("random:tiny", "seed0", DIM, "cosine")


def unit(n: int, seed: int = 0) -> np.ndarray:
    """(n, DIM) float32 unit vectors."""
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def items(n: int, modality: str = "video", start: int = 0, root: str = "/data") -> list[Item]:
    return [
        Item(f"{root}/{modality}/{i}.bin", modality, size=100 + i, mtime=1e9 + i, content_hash=f"h{i}")
        for i in range(start, start + n)
    ]


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.open(tmp_path / "collection", ENCODER)


def test_round_trip_through_a_reopened_catalog(tmp_path: Path, catalog: Catalog) -> None:
    video, audio = unit(5), unit(3, seed=1)
    video_ids = catalog.add(items(5, "video"), video)
    audio_ids = catalog.add(items(3, "audio"), audio)
    assert video_ids.tolist() == [0, 1, 2, 3, 4] and audio_ids.tolist() == [5, 6, 7]

    again = Catalog.open(tmp_path / "collection", ENCODER)
    assert len(again) == 8 and again.count("video") == 5 and again.count("audio") == 3 and again.count("depth") == 0
    assert again.modalities() == ["audio", "video"]
    assert again.next_id() == 8
    got = again.get([6, 1, 999])
    assert sorted(got) == [1, 6]
    assert got[1].path == "/data/video/1.bin" and got[1].size == 101 and got[1].mtime == 1e9 + 1
    assert got[6].modality == "audio" and got[6].content_hash == "h1"
    assert got[1].added_at is not None and got[1].added_at.tzinfo is not None
    np.testing.assert_array_equal(again.get_vectors([6, 0, 6]), np.stack([audio[1], video[0], audio[1]]))
    with pytest.raises(KeyError, match="999"):
        again.get_vectors([1, 999])
    found = again.lookup_paths(["/data/video/2.bin", "/data/audio/0.bin", "/nowhere"])
    assert {path: [item.id for item in rows] for path, rows in found.items()} == {
        "/data/video/2.bin": [2],
        "/data/audio/0.bin": [5],
    }
    assert [item.id for item in again.items("audio")] == [5, 6, 7]



def test_an_id_is_never_given_again_after_its_row_is_deleted(tmp_path: Path, catalog: Catalog) -> None:
    """next_id was one more than the largest id present: a deleted newest file's id went to the next file, and a
    page `serve` had shown linked the new file under the old hit."""
    catalog.add(items(3), unit(3))
    catalog.delete([2])
    assert catalog.add(items(1, "audio"), unit(1)).tolist() == [3]
    catalog.upsert([replace(items(1)[0], id=0)], unit(1, seed=1), delete=[3])  # item 0 again; the audio row goes
    catalog.delete([0])  # not the largest: nothing to record
    catalog.compact()
    again = Catalog.open(tmp_path / "collection", ENCODER)
    assert sorted(item.id for item in again.items()) == [1] and again.next_id() == 4
    assert again.add(items(1, "depth"), unit(1)).tolist() == [4]

def test_iter_vectors_streams_bounded_batches(catalog: Catalog) -> None:
    vectors = unit(50)
    catalog.add(items(30, "video"), vectors[:30])
    catalog.add(items(20, "audio"), vectors[30:])
    batches = list(catalog.iter_vectors(batch_size=7))
    assert all(len(ids) <= 7 and v.shape == (len(ids), DIM) and v.dtype == np.float32 for ids, v in batches)
    assert len(batches) >= 8  # 50 rows in batches of at most 7
    ids = np.concatenate([b[0] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches])[np.argsort(ids)], vectors)
    audio = list(catalog.iter_vectors("audio", batch_size=6))
    assert np.concatenate([b[0] for b in audio]).tolist() == list(range(30, 50))
    with pytest.raises(ValueError, match="batch_size"):
        next(catalog.iter_vectors(batch_size=0))


def test_opening_with_another_encoder_is_refused(tmp_path: Path, catalog: Catalog) -> None:
    catalog.add(items(2), unit(2))
    other = EncoderInfo("openclip:ViT-B-32/laion2b_s34b_b79k", "laion2b", 512, "cosine")
    with pytest.raises(EncoderMismatchError, match=r"built with encoder random:tiny \(checkpoint seed0, 16-d") as info:
        Catalog.open(tmp_path / "collection", other)
    assert "openclip:ViT-B-32" in str(info.value) and "new collection" in str(info.value)
    with pytest.raises(EncoderMismatchError, match="checkpoint seed0"):
        Catalog.open(tmp_path / "collection", EncoderInfo("random:tiny", "seed1", DIM))
    assert Catalog.open(tmp_path / "collection").encoder == ENCODER  # no encoder: take the stored one
    with pytest.raises(CatalogError, match="no collection"):
        Catalog.open(tmp_path / "empty")


def test_bad_rows_are_refused_without_a_commit(catalog: Catalog) -> None:
    catalog.add(items(3), unit(3))
    version = catalog.version
    with pytest.raises(ValueError, match="expected dimension 16, got 8"):
        catalog.add(items(1, start=5), np.ones((1, 8), np.float32))
    with pytest.raises(CatalogError, match="absolute"):
        catalog.add([Item("relative/x.mp4", "video", 1, 0.0, "h")], unit(1))
    with pytest.raises(CatalogError, match="already catalogued"):
        catalog.add(items(1, start=2), unit(1))
    with pytest.raises(CatalogError, match="ids must be new"):
        catalog.add([Item("/new.mp4", "video", 1, 0.0, "h", id=1)], unit(1))
    with pytest.raises(ValueError, match="2 items for 1 vectors"):
        catalog.add(items(2, start=10), unit(1))
    assert catalog.version == version and len(catalog) == 3


def test_each_write_is_one_commit_and_changes_the_fingerprint(catalog: Catalog) -> None:
    start, fingerprint = catalog.version, catalog.fingerprint()
    catalog.add(items(2000), unit(2000))
    assert catalog.version == start + 1 and catalog.fingerprint() != fingerprint
    catalog.delete(range(0, 2000, 2))
    assert catalog.version == start + 2 and len(catalog) == 1000 and catalog.count("video") == 1000
    catalog.delete([123_456])
    assert len(catalog) == 1000
    assert catalog.next_id() == 2000


def test_upsert_replaces_a_row_in_place(catalog: Catalog) -> None:
    catalog.add(items(3), unit(3))
    changed = Item("/data/video/1.bin", "video", size=5, mtime=2e9, content_hash="new", id=1)
    fresh = np.zeros((2, DIM), np.float32)
    fresh[:, 0] = 1.0
    catalog.upsert([changed, Item("/data/video/9.bin", "video", 1, 1.0, "x", id=9)], fresh)
    assert len(catalog) == 4 and catalog.get([1])[1].content_hash == "new"
    np.testing.assert_array_equal(catalog.get_vectors([1, 9]), fresh)


def test_touch_records_new_mtimes_and_nothing_else_in_one_commit(catalog: Catalog) -> None:
    vectors = unit(3)
    catalog.add(items(3), vectors)
    before, written = catalog.version, catalog.row_versions()
    catalog.touch({0: 5.0, 2: 7.0})
    assert catalog.version == before + 1
    assert {i: item.mtime for i, item in catalog.get([0, 1, 2]).items()} == {0: 5.0, 1: 1e9 + 1, 2: 7.0}
    np.testing.assert_array_equal(catalog.get_vectors([0, 1, 2]), vectors)
    for now, then in zip(catalog.row_versions(), written, strict=True):  # the FAISS cache sees no changed row
        np.testing.assert_array_equal(now, then)
    catalog.touch({})
    assert catalog.version == before + 1  # nothing to record: no commit


def test_compact_merges_commits_and_indexes_ids_paths_and_hashes_rows_added_after_included(catalog: Catalog) -> None:
    for start in range(0, 12, 3):
        catalog.add(items(3, start=start), unit(3, seed=start))
    assert catalog.fragments() == 4
    catalog.compact()
    assert catalog.fragments() == 1
    assert {tuple(i.columns) for i in catalog.table.list_indices()} == {("id",), ("path",), ("content_hash",)}
    catalog.add(items(2, start=12), unit(2, seed=12))  # after the index was made: found by a scan of its own
    everything = {i.id: i for i in catalog.items()}
    assert sorted(everything) == list(range(14))
    assert catalog.get([0, 7, 13]) == {i: everything[i] for i in (0, 7, 13)}
    assert [i.id for i in catalog.lookup_paths(["/data/video/5.bin", "/data/video/13.bin"])["/data/video/13.bin"]] \
        == [13]
    np.testing.assert_array_equal(catalog.get_vectors([13, 5]), np.concatenate([unit(2, seed=12)[1:],
                                                                                unit(3, seed=3)[2:]]))
    # A served upload's copies, found by size and hash (one hash of a file of another size is no copy).
    assert [i.id for i in catalog.with_content(105, ["h5", "partial:h5"])] == [5]
    assert [i.id for i in catalog.with_content(113, ["h13"])] == [13] and catalog.with_content(106, ["h5"]) == []
    catalog.compact()  # the indexes exist: brought up to date, not made again
    assert len(catalog.table.list_indices()) == 3 and catalog.get([13]) == {13: everything[13]}


def _disk(directory: Path) -> tuple[int, int]:
    """(bytes, files) of a catalog's folder."""
    files = [f for f in directory.rglob("*") if f.is_file()]
    return sum(f.stat().st_size for f in files), len(files)


def test_tidy_deletes_versions_superseded_past_the_grace_and_keeps_what_a_reader_may_hold(
        tmp_path: Path, catalog: Catalog, monkeypatch) -> None:
    import indexes.catalog

    for start in range(0, 60, 3):  # an hourly `index` adding and rewriting a few files
        catalog.add(items(3, start=start), unit(3, seed=start))
        catalog.upsert([catalog.get([start])[start]], unit(1, seed=99))
    reader = catalog.pinned()  # a served collection's search, under way while the next commit comes
    catalog.add(items(1, start=60), unit(1, seed=60))
    versions = len(catalog.table.list_versions())
    assert catalog.tidy()  # in 40 pieces: compacted, but every version is younger than the grace, so all kept
    assert len(list(reader.items())) == 60 and len(catalog.table.list_versions()) > versions > 40
    assert not catalog.tidy()  # in one piece now, nothing to delete yet: left alone

    monkeypatch.setattr(indexes.catalog, "SUPERSEDED_GRACE", timedelta(0))
    monkeypatch.setattr(indexes.catalog, "_CLOCK_MARGIN", timedelta(0))
    before = _disk(tmp_path / "collection")
    catalog.compact()
    after = _disk(tmp_path / "collection")
    assert len(catalog.table.list_versions()) <= 3 and after[1] < before[1] / 4 and after[0] < before[0] / 4
    assert len(catalog) == 61 and catalog.get_vectors([0]).tolist() == unit(1, seed=99).tolist()
    # A large removal: the rows leave the data files at once, and the disk once the version is past the grace.
    monkeypatch.setattr(indexes.catalog, "SUPERSEDED_GRACE", timedelta(seconds=0.5))
    monkeypatch.setattr(indexes.catalog, "_DISK_SLACK", 0)  # kilobytes of rows here, not gigabytes
    catalog.delete(range(50))
    assert catalog.tidy() and _disk(tmp_path / "collection")[0] > after[0]  # the version before, kept a while
    time.sleep(0.6)
    assert catalog.tidy()  # a version past the grace held over twice the live data: deleted
    assert len(catalog) == 11 and _disk(tmp_path / "collection")[0] < after[0] / 2
    assert not catalog.tidy()


def test_tidy_after_a_first_run_of_one_commit(catalog: Catalog, monkeypatch) -> None:
    """A collection made by one quick run (created, then one add), changed again after the grace: nothing is old
    enough to delete yet, and tidy said so with 'max() arg is an empty sequence' after the run had committed."""
    import indexes.catalog

    monkeypatch.setattr(indexes.catalog, "SUPERSEDED_GRACE", timedelta(seconds=0.3))
    catalog.add(items(2), unit(2))
    time.sleep(0.4)
    catalog.add(items(1, start=2), unit(1, seed=2))
    assert not catalog.tidy() and len(catalog) == 3


def test_tidy_gives_back_the_copies_a_burst_of_rewrites_left(tmp_path: Path, catalog: Catalog, monkeypatch) -> None:
    """A folder removed and indexed again three times within the grace left three copies of its rows, which no
    later run deleted: none of them was larger than the live table, the only test there was."""
    import indexes.catalog

    monkeypatch.setattr(indexes.catalog, "SUPERSEDED_GRACE", timedelta(seconds=0.3))
    monkeypatch.setattr(indexes.catalog, "_CLOCK_MARGIN", timedelta(0))
    monkeypatch.setattr(indexes.catalog, "_DISK_SLACK", 0)
    catalog.add(items(40), unit(40))
    for _ in range(3):
        catalog.delete(range(catalog.next_id() - 20, catalog.next_id()))
        catalog.add(items(20, start=20), unit(20, seed=5))
    copies = list((tmp_path / "collection" / "items.lance" / "data").iterdir())  # the rows the burst wrote
    time.sleep(0.4)
    catalog.add(items(1, start=40), unit(1, seed=40))  # an ordinary run, past the grace
    assert catalog.tidy() and len(catalog) == 41
    for i in range(41, 44):  # runs soon after: the copy the compaction left is in its grace, nothing to free yet
        catalog.add(items(1, start=i), unit(1, seed=i))
        assert not catalog.tidy()  # (counting its bytes had each run rewrite the table again)
    time.sleep(0.4)
    catalog.tidy()
    assert len(copies) == 4 and not any(f.exists() for f in copies)


def test_given_ids_and_times_are_kept_and_quotes_survive(catalog: Catalog) -> None:
    when = datetime(2024, 5, 1, tzinfo=timezone.utc)
    odd = Item("/data/it's here/a.wav", "audio", 1, 1.0, "q", id=40, added_at=when)
    assert catalog.add([odd, *items(1)], unit(2)).tolist() == [40, 41]
    assert catalog.lookup_paths([odd.path])[odd.path][0].added_at == when


def test_a_pinned_view_does_not_move(catalog: Catalog) -> None:
    catalog.add(items(4), unit(4))
    pinned = catalog.pinned()
    catalog.add(items(4, start=4), unit(4, seed=1))
    assert len(pinned) == 4 and len(catalog) == 8
    assert pinned.fingerprint() != catalog.fingerprint()


_WRITER = """
import sys, numpy as np
from indexes import Catalog, EncoderInfo, Item
catalog = Catalog.open(sys.argv[1], EncoderInfo("random:tiny", "seed0", 16, "cosine"))
rng = np.random.default_rng(0)
for batch in range(10_000):
    rows = [Item(f"/f/{batch}/{i}", "video", 1, 0.0, "h") for i in range(500)]
    catalog.add(rows, rng.standard_normal((500, 16)).astype(np.float32))
    print(batch, flush=True)
"""


def test_a_writer_killed_mid_write_leaves_the_last_commit_readable(tmp_path: Path) -> None:
    directory = tmp_path / "collection"
    root = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(directory)], cwd=root, stdout=subprocess.PIPE, text=True
    )
    try:
        for _ in range(3):  # let a few commits land, then kill it while it writes the next
            assert writer.stdout.readline(), "the writer died before committing"
        time.sleep(0.05)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    catalog = Catalog.open(directory, ENCODER)
    count = len(catalog)
    assert count >= 1500 and count % 500 == 0
    assert sum(len(ids) for ids, _ in catalog.iter_vectors(batch_size=1000)) == count
    catalog.add(items(1), unit(1))  # and it stays writable
    assert len(catalog) == count + 1
