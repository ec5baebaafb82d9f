"""VectorIndex against brute-force numpy ground truth on synthetic unit vectors."""

from __future__ import annotations

import os

import faiss
import numpy as np
import pytest

from indexes import IndexFileError, VectorIndex, choose_kind, merge_topk, read_meta, suggested_nlist

DIM = 32
# 4-bit PQ and a small OPQ keep training well under a second; the benchmark covers the 8-bit ones.
APPROXIMATE = ["IVF64,Flat", "HNSW32", "IVF64,PQ16x4", "IVF64,SQ8", "OPQ4,IVF16,PQ4x4"]
ALL_KINDS = ["flat", *APPROXIMATE]


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def unit(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 uniformly random on the sphere."""
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(n: int, dim: int = DIM, clusters: int = 50, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors around random centres, like real embeddings (ANN indexes exploit this)."""
    rng = np.random.default_rng(seed)
    centres = unit(clusters, dim, seed + 1)
    x = centres[rng.integers(clusters, size=n)] + noise * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def brute_force(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top k by inner product with a full sort: scores (n, k), ids (n, k)."""
    scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1)[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of true top-k ids found, averaged over queries."""
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def built(kind: str, ids: np.ndarray, vectors: np.ndarray, **options: object) -> VectorIndex:
    index = VectorIndex(vectors.shape[1], kind, **options)
    index.add(ids, vectors)
    return index


def test_flat_top_k_equals_brute_force() -> None:
    vectors = unit(3000)
    ids = np.random.default_rng(1).permutation(10_000)[:3000] * 7  # sparse, unordered ids
    queries = unit(50, seed=2)
    scores, found = built("flat", ids, vectors).search(queries, 10)
    want_scores, want_ids = brute_force(ids, vectors, queries, 10)
    assert found.dtype == np.int64 and scores.dtype == np.float32 and found.shape == (50, 10)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kind, floor", [("IVF64,Flat", 0.95), ("HNSW32", 0.8), ("IVF64,PQ16x4", 0.5), ("IVF64,SQ8", 0.9)]
)
def test_approximate_kinds_recall_on_clustered_data(kind: str, floor: float) -> None:
    vectors = clustered(5000)
    ids = np.arange(5000, dtype=np.int64) + 100
    queries = clustered(100, seed=7)
    _, found = built(kind, ids, vectors, nprobe=16).search(queries, 10)
    _, truth = brute_force(ids, vectors, queries, 10)
    assert recall(found, truth) >= floor


def test_more_nprobe_means_more_recall() -> None:
    vectors, queries = unit(4000), unit(50, seed=3)
    ids = np.arange(4000)
    _, truth = brute_force(ids, vectors, queries, 10)
    index = built("IVF64,Flat", ids, vectors)
    index.nprobe = 1
    low = recall(index.search(queries, 10)[1], truth)
    index.nprobe = 64
    assert recall(index.search(queries, 10)[1], truth) == 1.0 > low
    for name in ("nprobe", "ef_search"):  # 0 failed in FAISS's C++ at the next search, not where it was set
        with pytest.raises(ValueError, match=f"^{name} must be at least 1, not 0$"):
            setattr(index, name, 0)
        with pytest.raises(TypeError, match=f"^{name} takes a whole number, not float$"):
            setattr(index, name, 2.5)
    assert index.nprobe == 64 and len(index.search(queries, 10)[1]) == 50
    with pytest.raises(TypeError, match="^dim takes a whole number, not float$"):  # SWIG's "wrong number or type"
        VectorIndex(8.0)


@pytest.mark.parametrize("kind", ["flat", "HNSW32", "IVF8,Flat"])
def test_fewer_than_k_results_are_padded(kind: str) -> None:
    vectors = unit(300)
    index = built(kind, np.arange(300), vectors, nprobe=8)
    scores, ids = index.search(vectors[:2], 400)
    assert ids.shape == scores.shape == (2, 400)
    for row_ids, row_scores in zip(ids, scores, strict=True):
        found = int((row_ids >= 0).sum())
        assert found == 300 or (kind == "HNSW32" and found > 250)  # a graph walk may miss a few nodes
        assert len(set(row_ids[:found].tolist())) == found and (row_ids[found:] == -1).all()
        assert np.isfinite(row_scores[:found]).all() and np.isneginf(row_scores[found:]).all()


def test_l2_metric_pads_with_positive_infinity() -> None:
    vectors = unit(3)
    scores, ids = built("flat", np.arange(3), vectors, metric="l2").search(vectors[:1], 5)
    assert ids[0].tolist()[:1] == [0] and ids[0, 3:].tolist() == [-1, -1]
    assert scores[0, 0] == pytest.approx(0.0, abs=1e-6) and np.isposinf(scores[0, 3:]).all()


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_searching_an_empty_index_returns_padding(kind: str) -> None:
    scores, ids = VectorIndex(DIM, kind).search(unit(3), 4)
    assert (ids == -1).all() and np.isneginf(scores).all() and ids.shape == (3, 4)


def test_a_single_query_vector_is_one_row() -> None:
    vectors = unit(10)
    scores, ids = built("flat", np.arange(10), vectors).search(vectors[4], 2)
    assert ids.shape == (1, 2) and ids[0, 0] == 4


def test_wrong_dimension_is_a_clear_error() -> None:
    index = built("flat", np.arange(5), unit(5))
    with pytest.raises(ValueError, match="expected dimension 32, got 16"):
        index.search(unit(2, dim=16), 1)
    with pytest.raises(ValueError, match="expected dimension 32, got 64"):
        index.add(np.arange(5, 7), unit(2, dim=64))
    with pytest.raises(ValueError, match="expected dimension 32"):
        VectorIndex(DIM, "IVF4,Flat").train(np.zeros((10, 8, 4), np.float32))


def test_bad_ids_and_vectors_are_refused() -> None:
    index = built("flat", np.arange(5), unit(5))
    with pytest.raises(ValueError, match="already in the index: \\[3, 4\\]"):
        index.add(np.array([3, 4, 9]), unit(3, seed=1))
    with pytest.raises(ValueError, match=">= 0"):
        index.add(np.array([-1]), unit(1))
    with pytest.raises(ValueError, match="unique"):
        index.add(np.array([7, 7]), unit(2))
    with pytest.raises(ValueError, match="2 ids for 3 vectors"):
        index.add(np.array([7, 8]), unit(3))
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.array([7]), np.full((1, DIM), np.nan, np.float32))
    assert len(index) == 5


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_remove_works_for_every_kind(kind: str) -> None:
    vectors = clustered(1000)
    ids = np.arange(1000, dtype=np.int64) * 2
    index = built(kind, ids, vectors, nprobe=64)
    gone = ids[::7]  # 143 of 1000: above the 10% compaction threshold for tombstoned kinds
    assert index.remove(np.concatenate([gone, [99_999]])) == len(gone)
    assert len(index) == 1000 - len(gone)
    assert index.remove(gone) == 0
    _, found = index.search(vectors[::7][:50], 20)
    assert not np.isin(found, gone).any()
    assert set(index.ids().tolist()) == set(ids.tolist()) - set(gone.tolist())
    keep = ~np.isin(ids, gone)
    _, truth = brute_force(ids[keep], vectors[keep], vectors[:50], 10)
    if kind == "flat":
        np.testing.assert_array_equal(index.search(vectors[:50], 10)[1], truth)


