"""Retrieval metrics (R@K, MdR, MnR) with a stated tie rule, in bounded memory.

Tie rule (pessimistic): a query's rank is the rank of its best-ranked relevant item, counting every
*irrelevant* item that scores greater than **or equal to** it:

    rank = 1 + #{irrelevant items j : sim[q, j] >= max(sim[q, relevant items])}

Other relevant items never push the best one down, so a clip with five correct captions is ranked by
its best caption. A model that gives every item the same score thus gets the worst rank, never the best.
The reference code (`np.where(sorted == diag)`) instead gives ties whichever position the sort left them in.

The similarity matrix is processed in blocks of queries, so that (5k x 5k) or far larger runs need
memory for one `(chunk, n_items)` block only; `sim` may be a `np.memmap`, and
`retrieval_metrics_from_embeddings` computes each block as `queries @ items.T` without ever holding it all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

__all__ = [
    "Relevant",
    "caption_groups",
    "ranks",
    "ranks_from_embeddings",
    "recall_at_k",
    "retrieval_metrics",
    "retrieval_metrics_from_embeddings",
    "summarize_ranks",
]

Array = np.ndarray | torch.Tensor
# (n_queries,) int: one relevant item each; (n_queries, k) int: k relevant items each;
# (n_queries, n_items) bool mask; or a list with one int or one sequence of ints per query.
Relevant = np.ndarray | torch.Tensor | Sequence[int] | Sequence[Sequence[int]]

DEFAULT_KS = (1, 5, 10)
# Elements per `(chunk, n_items)` block when no chunk is given: 64 MiB of float32 scores.
_BLOCK_ELEMENTS = 1 << 24


def caption_groups(item_of_caption: Array | Sequence[int]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Relevant sets when each item has several captions: `(n_captions,)` int item ids -> (t2x, x2t).

    `t2x` is `(n_captions,)` int64, the one relevant item of each caption query (`sim = text @ items.T`);
    `x2t` holds, for each item `0..n_items-1`, the `(k_i,)` int64 indices of its captions (`sim = items @
    text.T`). Clotho: `caption_groups(np.repeat(np.arange(1045), 5))` for captions stored clip by clip.
    """
    item_of_caption = _to_numpy(item_of_caption)
    if item_of_caption.ndim != 1 or (item_of_caption.size and item_of_caption.dtype.kind not in "iu"):
        raise TypeError(f"item_of_caption must be (n_captions,) int, got {_describe(item_of_caption)}")
    t2x = item_of_caption.astype(np.int64)
    if t2x.size == 0:
        return t2x, []
    if t2x.min() < 0:
        raise ValueError(f"item_of_caption holds a negative item id ({t2x.min()})")
    order = np.argsort(t2x, kind="stable")
    counts = np.bincount(t2x)
    if (counts == 0).any():
        missing = int(np.flatnonzero(counts == 0)[0])
        raise ValueError(
            f"item {missing} has no caption, so it cannot be an item->text query; "
            "renumber the items 0..n_items-1 so that every item has at least one caption"
        )
    x2t = np.split(order, np.cumsum(counts)[:-1])
    return t2x, x2t


def ranks(sim: Array, relevant: Relevant, *, chunk: int | None = None) -> np.ndarray:
    """Each query's 1-based rank (pessimistic ties): `(n_queries, n_items)` float -> `(n_queries,)` int64.

    rank = 1 + #(irrelevant items scoring >= the best relevant item): ties count against the query, and
    other relevant items never push the best one down. `sim` is numpy (a memmap works) or torch, on any
    device; it is read `chunk` rows at a time. NaN scores raise ValueError.
    """
    n_queries, n_items = _check_matrix(sim, "sim")
    indptr, indices = _relevant_groups(relevant, n_queries, n_items)
    chunk = _chunk_size(chunk, n_items)
    out = np.empty(n_queries, dtype=np.int64)
    for start in range(0, n_queries, chunk):
        stop = min(start + chunk, n_queries)
        block = _as_float_tensor(sim[start:stop])
        out[start:stop] = _block_ranks(block, indptr, indices, start, stop)
    return out


def ranks_from_embeddings(queries: Array, items: Array, relevant: Relevant, *, chunk: int | None = None) -> np.ndarray:
    """Ranks for `sim = queries @ items.T` (`(n_queries, d)`, `(n_items, d)` float) -> `(n_queries,)` int64.

    Scores are plain dot products: pass unit vectors for cosine similarity. Blocks of `chunk` queries are
    multiplied at a time (float32, or float64 if either input is float64) on `items`' device.
    """
    n_queries, d = _check_matrix(queries, "queries")
    n_items, d_items = _check_matrix(items, "items")
    if d != d_items:
        raise ValueError(f"queries have dimension {d} but items have dimension {d_items}")
    indptr, indices = _relevant_groups(relevant, n_queries, n_items)
    chunk = _chunk_size(chunk, n_items)
    item_matrix = _as_float_tensor(items)
    query_matrix = _as_float_tensor(queries)
    dtype = torch.promote_types(item_matrix.dtype, query_matrix.dtype)
    dtype = dtype if dtype == torch.float64 else torch.float32
    item_matrix = item_matrix.to(dtype)
    out = np.empty(n_queries, dtype=np.int64)
    for start in range(0, n_queries, chunk):
        stop = min(start + chunk, n_queries)
        block = query_matrix[start:stop].to(device=item_matrix.device, dtype=dtype) @ item_matrix.T
        out[start:stop] = _block_ranks(block, indptr, indices, start, stop)
    return out


