"""Retrieval metrics against hand-computed cases and a plain sort-based reference implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bindsearch.evaluation import (
    caption_groups,
    ranks,
    ranks_from_embeddings,
    recall_at_k,
    retrieval_metrics,
    retrieval_metrics_from_embeddings,
    summarize_ranks,
    zeroshot_accuracy,
)


def reference_rank(row: list[float], relevant: set[int]) -> int:
    """Stable descending sort, irrelevant before relevant at equal score; 1-based position of first hit."""
    order = sorted(range(len(row)), key=lambda j: (-row[j], j in relevant))
    return next(position for position, j in enumerate(order, start=1) if j in relevant)


# --- hand-computed cases -------------------------------------------------------------------------------


def test_a_tie_counts_against_the_query() -> None:
    sim = np.array([[0.5, 0.5, 0.5], [0.9, 0.5, 0.5], [0.2, 0.7, 0.2]])
    # Query 0: all three tie, so the relevant item ranks last. Query 1: the relevant item 1 ties item 2
    # below item 0. Query 2: relevant item 0 ties item 2 below item 1.
    assert ranks(sim, [1, 1, 0]).tolist() == [3, 3, 3]
    assert ranks(sim, [0, 0, 1]).tolist() == [3, 1, 1]


def test_other_relevant_items_do_not_push_the_best_one_down() -> None:
    sim = np.array([[0.5, 0.5, 0.5, 0.1], [0.3, 0.9, 0.8, 0.8]])
    # Query 0: items 0 and 1 relevant and tied with each other; only irrelevant item 2 ties them.
    # Query 1: items 2 and 3 relevant, tied; item 1 is above them.
    assert ranks(sim, [[0, 1], [2, 3]]).tolist() == [2, 2]
    # Every item relevant: rank 1 whatever the scores.
    assert ranks(sim, np.ones((2, 4), dtype=bool)).tolist() == [1, 1]


def test_several_captions_per_clip_like_clotho() -> None:
    # 2 clips x 3 captions, captions stored clip by clip: caption c belongs to clip c // 3.
    t2x, x2t = caption_groups(np.repeat(np.arange(2), 3))
    text_audio = np.array(
        [
            [0.9, 0.1],  # caption 0 of clip 0: rank 1
            [0.4, 0.6],  # caption 1 of clip 0: rank 2
            [0.5, 0.5],  # caption 2 of clip 0: a tie, rank 2
            [0.2, 0.8],  # caption 0 of clip 1: rank 1
            [0.7, 0.3],  # caption 1 of clip 1: rank 2
            [0.1, 0.3],  # caption 2 of clip 1: rank 1
        ]
    )
    assert ranks(text_audio, t2x).tolist() == [1, 2, 2, 1, 2, 1]
    audio_text = text_audio.T.copy()
    # Clip 0's best caption (0, score 0.9) beats all of clip 1's; clip 1's best caption (3, 0.8) beats
    # all of clip 0's (0.1, 0.6, 0.5). Clip 1's other captions (0.3, 0.3) sit below clip 0's, harmlessly.
    assert ranks(audio_text, x2t).tolist() == [1, 1]
    audio_text[1, 1] = 0.8  # clip 0's caption 1 now ties clip 1's best caption
    assert ranks(audio_text, x2t).tolist() == [1, 2]


def test_relevant_item_scored_last() -> None:
    sim = np.array([[0.9, 0.8, 0.7, 0.6, -0.5]])
    assert ranks(sim, [4]).tolist() == [5]
    metrics = retrieval_metrics(sim, [4])
    assert metrics["R@1"] == 0.0 and metrics["R@5"] == 100.0 and metrics["MdR"] == 5.0


def test_one_query_one_item() -> None:
    metrics = retrieval_metrics(np.array([[0.3]]), [0])
    assert metrics == {"R@1": 100.0, "R@5": 100.0, "R@10": 100.0, "MdR": 1.0, "MnR": 1.0, "n_queries": 1}


def test_median_and_mean_rank_on_a_known_matrix() -> None:
    # Relevant item on the diagonal; ranks by construction 1, 2, 3 and 7.
    sim = np.zeros((4, 8))
    sim[0] = [9, 1, 1, 1, 1, 1, 1, 1]
    sim[1] = [5, 4, 3, 3, 3, 3, 3, 3]
    sim[2] = [6, 5, 4, 3, 3, 3, 3, 3]
    sim[3] = [9, 8, 7, 2, 5, 4, 1, 3]
    assert ranks(sim, np.arange(4)).tolist() == [1, 2, 3, 7]
    metrics = retrieval_metrics(sim, np.arange(4))
    assert metrics == {"R@1": 25.0, "R@5": 75.0, "R@10": 100.0, "MdR": 2.5, "MnR": 3.25, "n_queries": 4}
    assert summarize_ranks(np.array([1, 2, 3, 7]), ks=(2, 3)) == {
        "R@2": 50.0,
        "R@3": 75.0,
        "MdR": 2.5,
        "MnR": 3.25,
        "n_queries": 4,
    }
    assert recall_at_k(np.array([1, 2, 3, 7]), 7) == 100.0


def test_minus_infinity_scores_rank_like_any_other_tie() -> None:
    sim = np.array([[-np.inf, 0.0, -np.inf], [np.inf, np.inf, 1.0]])
    assert ranks(sim, [0, 1]).tolist() == [3, 2]


def test_every_form_of_relevant_gives_the_same_ranks() -> None:
    rng = np.random.default_rng(0)
    sim = rng.integers(0, 4, size=(6, 5)).astype(np.float32)
    groups = [[0], [1, 3], [4], [2, 0], [3], [0, 1, 2, 3, 4]]
    mask = np.zeros((6, 5), dtype=bool)
    for query, group in enumerate(groups):
        mask[query, group] = True
    expected = [reference_rank(sim[q].tolist(), set(g)) for q, g in enumerate(groups)]
    assert ranks(sim, groups).tolist() == expected
    assert ranks(sim, mask).tolist() == expected
    assert ranks(torch.from_numpy(sim), torch.from_numpy(mask)).tolist() == expected
    assert ranks(sim, [np.array(g) for g in groups]).tolist() == expected
    pairs = np.array([[0, 4], [1, 3], [2, 2], [3, 3]])
    expected_pairs = [reference_rank(sim[q].tolist(), set(p)) for q, p in enumerate(pairs.tolist())]
    assert ranks(sim[:4], pairs).tolist() == expected_pairs
    assert ranks(sim[:4], torch.from_numpy(pairs)).tolist() == expected_pairs


def test_nan_scores_are_rejected_with_the_row() -> None:
    sim = np.zeros((5, 3))
    sim[3, 1] = np.nan
    with pytest.raises(ValueError, match="row 3 holds NaN"):
        ranks(sim, np.zeros(5, dtype=int), chunk=2)


@pytest.mark.parametrize(
    ("relevant", "message"),
    [
        ([0, 1], "describes 2 queries but sim has 3 rows"),
        ([0, [], 1], "query 1 has no relevant item"),
        ([0, 1, 3], "relevant item 3 is out of range for 3 items"),
        ([0, -1, 2], "relevant item -1 is out of range"),
        (np.zeros((3, 2), dtype=bool), "mask must have shape"),
    ],
)
def test_bad_relevant_sets_are_rejected(relevant: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ranks(np.zeros((3, 3)), relevant)


def test_non_integer_relevant_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        ranks(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(TypeError):
        ranks(np.zeros((2, 3)), [[True, False, False], [False, True, False]])


def test_an_int_relevance_mask_is_refused_not_read_as_item_ids() -> None:
    """np.eye(n, dtype=int) or one-hot labels, read as (n, k) item ids, would make items 0 and 1 relevant to all."""
    sim = np.eye(4) + 0.1
    with pytest.raises(TypeError, match=r"astype\(bool\)"):
        ranks(sim, np.eye(4, dtype=int))
    with pytest.raises(TypeError, match=r"astype\(bool\)"):
        zeroshot_accuracy(np.eye(4), np.eye(4), np.eye(4, dtype=np.int8), topk=(1,))
    assert ranks(sim, np.eye(4, dtype=bool)).tolist() == [1, 1, 1, 1]
    assert ranks(sim[:, :2], np.array([[0, 1], [1, 0], [0, 1], [1, 0]])).tolist() == [1, 1, 1, 1]  # ids, distinct


def test_chunked_equals_unchunked() -> None:
    rng = np.random.default_rng(1)
    sim = rng.integers(0, 5, size=(37, 23)).astype(np.float32)
    relevant = [rng.choice(23, size=rng.integers(1, 4), replace=False) for _ in range(37)]
    whole = ranks(sim, relevant, chunk=37)
    for chunk in (1, 2, 5, 36, 100, None):
        assert np.array_equal(ranks(sim, relevant, chunk=chunk), whole)
        assert np.array_equal(ranks(torch.from_numpy(sim), relevant, chunk=chunk), whole)


def test_read_only_memmap_is_read_block_by_block(tmp_path) -> None:
    rng = np.random.default_rng(2)
    sim = rng.standard_normal((50, 40)).astype(np.float32)
    path = tmp_path / "sim.f32"
    sim.tofile(path)
    mapped = np.memmap(path, dtype=np.float32, mode="r", shape=sim.shape)
    labels = rng.integers(0, 40, size=50)
    assert np.array_equal(ranks(mapped, labels, chunk=7), ranks(sim, labels))


def test_from_embeddings_equals_explicit_sim() -> None:
    rng = np.random.default_rng(3)
    # Small integer coordinates keep every dot product exact, so ties survive the matrix product.
    queries = rng.integers(-2, 3, size=(5225 // 25, 6)).astype(np.float32)
    items = rng.integers(-2, 3, size=(1045 // 25, 6)).astype(np.float32)
    item_of_query = rng.integers(0, items.shape[0], size=queries.shape[0])
    expected = ranks(queries @ items.T, item_of_query)
    for chunk in (1, 16, None):
        assert np.array_equal(ranks_from_embeddings(queries, items, item_of_query, chunk=chunk), expected)
    as_torch = ranks_from_embeddings(torch.from_numpy(queries), torch.from_numpy(items), item_of_query)
    assert np.array_equal(as_torch, expected)
    assert retrieval_metrics_from_embeddings(queries, items, item_of_query, chunk=9) == retrieval_metrics(
        queries @ items.T, item_of_query
    )
    with pytest.raises(ValueError, match="dimension 6 but items have dimension 5"):
        ranks_from_embeddings(queries, items[:, :5], item_of_query)


def test_both_directions_at_clotho_size() -> None:
    rng = np.random.default_rng(4)
    n_clips, d = 1045, 16
    clips = rng.standard_normal((n_clips, d)).astype(np.float32)
    clip_of_caption = np.repeat(np.arange(n_clips), 5)
    captions = clips[clip_of_caption] + 2.0 * rng.standard_normal((5 * n_clips, d)).astype(np.float32)
    t2a, a2t = caption_groups(clip_of_caption)
    sim = captions @ clips.T
    text_to_audio = retrieval_metrics_from_embeddings(captions, clips, t2a, chunk=500)
    audio_to_text = retrieval_metrics_from_embeddings(clips, captions, a2t, chunk=100)
    assert text_to_audio["n_queries"] == 5225 and audio_to_text["n_queries"] == 1045
    expected_t2a = [reference_rank(sim[q].tolist(), {int(t2a[q])}) for q in range(0, 5225, 97)]
    assert ranks(sim, t2a)[::97].tolist() == expected_t2a
    expected_a2t = [reference_rank(sim.T[c].tolist(), set(a2t[c].tolist())) for c in range(0, n_clips, 97)]
    assert ranks(sim.T, a2t)[::97].tolist() == expected_a2t
    # Any of 5 captions may hit, so audio->text recall beats text->audio on this symmetric noise model.
    assert audio_to_text["R@1"] > text_to_audio["R@1"]


def test_caption_groups() -> None:
    t2x, x2t = caption_groups([1, 0, 1, 2, 0])
    assert t2x.tolist() == [1, 0, 1, 2, 0]
    assert [group.tolist() for group in x2t] == [[1, 4], [0, 2], [3]]
    with pytest.raises(ValueError, match="item 1 has no caption"):
        caption_groups([0, 2, 2])


# --- property test against the reference -------------------------------------------------------------

SCORES = st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0])


@st.composite
def ranking_problems(draw: st.DrawFn) -> tuple[np.ndarray, list[list[int]], int]:
    """A (n_queries, n_items) score matrix with frequent ties, relevant sets of 1..n_items items, a chunk."""
    n_queries = draw(st.integers(1, 8))
    n_items = draw(st.integers(1, 10))
    rows = draw(st.lists(st.lists(SCORES, min_size=n_items, max_size=n_items), min_size=n_queries, max_size=n_queries))
    relevant = [
        sorted(draw(st.sets(st.integers(0, n_items - 1), min_size=1, max_size=n_items))) for _ in range(n_queries)
    ]
    chunk = draw(st.integers(1, n_queries + 1))
    return np.array(rows, dtype=np.float64), relevant, chunk


@settings(max_examples=300, deadline=None)
@given(ranking_problems(), st.booleans())
def test_ranks_match_the_sort_based_reference(problem: tuple, use_torch: bool) -> None:
    sim, relevant, chunk = problem
    expected = [reference_rank(row, set(group)) for row, group in zip(sim.tolist(), relevant, strict=True)]
    scores = torch.from_numpy(sim).float() if use_torch else sim
    assert ranks(scores, relevant, chunk=chunk).tolist() == expected
    mask = np.zeros(sim.shape, dtype=bool)
    for query, group in enumerate(relevant):
        mask[query, group] = True
    assert ranks(scores, mask, chunk=chunk).tolist() == expected
    metrics = retrieval_metrics(scores, relevant, chunk=chunk)
    assert metrics["R@1"] == pytest.approx(100.0 * np.mean(np.array(expected) <= 1))
    assert metrics["MdR"] == pytest.approx(float(np.median(expected)))
