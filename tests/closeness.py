"""How close two sets of embeddings are, judged against how far apart different items are (numpy only, so that
the GPU tests can use it without the conftest's media libraries)."""

from __future__ import annotations

import numpy as np


def assert_same_vectors(got, want, share: float = 0.1) -> None:
    """Each row of `got` is the same item's row of `want` (n >= 2 different items, unit rows), to within `share` of
    the cosine distance between different items' vectors in `want`.

    Random-weight towers give every input nearly the same vector (cosine 0.995 between unrelated files), so an
    absolute bound such as cosine > 0.99 would also pass code that ignored its input.
    """
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape and len(want) >= 2
    apart = 1 - want @ want.T
    nearest_other = np.where(np.eye(len(want), dtype=bool), np.inf, apart).min(axis=1)
    off = 1 - (got * want).sum(axis=1)
    assert (nearest_other > 1e-6).all(), "the reference vectors of different items coincide: use other items"
    assert (off < share * nearest_other).all(), f"off by {off} against {nearest_other} between items"