def test_hnsw_filters_tombstones_then_compacts() -> None:
    vectors = unit(1000)
    index = built("HNSW32", np.arange(1000), vectors)
    index.remove(np.arange(50))
    assert index.tombstones == 50
    _, found = index.search(vectors[:50], 1)
    assert (found[:, 0] >= 50).all()  # each query's own vector was removed
    index.remove(np.arange(50, 120))  # 120 > 10% of 1000 stored
    assert index.tombstones == 0 and len(index) == 880
    index.add(np.arange(10), vectors[:10])  # a removed id can come back
    assert index.search(vectors[3], 1)[1][0, 0] == 3


def test_hnsw_takes_k_candidates_when_k_is_above_ef_search() -> None:
    """A search for more than `ef_search` neighbours walks the graph with k candidates, tombstones or not (before,
    only a search passing over tombstones raised it, and k=640 came back 21 % padded, recall 0.5)."""
    rng = np.random.default_rng(0)
    vectors = clustered(6000, clusters=60, noise=0.5)
    queries = vectors[rng.integers(6000, size=10)]
    _, truth = brute_force(np.arange(6000), vectors, queries, 400)
    index = built("HNSW32", np.arange(6000), vectors, ef_search=16)
    _, found = index.search(queries, 400)
    assert (found >= 0).all() and recall(found, truth) >= 0.9
    index.ef_search = 400
    assert recall(found, index.search(queries, 400)[1]) > 0.97  # the same walk as ef_search=k asks for