def recall_at_k(query_ranks: Array, k: int) -> float:
    """Percent of queries whose 1-based rank is at most `k`: `(n_queries,)` int -> float in [0, 100]."""
    query_ranks = _to_numpy(query_ranks)
    if query_ranks.size == 0:
        raise ValueError("recall_at_k needs at least one query")
    return float(100.0 * np.mean(query_ranks <= k))


def summarize_ranks(query_ranks: Array, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float | int]:
    """`(n_queries,)` 1-based ranks -> {"R@k" for k in ks (percent), "MdR", "MnR" (1-based), "n_queries"}."""
    query_ranks = _to_numpy(query_ranks)
    if query_ranks.ndim != 1 or query_ranks.size == 0:
        raise ValueError(f"need a non-empty (n_queries,) array of ranks, got {_describe(query_ranks)}")
    if query_ranks.min() < 1:
        raise ValueError(f"ranks are 1-based; got a rank of {query_ranks.min()}")
    summary: dict[str, float | int] = {f"R@{k}": recall_at_k(query_ranks, k) for k in ks}
    summary["MdR"] = float(np.median(query_ranks))
    summary["MnR"] = float(np.mean(query_ranks))
    summary["n_queries"] = int(query_ranks.size)
    return summary


def retrieval_metrics(
    sim: Array, relevant: Relevant, *, ks: Sequence[int] = DEFAULT_KS, chunk: int | None = None
) -> dict[str, float | int]:
    """R@K, MdR, MnR of `(n_queries, n_items)` float scores, ranks as in `ranks` (ties count against the query).

    Returns {"R@1", "R@5", "R@10" (one "R@k" per k in `ks`): percent of queries ranked <= k, float;
    "MdR", "MnR": median and mean 1-based rank, float; "n_queries": int}.
    """
    return summarize_ranks(ranks(sim, relevant, chunk=chunk), ks)


def retrieval_metrics_from_embeddings(
    queries: Array,
    items: Array,
    relevant: Relevant,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    chunk: int | None = None,
) -> dict[str, float | int]:
    """`retrieval_metrics` of `queries @ items.T` (`(n_queries, d)`, `(n_items, d)`), never materialised."""
    return summarize_ranks(ranks_from_embeddings(queries, items, relevant, chunk=chunk), ks)


def _block_ranks(block: torch.Tensor, indptr: np.ndarray, indices: np.ndarray, start: int, stop: int) -> np.ndarray:
    """Ranks of queries `start:stop` from their `(stop - start, n_items)` float scores -> `(rows,)` int64."""
    nan_rows = torch.isnan(block).any(dim=1)
    if nan_rows.any():
        row = start + int(torch.nonzero(nan_rows)[0])
        raise ValueError(
            f"similarity row {row} holds NaN scores, which cannot be ranked; "
            "check the embeddings (normalising a zero vector gives NaN)"
        )
    counts = np.diff(indptr[start : stop + 1])
    rows = torch.from_numpy(np.repeat(np.arange(stop - start), counts)).to(block.device)
    cols = torch.from_numpy(indices[indptr[start] : indptr[stop]]).to(block.device)
    is_relevant = torch.zeros(block.shape, dtype=torch.bool, device=block.device)
    is_relevant[rows, cols] = True
    lowest = torch.tensor(float("-inf"), dtype=block.dtype, device=block.device)
    best_relevant = torch.where(is_relevant, block, lowest).amax(dim=1, keepdim=True)
    # `>=`: an irrelevant item that ties the best relevant one ranks above it (the pessimistic rule).
    ranked_above = (block >= best_relevant) & ~is_relevant
    return (ranked_above.sum(dim=1) + 1).cpu().numpy().astype(np.int64)


