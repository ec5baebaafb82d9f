"""Identical vectors in a graph index (`indexes.copies`): stored once, every id found, against brute force."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexes import VectorIndex
from indexes.copies import CodeTable, distinct_rows, hash_rows

DIM = 32

pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def unit(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ranked(ids: np.ndarray, rows: np.ndarray, pool: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every id by the inner product of its row of pool with query, best first, ties by id: scores (n,), ids (n,).
    Copies get one score: BLAS may round one row apart from its copy elsewhere in a matrix."""
    scores = (pool @ query)[rows]
    order = np.lexsort((ids, -scores))
    return scores[order], ids[order]


def test_every_copy_of_a_vector_is_found_in_id_order() -> None:
    """300 copies of one vector among 5,000: a plain HNSW graph returned some of them at k=400 and tangled the
    search of the others' neighbours; each distinct vector is now stored once."""
    rng = np.random.default_rng(1)
    vectors = unit(5000)
    copies = rng.choice(5000, 300, replace=False)
    vectors[copies] = vectors[copies[0]]
    ids = rng.permutation(5000).astype(np.int64) + 10
    index = VectorIndex(DIM, "HNSW32")
    index.add(ids, vectors)
    assert len(index) == 5000 and index._cpu.ntotal == 4701
    scores, found = index.search(vectors[copies[0]], 400)
    np.testing.assert_array_equal(found[0, :300], np.sort(ids[copies]))
    np.testing.assert_allclose(scores[0, :300], 1.0, atol=1e-5)
    assert len(set(found[0].tolist())) == 400 and scores[0, 299] > scores[0, 300]
    others = np.setdiff1d(np.arange(5000), copies)
    assert (index.search(vectors[others[:200]], 1)[1][:, 0] == ids[others[:200]]).all()


def test_a_copy_of_a_removed_vector_brings_its_tombstone_back() -> None:
    vectors = unit(200)
    index = VectorIndex(DIM, "HNSW32")
    index.add(np.arange(200), vectors)
    index.remove([5])
    assert index.tombstones == 1
    index.add([900], vectors[5:6])
    assert index.tombstones == 0 and index._cpu.ntotal == 200
    assert index.search(vectors[5], 2)[1][0].tolist()[0] == 900
    index.remove([900])
    index.add([5], vectors[5:6])  # the id the graph's map holds there, back alone
    assert index.tombstones == 0 and not index._copies
    assert index.search(vectors[5], 1)[1][0, 0] == 5


def test_an_id_that_leaves_its_copies_and_comes_back_with_another_vector() -> None:
    vectors = unit(100)
    index = VectorIndex(DIM, "HNSW32")
    index.add([1, 2, 3], vectors[[7, 7, 7]])
    index.add(np.arange(10, 100), vectors[10:])
    index.remove([1])
    index.add([1], vectors[50:51])  # a copy of id 50's vector now
    scores, found = index.search(vectors[7], 3)
    assert found[0, :2].tolist() == [2, 3] and found[0, 2] not in (1, 2, 3)
    assert index.search(vectors[50], 2)[1][0].tolist() == [1, 50]
    index.remove([2, 3])
    assert index.tombstones == 1 and 2 not in index.search(vectors[7], 5)[1]