def test_a_removed_id_can_come_back_with_a_new_vector() -> None:
    vectors = unit(200)
    index = built("HNSW32", np.arange(200), vectors)
    index.remove([5])
    index.add([5], -vectors[100:101])
    assert index.tombstones == 1 and len(index) == 200  # the old copy stays filtered out, no rebuild needed
    assert index.search(-vectors[100], 1)[1][0, 0] == 5
    assert index.search(vectors[5], 1)[1][0, 0] != 5


@pytest.mark.parametrize("kind", ["flat", "IVF64,Flat", "HNSW32", "OPQ4,IVF16,PQ4x4"])
def test_save_load_round_trip(tmp_path, kind: str) -> None:
    vectors = clustered(1200)
    index = built(kind, np.arange(1200) + 5, vectors, nprobe=8)
    index.remove(np.arange(5, 105))  # tombstones for HNSW (below the compaction ratio): must persist
    path = tmp_path / "cache" / "video.faiss"
    index.save(path, fingerprint="abc:v3")
    assert sorted(p.name for p in path.parent.iterdir()) == ["video.faiss", "video.faiss.json"]
    meta = read_meta(path)
    assert meta is not None and (meta.kind, meta.dim, meta.metric, meta.count, meta.fingerprint, meta.nprobe) == (
        index.kind,
        DIM,
        "ip",
        1100,
        "abc:v3",
        8,
    )
    loaded = VectorIndex.load(path)
    assert loaded.fingerprint == "abc:v3" and len(loaded) == 1100 and loaded.nprobe == 8
    np.testing.assert_array_equal(loaded.ids(), index.ids())
    queries = vectors[:40]
    for got, want in zip(loaded.search(queries, 10), index.search(queries, 10), strict=True):
        np.testing.assert_array_equal(got, want)


def test_an_interrupted_save_is_detected(tmp_path) -> None:
    old, new = built("flat", np.arange(10), unit(10)), built("flat", np.arange(20), unit(20))
    old.save(tmp_path / "a.faiss", "v1")
    new.save(tmp_path / "b.faiss", "v2")
    os.replace(tmp_path / "b.faiss", tmp_path / "a.faiss")  # crash after the index rename, before the sidecar's
    with pytest.raises(IndexFileError, match="interrupted save"):
        VectorIndex.load(tmp_path / "a.faiss")
    assert read_meta(tmp_path / "missing.faiss") is None
    with pytest.raises(IndexFileError, match="no saved index"):
        VectorIndex.load(tmp_path / "missing.faiss")


def test_a_save_sweeps_what_a_killed_save_left_and_spares_a_live_ones(tmp_path) -> None:
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that was a process and is one no more
    live = subprocess.Popen(["sleep", "30"])
    try:
        left = [tmp_path / f".a.faiss.{dead.pid}.tmp", tmp_path / f".a.faiss.json.{dead.pid}-7.tmp"]
        kept = [tmp_path / f".a.faiss.{live.pid}-7.tmp", tmp_path / f".b.faiss.{dead.pid}.tmp"]  # saving; another
        for f in left + kept:
            f.write_bytes(b"x" * 100)
        built("flat", np.arange(10), unit(10)).save(tmp_path / "a.faiss", "v1")
        assert not any(f.exists() for f in left) and all(f.exists() for f in kept)
        assert VectorIndex.load(tmp_path / "a.faiss").fingerprint == "v1"
    finally:
        live.kill()
        live.wait()


def test_threads_saving_one_index_at_once_each_write_their_own_temporary_file(tmp_path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    index = built("flat", np.arange(2000), unit(2000))
    with ThreadPoolExecutor(4) as pool:  # one shared name had them rename and delete each other's files
        list(pool.map(lambda i: index.save(tmp_path / "a.faiss", f"v{i % 2}"), range(24)))
    assert VectorIndex.load(tmp_path / "a.faiss").fingerprint in {"v0", "v1"}
    assert [p.name for p in tmp_path.iterdir()] and not list(tmp_path.glob(".*.tmp"))


def test_too_few_vectors_to_train_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"cannot train 'IVF1024,Flat' on 100 vectors .*1024"):
        VectorIndex(DIM, "IVF1024,Flat").add(np.arange(100), unit(100))
    with pytest.raises(ValueError, match="unknown index kind 'IVF,Nope'"):
        VectorIndex(DIM, "IVF,Nope")


