"""Exact top-k by matrix product: many queries against many vectors as one blocked GEMM.

Searching q queries exactly is a (q, d) x (d, n) matrix product followed by a top-k per row. FAISS's flat
index already does this in fp32 (one sgemm per block, then a heap). `GemmSearch` does the product in bf16,
which the CPU's bf16 dot-product units (and any GPU) run at two or more times the fp32 rate, and keeps
the result exact where it matters: it keeps a few more candidates per query than asked for, then
rescores them in fp32 and returns the true top k among them.

bf16 keeps 8 significant bits, so a bf16 score is off by at most ~1.2 % of |q| |x| (rounding the two vectors
and the product; `_slack`): only candidates that tie the k-th score to that precision can be misordered, and the
margin of extra candidates absorbs them. The result is certified, query by query: a vector left out of the
candidates scored at most the last candidate's bf16 score t, so at most t + slack exactly, and where the k-th exact
score is below that (more than `margin` near-ties: near-duplicates of the query's best matches), the query is
searched again for every vector whose bf16 score comes within the slack of its k-th exact score, all rescored.
`benchmarks/exact_search.py` measures recall@10 against fp32 exact search (1.000 on 1M random vectors), and how
many queries took the second pass.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from indexes.cpu import cpu_runs_bf16, no_bf16_units

__all__ = ["GemmSearch", "grouped_topk"]

_PRECISIONS = {"bf16": torch.bfloat16, "fp32": torch.float32, "fp16": torch.float16}


def _auto_precision(on_cpu: bool) -> str:
    """bf16 where the hardware multiplies it: a CPU known to have the units, a GPU with bf16 tensor cores (Ampere
    on); fp16 on an older GPU (its tensor cores take fp16, and bf16 there is emulated); else fp32."""
    if on_cpu:
        return "bf16" if cpu_runs_bf16() else "fp32"
    try:
        native = torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a torch without the argument counts only native support
        native = torch.cuda.is_bf16_supported()
    return "bf16" if native else "fp16"


class GemmSearch:
    """Exact inner-product top-k over fixed vectors (n, d) float32, for batches of queries.

    `precision="bf16"` keeps a bf16 copy of the vectors (half the memory of fp32) for the product and reads
    the fp32 vectors only to rescore candidates; "fp32" multiplies in fp32; "auto" (the default) is bf16 on a GPU
    with bf16 tensor cores (fp16 on an older one) and on a CPU known to have bf16 matrix units (`indexes.cpu`), else
    fp32, which without them ran 4x the bf16 rate.
    `device="cuda"` keeps the copy on the GPU between searches (fp16 is a GPU format there too); the fp32
    vectors stay in host memory unless `exact_on_device=True`, which spends 4 more bytes per dimension of GPU
    memory so that rescoring never leaves the GPU. Blocks of `block` vectors bound the score matrix to (queries,
    block); the default suits the device (16,384 on the CPU, whose caches want small blocks; 262,144 on a GPU, which
    wants few launches).
    """

    QUERY_BLOCK = {"cpu": 1024, "cuda": 4096}
    """Queries per product, at most: fewer for a large k (see `CANDIDATE_BYTES`)."""

    CANDIDATE_BYTES = 1 << 29
    """What one product's candidates may take (per block top-k's, and the fp32 rows gathered to rescore them):
    at k = 10,000, 768-d, 1,024 queries would have gathered 31 GB."""

    SECOND_PASS_QUERIES = 16
    """Queries searched again together: each keeps every vector within the slack of its k-th score (16 bytes a
    pair), which in a tight cluster is every vector."""

    GROUP = 128
    """On a GPU, top-k of a score block goes through the maxima of groups of GROUP columns (`grouped_topk`)."""

    def __init__(
        self,
        vectors: np.ndarray,
        *,
        precision: str = "auto",
        device: str = "cpu",
        block: int | None = None,
        margin: int = 64,
        exact_on_device: bool = False,
    ) -> None:
        if precision not in (*_PRECISIONS, "auto"):
            raise ValueError(f"precision must be one of {sorted(_PRECISIONS)} or 'auto', got {precision!r}")
        on_cpu = torch.device(device).type == "cpu"
        if precision == "fp16" and on_cpu:
            raise ValueError("fp16 products are a GPU format; on the CPU use precision='bf16'")
        if precision == "auto":
            precision = _auto_precision(on_cpu)
        elif precision == "bf16" and on_cpu and cpu_runs_bf16() is False:
            warnings.warn(f"{no_bf16_units()}: bf16 products run about 4x slower than fp32 here; use "
                          "precision='fp32'", stacklevel=2)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be (n, d), got shape {vectors.shape}")
        self.precision, self.device, self.margin = precision, torch.device(device), margin
        self.block = block or (16384 if self.device.type == "cpu" else 262144)
        self.query_block = self.QUERY_BLOCK.get(self.device.type, 1024)
        self._exact = torch.from_numpy(vectors)  # shares memory with the caller's array: no fp32 copy
        if exact_on_device:
            self._exact = self._exact.to(self.device)
        dtype = _PRECISIONS[precision]
        on_device = self._exact.device == self.device
        self._lowp = self._exact if dtype == torch.float32 and on_device else self._to_device(dtype)
        # In blocks: np.linalg.norm squares the whole array first, a second copy of it (30 GB at 10M x 768).
        largest = [np.linalg.norm(vectors[i : i + 65536], axis=1).max() for i in range(0, len(vectors), 65536)]
        self._largest_norm = float(np.max(largest)) if largest else 0.0  # NaN stays NaN (Python's max drops it)
        if not np.isfinite(self._largest_norm):  # a NaN row was every query's best hit
            raise ValueError("vectors contain NaN or infinite values")
        self.second_passes = 0  # queries searched again because their top k was not certified (see the module)

    def _to_device(self, dtype: torch.dtype) -> torch.Tensor:
        """The vectors as `dtype` on the search device, converted block by block (no full-size temporary)."""
        if self.device.type == "cpu":
            return self._exact.to(dtype)
        out = torch.empty(self._exact.shape, dtype=dtype, device=self.device)
        step = 1 << 20
        for start in range(0, len(self), step):
            out[start : start + step] = self._exact[start : start + step].to(self.device)
        return out

    def __len__(self) -> int:
        return self._exact.shape[0]

    @property
    def dim(self) -> int:
        return self._exact.shape[1]

    @torch.inference_mode()
    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top k for queries (q, d): fp32 scores (q, k) and row positions (q, k) int64, best first; pads -inf / -1."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries have dimension {queries.shape[1]}, the vectors {self.dim}")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"k must be a whole number of at least 1, got {k!r}")
        if not np.isfinite(queries).all():
            raise ValueError("queries contain NaN or infinite values")
        k, n, q = int(k), len(self), len(queries)
        found = min(k, n)
        scores = np.full((q, k), -np.inf, np.float32)
        positions = np.full((q, k), -1, np.int64)
        keep = self._keep(found) if self.precision != "fp32" else found
        per_query = 4 * keep * (-(-n // self.block) + (self.dim if self.precision != "fp32" else 0))
        step = max(1, min(self.query_block, self.CANDIDATE_BYTES // max(per_query, 1)))
        for start in range(0, q if found else 0, step):
            stop = start + step
            scores[start:stop, :found], positions[start:stop, :found] = self._search(queries[start:stop], found)
        return scores, positions

    def _search(self, queries: np.ndarray, found: int) -> tuple[np.ndarray, np.ndarray]:
        n = len(self)
        low = self.precision != "fp32"
        keep = self._keep(found) if low else found  # candidates per query before rescoring
        query_t = torch.from_numpy(queries)
        query_low = query_t.to(self.device, self._lowp.dtype)
        best_scores: list[torch.Tensor] = []
        best_positions: list[torch.Tensor] = []
        for start in range(0, n, self.block):
            block = self._lowp[start : start + self.block]
            values, indices = self._topk(query_low @ block.T, min(keep, block.shape[0]))
            best_scores.append(values)
            best_positions.append(indices + start)
        merged = torch.cat(best_scores, dim=1).float()
        merged_positions = torch.cat(best_positions, dim=1)
        top = merged.topk(keep, dim=1)
        candidates = merged_positions.gather(1, top.indices)
        if not low:
            return top.values.cpu().numpy(), candidates.cpu().numpy()
        cut = top.values[:, -1].to(self._exact.device)  # no vector left out scored more than this in low precision
        candidates = candidates.to(self._exact.device)  # rescore the candidates exactly: the true top k among them
        exact = torch.einsum("qcd,qd->qc", self._exact[candidates], query_t.to(self._exact.device))
        top = exact.topk(found, dim=1)
        scores, positions = top.values.cpu().numpy(), candidates.gather(1, top.indices).cpu().numpy()
        if keep < n:
            slack = torch.from_numpy(self._slack(queries)).to(cut.device)
            kth = top.values[:, -1]
            unsure = torch.nonzero(kth < cut + slack).flatten().cpu().numpy()  # a left-out vector may beat the k-th
            thresholds = (kth - slack).cpu().numpy()
            self.second_passes += len(unsure)
            for group in np.array_split(unsure, -(-len(unsure) // self.SECOND_PASS_QUERIES)) if len(unsure) else ():
                scores[group], positions[group] = self._within(queries[group], thresholds[group], found)
        return scores, positions

    def _keep(self, found: int) -> int:
        """Candidates kept per query in low precision: k plus the margin, and at least 2k (the near-ties around the
        k-th score grow with k: at k = 100, a margin of 64 left every query of a clustered set to a second pass)."""
        return min(len(self), found + max(self.margin, found))

    def _slack(self, queries: np.ndarray) -> np.ndarray:
        """(q,) bound on |low-precision score - exact score| for these queries against any of the vectors.

        Rounding q and x to p significant bits (unit roundoff u) moves each product q_i x_i by at most 2u|q_i x_i|,
        and rounding the result by u|q.x|: 3u |q| |x| in all, by Cauchy-Schwarz, plus fp32 accumulation. A GPU may
        reduce a long product in parts, each rounded again: 8u there."""
        u = 2.0**-8 if self.precision == "bf16" else 2.0**-11
        factor = (3 if self.device.type == "cpu" else 8) * u + self.dim * 2.0**-23
        return (factor * np.linalg.norm(queries, axis=1) * self._largest_norm).astype(np.float32)

    def _within(self, queries: np.ndarray, thresholds: np.ndarray, found: int) -> tuple[np.ndarray, np.ndarray]:
        """The exact top `found` of each query among the vectors whose low-precision score reaches its threshold:
        one more product of these queries with every block, then the rows that reach it, rescored."""
        query_low = torch.from_numpy(queries).to(self.device, self._lowp.dtype)
        limits = torch.from_numpy(thresholds.astype(np.float32)).to(self.device)[:, None]
        rows, columns = [], []
        for start in range(0, len(self), self.block):
            row, column = torch.nonzero((query_low @ self._lowp[start : start + self.block].T).float() >= limits,
                                        as_tuple=True)
            rows.append(row.to(self._exact.device))
            columns.append(column.to(self._exact.device) + start)
        rows, columns = torch.cat(rows), torch.cat(columns)
        order = torch.argsort(rows, stable=True)  # each query's columns together, in one pass
        counts = torch.bincount(rows, minlength=len(queries)).tolist()
        query_t = torch.from_numpy(queries).to(self._exact.device)
        scores = np.empty((len(queries), found), np.float32)
        positions = np.empty((len(queries), found), np.int64)
        for i, mine in enumerate(torch.split(columns[order], counts)):
            # The first pass's top k are among them: their scores reach the threshold.
            exact = torch.cat([self._exact[mine[j : j + 65536]] @ query_t[i] for j in range(0, len(mine), 65536)])
            top = exact.topk(found)
            scores[i], positions[i] = top.values.cpu().numpy(), mine[top.indices].cpu().numpy()
        return scores, positions

    def _topk(self, scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Unsorted top k per row of a score block: the plain top-k on the CPU, `grouped_topk` on a GPU."""
        if scores.device.type == "cpu":
            top = scores.topk(k, dim=1, sorted=False)
            return top.values, top.indices
        return grouped_topk(scores, k, self.GROUP)


def grouped_topk(scores: torch.Tensor, k: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top k per row of (q, n) scores, unsorted, as (values, column indices), by way of group maxima.

    A full-width top-k is slow on a GPU, so this first takes the maximum of each run of `group` columns and
    keeps the k groups with the largest maxima. Every element of the true top k lies in one of them: a group
    holding such an element x has a maximum >= x, and fewer than k other groups can have one, since each
    would hold an element beating x. The top k of those k x `group` columns is then the exact answer.
    """
    q, n = scores.shape
    if n % group or n // group <= k:
        top = scores.topk(k, dim=1, sorted=False)
        return top.values, top.indices
    groups = scores.view(q, n // group, group).amax(dim=2).topk(k, dim=1, sorted=False).indices
    columns = (groups.unsqueeze(2) * group + torch.arange(group, device=scores.device)).view(q, -1)
    top = scores.gather(1, columns).topk(k, dim=1, sorted=False)
    return top.values, columns.gather(1, top.indices)