def _relevant_groups(relevant: Relevant, n_queries: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Any accepted form of `relevant` -> CSR `(indptr (n_queries + 1,), indices (nnz,))` int64, checked."""
    if isinstance(relevant, np.ndarray | torch.Tensor):
        indptr, indices = _groups_from_array(_to_numpy(relevant), n_queries, n_items)
    elif isinstance(relevant, Sequence) and not isinstance(relevant, str | bytes):
        indptr, indices = _groups_from_sequence(relevant)
    else:
        raise TypeError(f"relevant must be an int array, a bool mask or a list of int lists: {relevant!r}")
    if len(indptr) - 1 != n_queries:
        raise ValueError(f"relevant describes {len(indptr) - 1} queries but sim has {n_queries} rows")
    empty = np.flatnonzero(np.diff(indptr) == 0)
    if empty.size:
        raise ValueError(f"query {int(empty[0])} has no relevant item, so its rank is undefined")
    if indices.size and (indices.min() < 0 or indices.max() >= n_items):
        bad = int(indices[(indices < 0) | (indices >= n_items)][0])
        raise ValueError(f"relevant item {bad} is out of range for {n_items} items")
    return indptr, indices


def _groups_from_array(relevant: np.ndarray, n_queries: int, n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """A `(n,)` / `(n, k)` int array or `(n_queries, n_items)` bool mask -> CSR (indptr, indices) int64."""
    if relevant.dtype == np.bool_:
        if relevant.shape != (n_queries, n_items):
            raise ValueError(f"a relevance mask must have shape {(n_queries, n_items)}, got {relevant.shape}")
        rows, cols = np.nonzero(relevant)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_queries))])
        return indptr.astype(np.int64), cols.astype(np.int64)
    if relevant.dtype.kind not in "iu" or relevant.ndim not in (1, 2):
        raise TypeError(
            f"relevant must be (n_queries,) or (n_queries, k) int, or an (n_queries, n_items) bool mask; "
            f"got {_describe(relevant)}"
        )
    if relevant.shape == (n_queries, n_items) and _looks_like_mask(relevant):
        raise TypeError(
            f"relevant is an (n_queries, n_items) {relevant.dtype} array of 0s and 1s; read as item ids, it would name "
            "only items 0 and 1; pass a relevance mask (or one-hot labels) as bool: relevant.astype(bool)"
        )
    per_query = 1 if relevant.ndim == 1 else relevant.shape[1]
    indptr = np.arange(relevant.shape[0] + 1, dtype=np.int64) * per_query
    return indptr, relevant.reshape(-1).astype(np.int64)


def _looks_like_mask(relevant: np.ndarray) -> bool:
    """An int `(n_queries, n_items)` array of 0 and 1 that cannot be item ids: some row names an item twice."""
    if relevant.shape[1] < 2 or not np.isin(relevant, (0, 1)).all():
        return False
    return relevant.shape[1] > 2 or bool((relevant[:, 0] == relevant[:, 1]).any())


def _groups_from_sequence(relevant: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """A list of ints or of int sequences (one per query) -> CSR (indptr, indices) int64."""
    groups = [np.atleast_1d(_to_numpy(group)) for group in relevant]
    for query, group in enumerate(groups):
        if group.ndim != 1 or (group.size and group.dtype.kind not in "iu"):
            raise TypeError(
                f"relevant[{query}] must be an int or a sequence of ints, got {_describe(group)}; "
                "pass a boolean mask as a numpy array"
            )
    lengths = np.array([group.size for group in groups], dtype=np.int64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    indices = np.concatenate(groups).astype(np.int64) if groups else np.empty(0, dtype=np.int64)
    return indptr, indices


def _check_matrix(matrix: Array, name: str) -> tuple[int, int]:
    """Shape of a 2-D numpy or torch array, or a clear error."""
    if not isinstance(matrix, np.ndarray | torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(matrix).__name__}")
    if matrix.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(matrix.shape)}")
    return int(matrix.shape[0]), int(matrix.shape[1])


def _as_float_tensor(array: Array) -> torch.Tensor:
    """numpy or torch, any real dtype -> torch floating tensor (integers become float64; rarely copied)."""
    if isinstance(array, np.ndarray):
        if array.dtype.kind not in "fiu":
            raise TypeError(f"scores must be real numbers, got dtype {array.dtype}")
        array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("="))
        # torch warns on read-only arrays (e.g. a memmap opened "r"); copying one block is cheap.
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    else:
        tensor = array.detach()
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"scores must be real numbers, got dtype {tensor.dtype}")
    return tensor if tensor.is_floating_point() else tensor.to(torch.float64)


def _to_numpy(array: Array | Sequence | int) -> np.ndarray:
    """numpy, torch or a Python sequence -> numpy array on the CPU."""
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _chunk_size(chunk: int | None, n_items: int) -> int:
    """Rows per block: `chunk` if given (>= 1), else as many as fit in `_BLOCK_ELEMENTS` scores."""
    if chunk is None:
        return max(1, _BLOCK_ELEMENTS // max(n_items, 1))
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, got {chunk}")
    return int(chunk)


def _describe(array: np.ndarray) -> str:
    """'shape (3, 2) dtype float32' for error messages."""
    return f"shape {tuple(array.shape)} dtype {array.dtype}"