def test_auto_kind_follows_the_documented_rule() -> None:
    assert choose_kind(49_999, 768) == "Flat"
    assert choose_kind(100_000, 768, memory_budget=2**40) == "HNSW32"
    assert choose_kind(1_000_000, 768, memory_budget=2**40, gpu=True) == "Flat"  # brute force on the GPU
    assert choose_kind(1_000_000, 768, memory_budget=2**30) == "IVF4096,PQ96"  # 3 GB of vectors > 1 GiB
    assert choose_kind(1_000_000, 768, memory_budget=2**30, gpu=True) == "IVF4096,PQ96"
    assert choose_kind(60_000, 768, memory_budget=2**20) == "IVF1024,PQ96"
    assert suggested_nlist(2000) == 32  # 4 * sqrt(2000) ~ 128 lists, halved until 39 training vectors each
    assert VectorIndex(DIM, "auto", expected_size=100).kind == "Flat"
    with pytest.raises(ValueError, match="expected_size"):
        VectorIndex(DIM, "auto")


def test_device_auto_falls_back_to_cpu() -> None:
    assert built("flat", np.arange(3), unit(3), device="auto").device == ("cuda" if faiss.get_num_gpus() else "cpu")
    assert VectorIndex(DIM, "HNSW32", device="auto").device == "cpu"  # FAISS has no GPU HNSW
    with pytest.raises(ValueError, match="device must be"):
        VectorIndex(DIM, device="tpu")


@pytest.mark.skipif(faiss.get_num_gpus() > 0, reason="checks the error raised when there is no GPU")
def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="FAISS sees no GPU.*device='auto'"):
        VectorIndex(DIM, "flat", device="cuda")


@pytest.mark.gpu
@pytest.mark.skipif(faiss.get_num_gpus() == 0, reason="needs a CUDA device and faiss-gpu")
@pytest.mark.parametrize("kind", ["flat", "IVF64,Flat"])
def test_gpu_search_matches_cpu(tmp_path, kind: str) -> None:
    vectors, queries = clustered(3000), clustered(30, seed=5)
    gpu, cpu = (
        built(kind, np.arange(3000), vectors, device="cuda", nprobe=8),
        built(kind, np.arange(3000), vectors, device="cpu", nprobe=8),
    )
    assert recall(gpu.search(queries, 10)[1], cpu.search(queries, 10)[1]) >= 0.99
    gpu.remove(np.arange(100))
    assert not np.isin(gpu.search(queries, 10)[1], np.arange(100)).any()
    gpu.save(tmp_path / "g.faiss")
    assert VectorIndex.load(tmp_path / "g.faiss", device="cpu").device == "cpu"


def test_merge_topk_matches_one_big_search() -> None:
    vectors, queries = unit(600), unit(20, seed=4)
    ids = np.arange(600)
    parts = [built("flat", ids[i::3], vectors[i::3]).search(queries, 10) for i in range(3)]
    scores, found = merge_topk(parts, 10)
    want_scores, want_ids = brute_force(ids, vectors, queries, 10)
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5)
    _, padded = merge_topk([built("flat", ids[:2], vectors[:2]).search(queries, 2)], 5)
    assert (padded[:, 2:] == -1).all()


def test_ties_come_back_by_id_at_every_k() -> None:
    """Copies of one file score the same: their order must not change with k (a second page reshuffled them)."""
    copies = np.repeat(unit(1), 6, axis=0)
    index = built("flat", np.arange(10, 16), copies)
    query = unit(1)
    for k in (2, 4, 6):
        _, ids = merge_topk([index.search(query, k)], k)
        assert ids[0].tolist() == list(range(10, 10 + k))
    shuffled = (np.zeros((1, 3), np.float32), np.array([[7, 3, 5]]))
    assert merge_topk([shuffled, (np.ones((1, 1), np.float32), np.array([[9]]))], 4)[1].tolist() == [[9, 3, 5, 7]]


def test_merge_topk_keeps_the_nearest_for_l2() -> None:
    near, far = VectorIndex(2, "flat", metric="l2"), VectorIndex(2, "flat", metric="l2")
    near.add(np.array([1, 2]), np.array([[1.0, 0.0], [5.0, 5.0]], dtype=np.float32))
    far.add(np.array([3]), np.array([[0.0, 2.0]], dtype=np.float32))
    origin = np.zeros((1, 2), dtype=np.float32)
    distances, ids = merge_topk([near.search(origin, 2), far.search(origin, 2)], 4, metric="l2")
    assert ids.tolist() == [[1, 3, 2, -1]] and distances[0, :3].tolist() == [1.0, 4.0, 50.0]
    assert distances[0, 3] == np.inf
