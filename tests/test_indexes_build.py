"""FAISS indexes built from a real catalog, per modality, and their on-disk cache."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from indexes import (
    Catalog,
    EncoderInfo,
    Item,
    VectorIndex,
    build_index,
    index_path,
    merge_topk,
    open_index,
    search_exact,
)

DIM = 24


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fill(catalog: Catalog, modality: str, vectors: np.ndarray, batch: str = "") -> np.ndarray:
    rows = [Item(f"/m/{modality}/{batch}{i}", modality, 1, 0.0, "h") for i in range(len(vectors))]
    return catalog.add(rows, vectors)


@pytest.fixture
def catalog(tmp_path: Path) -> Catalog:
    return Catalog.open(tmp_path / "collection", EncoderInfo("random:tiny", "seed0", DIM, "cosine"))


def exact(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return ids[np.argsort(-(queries @ vectors.T), axis=1)[:, :k]]


def test_one_exact_index_per_modality_matches_brute_force(catalog: Catalog) -> None:
    video, audio, queries = unit(700), unit(300, seed=1), unit(20, seed=2)
    video_ids, audio_ids = fill(catalog, "video", video), fill(catalog, "audio", audio)
    index = build_index(catalog, "video", batch_size=64)
    assert index.kind == "Flat" and len(index) == 700 and index.fingerprint == catalog.fingerprint()
    np.testing.assert_array_equal(index.search(queries, 10)[1], exact(video_ids, video, queries, 10))
    # all modalities: one index over everything equals merging the per-modality results
    everything = build_index(catalog, batch_size=100)
    merged = merge_topk([index.search(queries, 10), build_index(catalog, "audio").search(queries, 10)], 10)
    np.testing.assert_array_equal(everything.search(queries, 10)[1], merged[1])
    both = np.concatenate([video_ids, audio_ids])
    np.testing.assert_array_equal(merged[1], exact(both, np.concatenate([video, audio]), queries, 10))


def test_ivf_trains_on_a_streamed_sample(catalog: Catalog) -> None:
    vectors = unit(3000)
    ids = fill(catalog, "image", vectors)
    index = build_index(catalog, "image", "IVF32,Flat", batch_size=500, train_size=1500, nprobe=32)
    assert index.is_trained and len(index) == 3000 and index.nprobe == 32
    queries = unit(10, seed=3)
    np.testing.assert_array_equal(index.search(queries, 5)[1], exact(ids, vectors, queries, 5))


def test_a_lossy_index_is_rescored_with_the_catalog_vectors(catalog: Catalog) -> None:
    """PQ codes rank coarsely and score off the cosine; their candidates rescored with the stored vectors find the
    true neighbours with their exact scores, and an exact index is searched as it is."""
    rng = np.random.default_rng(5)
    centres = unit(40, seed=6)
    vectors = centres[rng.integers(40, size=4000)] + 0.3 * unit(4000, seed=7)
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    queries = vectors[rng.integers(4000, size=30)] + 0.05 * unit(30, seed=8)
    ids = fill(catalog, "image", vectors)
    truth = exact(ids, vectors, queries, 10)
    index = build_index(catalog, "image", "IVF16,PQ4x4", nprobe=16)
    assert index.lossy and not build_index(catalog, "image", "flat").lossy

    def recall(found: np.ndarray) -> float:
        return float(np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)]))

    coarse_scores, coarse = index.search(queries, 10)
    scores, found = search_exact(catalog, index, queries, 10)
    assert recall(found) >= 0.9 > recall(coarse) + 0.3
    np.testing.assert_allclose(scores, np.sum(catalog.get_vectors(found.ravel()).reshape(30, 10, DIM)
                                              * queries[:, None], axis=2), atol=1e-5)
    assert np.abs(coarse_scores - scores).max() > 0.05  # what merging them with exact scores would have mixed
    flat = build_index(catalog, "image", "flat")
    np.testing.assert_array_equal(search_exact(catalog, flat, queries, 10)[1], flat.search(queries, 10)[1])


def test_open_index_reuses_the_cache_until_the_catalog_changes(catalog: Catalog) -> None:
    fill(catalog, "video", unit(200))
    first = open_index(catalog, "video")
    path = index_path(catalog, "video")
    assert path.exists() and path.parent == catalog.directory / "indexes"
    written = path.stat().st_mtime_ns
    again = open_index(catalog, "video")
    assert path.stat().st_mtime_ns == written and again.fingerprint == first.fingerprint and len(again) == 200
    fill(catalog, "audio", unit(5))  # any commit makes every cached index stale
    rebuilt = open_index(catalog, "video")
    assert rebuilt.fingerprint == catalog.fingerprint() != first.fingerprint and len(rebuilt) == 200
    assert VectorIndex.load(path).fingerprint == catalog.fingerprint()
    assert open_index(catalog, "video", "HNSW16").kind == "HNSW16"  # another kind asked for: rebuilt


def test_a_damaged_cache_is_rebuilt(catalog: Catalog) -> None:
    fill(catalog, "video", unit(50))
    path = index_path(catalog, "video")
    open_index(catalog, "video")
    path.write_bytes(b"not an index")
    assert len(open_index(catalog, "video")) == 50


def test_an_empty_modality_builds_an_empty_index(catalog: Catalog) -> None:
    fill(catalog, "video", unit(5))
    index = build_index(catalog, "depth", "IVF16,Flat")
    scores, ids = index.search(unit(2), 3)
    assert len(index) == 0 and (ids == -1).all() and np.isneginf(scores).all()


def test_open_index_catches_up_in_place_on_small_changes(catalog: Catalog) -> None:
    vectors = unit(400)
    ids = fill(catalog, "video", vectors)
    open_index(catalog, "video", "HNSW16", ef_search=200)
    catalog.delete(ids[:10])
    fresh = unit(5, seed=9)
    catalog.upsert([Item(f"/m/video/{i}", "video", 2, 1.0, "new", id=int(i)) for i in ids[10:15]], fresh)
    extra = fill(catalog, "video", unit(20, seed=8), batch="later-")
    index = open_index(catalog, "video", "HNSW16")
    assert index.tombstones == 15  # removed and rewritten rows are tombstoned: the graph was not rebuilt
    assert len(index) == 410 and index.fingerprint == catalog.fingerprint()
    live_ids = catalog.row_versions("video")[0]
    live = catalog.get_vectors(live_ids)
    found = index.search(fresh, 1)[1][:, 0]
    assert found.tolist() == ids[10:15].tolist()  # the rewritten vectors are found under their ids
    queries = unit(30, seed=4)
    hits = index.search(queries, 10)[1]
    truth = exact(live_ids, live, queries, 10)
    assert np.mean([len(set(h) & set(t)) / 10 for h, t in zip(hits, truth, strict=True)]) >= 0.95
    assert not np.isin(hits, ids[:10]).any() and np.isin(extra, index.ids()).all()


def test_a_cached_hnsw_index_is_searched_as_asked_now(catalog: Catalog) -> None:
    """A cache saved with another efSearch (an earlier version's default) is searched with today's, or the one
    asked for."""
    from indexes.vector_index import EF_SEARCH

    fill(catalog, "video", unit(300))
    assert open_index(catalog, "video", "HNSW16", ef_search=16).ef_search == 16
    assert open_index(catalog, "video", "HNSW16").ef_search == EF_SEARCH
    assert open_index(catalog, "video", "HNSW16", ef_search=64).ef_search == 64


def test_a_cache_that_cannot_be_saved_leaves_the_search_to_memory(catalog: Catalog, monkeypatch) -> None:
    """A read-only copy of a collection, or a full disk: the index is built and searched, and a warning says the
    cache was not saved (before, the search failed on the write)."""
    import errno

    vectors = unit(200)
    ids = fill(catalog, "image", vectors)

    def read_only(self, path, fingerprint=None):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(VectorIndex, "save", read_only)
    with pytest.warns(UserWarning, match=r"could not be saved \(Read-only file system\)"):
        index = open_index(catalog, "image")
    np.testing.assert_array_equal(index.search(vectors[:5], 1)[1][:, 0], ids[:5])
    assert not index_path(catalog, "image").exists()


def test_open_index_catch_up_is_exact_for_flat(catalog: Catalog) -> None:
    ids = fill(catalog, "audio", unit(300))
    open_index(catalog, "audio", "flat")
    catalog.delete(ids[::3])
    catalog.upsert([Item("/m/audio/1", "audio", 1, 0.0, "h", id=int(ids[1]))], unit(1, seed=5))
    fill(catalog, "depth", unit(10, seed=6))  # another modality's rows do not concern this index
    index = open_index(catalog, "audio", "flat")
    live_ids = catalog.row_versions("audio")[0]
    queries = unit(20, seed=7)
    np.testing.assert_array_equal(
        index.search(queries, 10)[1], exact(live_ids, catalog.get_vectors(live_ids), queries, 10)
    )
    assert VectorIndex.load(index_path(catalog, "audio")).fingerprint == catalog.fingerprint()


def test_one_commit_since_the_cache_is_caught_up(catalog: Catalog) -> None:
    """A file embedded again, one upsert and nothing else since the cache: the rows written in the very next
    version are the change (a test of two commits would pass with one missed)."""
    ids = fill(catalog, "audio", unit(50))
    open_index(catalog, "audio", "flat")
    moved = unit(1, seed=9)
    catalog.upsert([Item("/m/audio/7", "audio", 1, 0.0, "h2", id=int(ids[7]))], moved)
    index = open_index(catalog, "audio", "flat")
    scores, found = index.search(moved, 1)
    assert found[0, 0] == ids[7] and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_a_big_change_rebuilds_instead(catalog: Catalog) -> None:
    ids = fill(catalog, "video", unit(200))
    open_index(catalog, "video", "HNSW16")
    catalog.delete(ids[:5])
    assert open_index(catalog, "video", "HNSW16", max_change=0.0).tombstones == 0
    assert len(open_index(catalog, "video", "HNSW16")) == 195


def test_copies_in_a_cached_graph_index_are_all_found_after_catching_up(catalog: Catalog) -> None:
    """30 rows of one vector (one photo under 30 names) in an HNSW index: stored once, all found; a row rewritten
    with the same vector takes its place back (no tombstone), deleted copies leave, and the cache keeps it all."""
    vectors = unit(400)
    vectors[:30] = vectors[0]
    ids = fill(catalog, "video", vectors)
    assert open_index(catalog, "video", "HNSW16").search(vectors[0], 40)[1][0, :30].tolist() == sorted(ids[:30])
    catalog.upsert([Item("/m/video/3", "video", 2, 1.0, "touched", id=int(ids[3]))], vectors[3:4])
    catalog.delete(ids[20:30])
    index = open_index(catalog, "video", "HNSW16")
    assert index.tombstones == 0 and len(index) == 390
    assert index.search(vectors[0], 25)[1][0, :20].tolist() == sorted(ids[:20])
    reopened = open_index(catalog, "video", "HNSW16")
    assert reopened.search(vectors[0], 25)[1][0, :20].tolist() == sorted(ids[:20])


def test_auto_keeps_the_cached_kind_near_its_threshold(catalog: Catalog, monkeypatch) -> None:
    """A collection going back and forth over the exact/HNSW threshold (500 rows here) keeps its index until it is
    10 % past it: each crossing rebuilt the HNSW graph (minutes at the real 50,000 rows)."""
    monkeypatch.setattr("indexes.kinds.EXACT_BELOW", 500)
    ids = fill(catalog, "video", unit(520))
    assert open_index(catalog, "video").kind == "HNSW32"
    catalog.delete(ids[:30])  # 490 rows: Flat if chosen afresh
    index = open_index(catalog, "video")
    assert index.kind == "HNSW32" and index.tombstones == 30 and len(index) == 490
    catalog.delete(ids[30:80])  # 440 rows: more than 10 % below
    assert open_index(catalog, "video").kind == "Flat"
    more = fill(catalog, "video", unit(80, seed=3), batch="more-")  # 520 rows: within 10 % above
    assert open_index(catalog, "video").kind == "Flat"
    fill(catalog, "video", unit(40, seed=4), batch="most-")  # 560 rows
    index = open_index(catalog, "video")
    assert index.kind == "HNSW32" and len(index) == 560
    assert index.search(unit(80, seed=3)[7], 1)[1][0, 0] == more[7]


def test_a_cache_saved_before_copies_were_stored_once_is_merged_and_saved_again(catalog: Catalog, monkeypatch) -> None:
    vectors = unit(400)
    vectors[:40] = vectors[0]
    ids = fill(catalog, "video", vectors)
    with monkeypatch.context() as patch:  # an earlier version: every copy its own position, sidecar format 1
        patch.setattr(VectorIndex, "_storage", lambda self: None)
        open_index(catalog, "video", "HNSW16")
    sidecar = index_path(catalog, "video").with_name("video.faiss.json")
    meta = json.loads(sidecar.read_text())
    del meta["copies"]
    sidecar.write_text(json.dumps({**meta, "format": 1}))
    index = open_index(catalog, "video", "HNSW16")
    assert index.search(vectors[0], 45)[1][0, :40].tolist() == sorted(ids[:40]) and index._cpu.ntotal == 361
    assert json.loads(sidecar.read_text())["format"] == 2  # saved merged: the next process loads it as it is
    assert not VectorIndex.load(index_path(catalog, "video")).upgraded
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "format": 1}))
    monkeypatch.setattr(VectorIndex, "save", lambda *args, **kwargs: (_ for _ in ()).throw(OSError(30, "read-only")))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a read-only collection: searched from its cache, nothing to warn of
        assert open_index(catalog, "video", "HNSW16").search(vectors[0], 45)[1][0, :40].tolist() == sorted(ids[:40])