@pytest.mark.parametrize("seed", range(4))
def test_random_adds_and_removes_of_copies_match_brute_force(tmp_path, seed: int) -> None:
    """Ids drawn onto 40 distinct vectors, added and removed in random batches, saved and loaded, compacted: every
    search returns each live id once, at its vector's score, ties by id, as a full sort of the live ids does."""
    rng = np.random.default_rng(seed)
    pool = unit(40, seed=seed + 100)
    live: dict[int, int] = {}  # id -> row of pool
    index = VectorIndex(DIM, "HNSW32")
    next_id = 0
    for step in range(60):
        if live and rng.random() < 0.4:
            gone = rng.choice(list(live), size=rng.integers(1, len(live) + 1), replace=False)
            assert index.remove(gone) == len(gone)
            for id_ in gone.tolist():
                del live[id_]
        else:
            n = int(rng.integers(1, 12))
            back = [id_ for id_ in range(next_id) if id_ not in live]
            ids = rng.choice(back, size=min(n // 2, len(back)), replace=False).tolist() if back else []
            ids += list(range(next_id, next_id + n - len(ids)))
            next_id = max(next_id, max(ids) + 1)
            rows = rng.integers(0, 40, size=len(ids))
            index.add(np.asarray(ids), pool[rows])
            live.update(zip(ids, rows.tolist(), strict=True))
        if step % 15 == 14:
            index.save(tmp_path / "copies.faiss")
            index = VectorIndex.load(tmp_path / "copies.faiss")
        ids = np.asarray(sorted(live), np.int64)
        assert len(index) == len(ids) and (index.ids() == ids).all()
        rows = np.asarray([live[id_] for id_ in ids.tolist()], np.int64)
        for query in pool[:3]:
            scores, found = index.search(query, len(ids) + 3)
            truth_scores, truth_ids = ranked(ids, rows, pool, query)
            np.testing.assert_array_equal(found[0], np.concatenate([truth_ids, [-1, -1, -1]]))
            np.testing.assert_allclose(scores[0, : len(ids)], truth_scores, atol=1e-5)


def saved_as_before_copies(path, ids: np.ndarray, vectors: np.ndarray, monkeypatch, gone: list[int]) -> None:
    """An HNSW32 index saved as bindsearch did before format 2: every id a position of its own, no "copies"."""
    with monkeypatch.context() as patch:
        patch.setattr(VectorIndex, "_storage", lambda self: None)
        index = VectorIndex(DIM, "HNSW32")
        index.add(ids, vectors)
        index.remove(gone)
        index.save(path)
    meta_path = path.with_name(path.name + ".json")
    meta = json.loads(meta_path.read_text())
    del meta["copies"]
    meta_path.write_text(json.dumps({**meta, "format": 1}))


def test_an_index_saved_before_copies_were_kept_has_its_copies_merged_at_load(tmp_path, monkeypatch) -> None:
    """A cache of an earlier version kept its copies apart (found 89 of 2,000 copies) until something rebuilt it."""
    vectors = unit(300)
    vectors[[1, 7, 9]] = vectors[0]
    saved_as_before_copies(tmp_path / "old.faiss", np.arange(150), vectors[:150], monkeypatch, gone=[3, 9])
    old = VectorIndex.load(tmp_path / "old.faiss")
    assert old.upgraded and len(old) == 148 and old.tombstones == 0 and old._cpu.ntotal == 146
    assert old.search(vectors[0], 4)[1][0].tolist()[:3] == [0, 1, 7]
    old.add(np.arange(150, 300), vectors[150:])
    old.add([300], vectors[:1])
    assert old._cpu.ntotal == 296 and old.search(vectors[0], 5)[1][0].tolist()[:4] == [0, 1, 7, 300]
    assert old.search(vectors[200], 1)[1][0, 0] == 200
    old.save(tmp_path / "old.faiss")
    assert not old.upgraded and not VectorIndex.load(tmp_path / "old.faiss").upgraded


def test_the_code_table_finds_codes_despite_hash_collisions(monkeypatch) -> None:
    codes = np.random.default_rng(0).integers(0, 256, (50, 12), dtype=np.uint8)
    monkeypatch.setattr("indexes.copies.hash_rows", lambda rows: np.zeros(len(rows), np.uint64))
    table = CodeTable(codes[:30])
    table.extend(codes[30:40], np.arange(30, 40))
    found = table.find(codes, codes)
    assert found.tolist() == list(range(40)) + [-1] * 10


def test_row_hashes_are_stable_and_tell_rows_apart() -> None:
    codes = np.random.default_rng(0).integers(0, 256, (1000, 13), dtype=np.uint8)
    hashes = hash_rows(codes)
    assert len(np.unique(hashes)) == 1000
    assert (hash_rows(codes[::-1].copy())[::-1] == hashes).all()
    assert (hash_rows(codes[:, :8]) != hash_rows(codes[:, :8].copy()[:, ::-1])).all()  # word order counts


def test_distinct_rows_matches_numpy_unique_even_when_hashes_collide(monkeypatch) -> None:
    codes = np.random.default_rng(0).integers(0, 3, (400, 2), dtype=np.uint8)
    _, first, which = np.unique(codes, axis=0, return_index=True, return_inverse=True)
    for hashes in (hash_rows, lambda rows: np.zeros(len(rows), np.uint64)):
        monkeypatch.setattr("indexes.copies.hash_rows", hashes)
        got_first, got_which = distinct_rows(codes)
        assert (codes[got_first][got_which] == codes).all() and len(got_first) == len(first) == 9
        assert sorted(got_first.tolist()) == sorted(first.tolist())


def test_a_rebuild_keeps_the_codec_so_a_copy_still_meets_its_stored_code() -> None:
    """Compaction re-added the survivors to a fresh index that trained its scalar quantizer on them alone: a later
    copy of a survivor was coded apart from it."""
    vectors = unit(1000)
    index = VectorIndex(DIM, "HNSW16,SQ8")
    index.add(np.arange(1000), vectors)
    index.remove(np.arange(200))  # past `COMPACT_RATIO`: rebuilt
    assert index.tombstones == 0 and index._cpu.ntotal == 800
    index.add([5000], vectors[500:501])
    assert index._cpu.ntotal == 800 and index.search(vectors[500], 2)[1][0].tolist() == [500, 5000]


def test_an_old_index_whose_only_copy_is_a_tombstone_is_rebuilt_at_load(tmp_path, monkeypatch) -> None:
    """Live once and removed once: nothing to merge, so the tombstone stayed, and a new copy brought it back beside
    its live twin (stored twice, ties no longer by id)."""
    vectors = unit(12)
    vectors[11] = vectors[0]
    saved_as_before_copies(tmp_path / "old.faiss", np.arange(12), vectors, monkeypatch, gone=[0])
    old = VectorIndex.load(tmp_path / "old.faiss")
    assert old.upgraded and old.tombstones == 0 and old._cpu.ntotal == 11
    old.add([1000], vectors[:1])
    assert old._cpu.ntotal == 11 and old.search(vectors[0], 2)[1][0].tolist() == [11, 1000]


def test_an_old_index_without_copies_is_kept_as_it_is_and_saved_again_once(tmp_path, monkeypatch) -> None:
    saved_as_before_copies(tmp_path / "old.faiss", np.arange(50), unit(50), monkeypatch, gone=[7])
    old = VectorIndex.load(tmp_path / "old.faiss")
    assert old.upgraded and old.tombstones == 1 and old._cpu.ntotal == 50  # not rebuilt: only marked for a save
    old.save(tmp_path / "old.faiss")
    assert json.loads((tmp_path / "old.faiss.json").read_text())["format"] == 2
    assert not VectorIndex.load(tmp_path / "old.faiss").upgraded
