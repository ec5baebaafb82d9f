"""Exact search by blocked GEMM (`indexes.GemmSearch`) and VectorIndex's bf16 path, against numpy brute force."""

from __future__ import annotations

import numpy as np
import pytest

from indexes import GemmSearch, VectorIndex
from indexes.vector_index import GEMM_BATCH


def unit(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries.astype(np.float64) @ vectors.T.astype(np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
@pytest.mark.parametrize("block", [1000, 4096])
def test_top_k_is_exact(precision, block):
    vectors, queries = unit(5000), unit(200, seed=1)
    search = GemmSearch(vectors, precision=precision, block=block)
    scores, positions = search.search(queries, 10)
    assert search.second_passes == 0  # scores spread wider than bf16's slack: every query certified at once
    true_scores, true_positions = brute_force(vectors, queries, 10)
    np.testing.assert_array_equal(positions, true_positions)  # same vectors, same order
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)  # fp32 scores even from a bf16 product


def test_bf16_candidates_rescue_near_ties():
    """Vectors closer together than bf16 can tell apart still come back in their exact order."""
    base = unit(1, seed=2)
    # Distances 0.02 .. 0.05: scores 1 - t^2 / 2 a few 1e-5 apart, all one bf16 value, distinct in fp32.
    noise = np.linspace(0.02, 0.05, 300, dtype=np.float32)[:, None] * unit(300, seed=3)
    vectors = np.concatenate([unit(2000, seed=4), base + noise]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = np.repeat(base, GEMM_BATCH, axis=0)
    _, positions = GemmSearch(vectors, precision="bf16", margin=320).search(queries, 10)
    np.testing.assert_array_equal(positions, brute_force(vectors, queries, 10)[1])


def test_more_near_ties_than_the_margin_are_searched_again_and_come_back_exact():
    """2,000 near-copies of the query's best match tie to bf16's precision, far more than the 64 spare candidates:
    the first pass cannot certify its top 10, so those queries are searched again (an audit's 5,000 near-copies:
    recall@10 0.44 before)."""
    base = unit(1, dim=128, seed=7)
    near = base + 0.01 * np.random.default_rng(8).standard_normal((2000, 128)).astype(np.float32)
    vectors = np.concatenate([near / np.linalg.norm(near, axis=1, keepdims=True), unit(3000, dim=128, seed=9)])
    queries = base + 0.01 * np.random.default_rng(10).standard_normal((8, 128)).astype(np.float32)
    search = GemmSearch(vectors.astype(np.float32), precision="bf16", block=1024)
    scores, positions = search.search(queries, 10)
    true_scores, true_positions = brute_force(vectors, queries, 10)
    assert search.second_passes == 8
    np.testing.assert_array_equal(positions, true_positions)
    np.testing.assert_allclose(scores, true_scores, atol=1e-5)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_padding_and_shapes(precision):
    vectors = unit(3)
    scores, positions = GemmSearch(vectors, precision=precision).search(unit(1, seed=5)[0], 5)  # one (d,) query
    assert scores.shape == positions.shape == (1, 5)
    assert positions[0, 3:].tolist() == [-1, -1] and np.isneginf(scores[0, 3:]).all()
    assert sorted(positions[0, :3].tolist()) == [0, 1, 2]
    empty = GemmSearch(np.empty((0, 64), np.float32), precision=precision).search(unit(2), 3)
    assert (empty[1] == -1).all()
    with pytest.raises(ValueError, match="dimension 8"):
        GemmSearch(vectors, precision=precision).search(np.ones((1, 8), np.float32), 1)
    with pytest.raises(ValueError, match="GPU format"):
        GemmSearch(vectors, precision="fp16")


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_large_k_takes_fewer_queries_per_product(monkeypatch, precision):
    """Candidates per product stay under CANDIDATE_BYTES (at k = 10,000, 768-d, a product of 1,024 queries
    gathered 31 GB to rescore), with the same results."""
    vectors, queries = unit(3000), unit(40, seed=6)
    search = GemmSearch(vectors, precision=precision, block=1000)
    want = search.search(queries, 500)
    sizes = []
    real = search._search
    monkeypatch.setattr(search, "_search", lambda q, found: sizes.append(len(q)) or real(q, found))
    monkeypatch.setattr(GemmSearch, "CANDIDATE_BYTES", 4 * search._keep(500) * (3 + 64) * 8)  # 8 queries (bf16)
    got = search.search(queries, 500)
    assert max(sizes) == (8 if precision == "bf16" else 40) and sum(sizes) == 40  # fp32 gathers nothing to rescore
    np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(ValueError, match="k must be a whole number of at least 1"):
        search.search(queries, 0)


def test_vector_index_bf16_matches_faiss_after_adds_and_removes():
    vectors, queries = unit(3000), unit(GEMM_BATCH * 2, seed=6)
    ids = np.arange(3000, dtype=np.int64) * 7 + 3
    exact, fast = VectorIndex(64, "flat", device="cpu"), VectorIndex(64, "flat", device="cpu", precision="bf16")
    for index in (exact, fast):
        index.add(ids[:2000], vectors[:2000])
        index.search(queries, 10)  # builds the bf16 copy, which the next add and remove must refresh
        index.add(ids[2000:], vectors[2000:])
        index.remove(ids[::3])
    want_scores, want_ids = exact.search(queries, 10)
    got_scores, got_ids = fast.search(queries, 10)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_scores, want_scores, atol=1e-5)
    assert not np.isin(got_ids, ids[::3]).any()
    with pytest.raises(ValueError, match="precision"):
        fast.precision = "int8"


@pytest.mark.parametrize("group", [4, 128])
def test_grouped_topk_is_the_plain_top_k(group):
    """The GPU's top-k by group maxima returns the same values as a full top-k, ties and crowded groups too."""
    import torch

    from indexes.gemm import grouped_topk

    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(64, 128 * 40, generator=gen)
    scores[0, :300] = 5.0  # more tied maxima than k, all in the first groups
    scores[1, 128:128 + 20] = torch.linspace(10, 11, 20)  # the whole top k inside one group
    values, columns = grouped_topk(scores, 16, group)
    np.testing.assert_array_equal(values.sort(dim=1).values, scores.topk(16, dim=1).values.sort(dim=1).values)
    np.testing.assert_array_equal(scores.gather(1, columns), values)  # indices point at the values
    assert columns[1].sort().values.tolist() == list(range(128 + 4, 128 + 20))


def test_auto_precision_follows_the_bf16_units_and_bf16_without_them_warns(cpu_probes, recwarn):
    vectors, queries = unit(500), unit(20, seed=7)
    truth = brute_force(vectors, queries, 5)[1]
    cpu_probes("x86_64", avx512_bf16=False)
    searcher = GemmSearch(vectors)
    assert searcher.precision == "fp32" and not recwarn.list
    np.testing.assert_array_equal(searcher.search(queries, 5)[1], truth)
    with pytest.warns(UserWarning, match="no bf16 matrix units.*precision='fp32'"):
        assert GemmSearch(vectors, precision="bf16").precision == "bf16"  # asked for: kept, and said
    cpu_probes("x86_64", amx=True)
    assert GemmSearch(vectors).precision == "bf16"
    GemmSearch(vectors, precision="bf16")
    cpu_probes("riscv64")  # cannot be told: bf16 only when asked for, and then without a warning
    assert GemmSearch(vectors).precision == "fp32" and GemmSearch(vectors, precision="bf16").precision == "bf16"
    assert not recwarn.list


def test_auto_precision_on_a_gpu_is_what_its_tensor_cores_take(monkeypatch):
    import torch

    from indexes.gemm import _auto_precision

    for native, expected in [(True, "bf16"), (False, "fp16")]:  # Ampere on; a V100 or T4 emulates bf16
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n)
        assert _auto_precision(on_cpu=False) == expected
