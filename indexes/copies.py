"""Identical vectors in a graph index, stored once.

An HNSW graph links each vector to its nearest neighbours. Copies of one vector (one photo under several names,
the silent or black windows of many videos) are each other's nearest neighbours at distance 0: they fill one
another's neighbour lists and the search wanders among them. With one vector copied over 5 % of 60,000 rows, a
search for it returned 87 of its 3,000 copies, and on 20,000 rows random queries found 0.844 of their true top 10
(`benchmarks/hnsw_copies.py`). So `VectorIndex` stores each distinct code once, under the first id that brought
it, and `Copies` keeps which ids share a stored position when they are other than that one id.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CodeTable", "Copies", "distinct_rows", "hash_rows"]

_HASH_CHUNK = 4096  # rows hashed at a time: bounds the (rows, words) uint64 temporaries


class Copies:
    """Which live ids share each stored position, for the positions where that is not just the id the FAISS id map
    holds there: several ids, or ids that came after the first one left. Positions with no entry hold their id
    map's id alone (or nothing, when tombstoned)."""

    def __init__(self, groups: dict[int, list[int]] | None = None) -> None:
        self.groups: dict[int, list[int]] = {}
        self.position_of: dict[int, int] = {}  # id -> its position, for every id in `groups`
        self._keys: np.ndarray | None = None  # the positions of `groups`, sorted, while no entry comes or goes
        for position, ids in (groups or {}).items():
            self.join(position, [], ids)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def join(self, position: int, there: list[int], ids: list[int]) -> None:
        """List ids (new to the index) at position, where the ids `there` (sorted) are now."""
        if position not in self.groups:
            self._keys = None
            self.position_of.update(dict.fromkeys(there, position))
        self.groups[position] = sorted([*there, *ids])  # a run of sorted ids and a few more: linear
        self.position_of.update(dict.fromkeys(ids, position))

    def leave(self, position: int, ids: set[int]) -> list[int]:
        """Unlist ids from position; returns the ids left there ([]: none, the entry gone)."""
        rest = [id_ for id_ in self.groups[position] if id_ not in ids]
        for id_ in ids:
            del self.position_of[id_]
        if rest:
            self.groups[position] = rest
        else:
            del self.groups[position]
            self._keys = None
        return rest

    def ids_at(self, position: int, mapped: int, dead: bool) -> list[int]:
        """Live ids at position, whose id-map entry is `mapped` and which is tombstoned when `dead`."""
        if position in self.groups:
            return self.groups[position]
        return [] if dead else [mapped]

    def listed(self, positions: np.ndarray) -> np.ndarray:
        """Whether each of positions (any shape) int64 has an entry: a bool array of that shape."""
        if self._keys is None:
            self._keys = np.sort(np.fromiter(self.groups, np.int64, len(self.groups)))
        if not len(self._keys):
            return np.zeros(np.shape(positions), bool)
        places = np.minimum(np.searchsorted(self._keys, positions), len(self._keys) - 1)
        return self._keys[places] == positions

    def expand(self, position_scores: np.ndarray, positions: np.ndarray, id_map: np.ndarray, k: int, descending: bool
               ) -> tuple[np.ndarray, np.ndarray]:
        """Search results over positions (n, m), m >= k -> best k over ids: scores (n, k) float32, ids (n, k) int64.
        Each position gives all its ids at its score, ties by id; positions are live (the search filtered out
        tombstones), -1 pads."""
        pad = -np.inf if descending else np.inf
        ids = np.where(positions >= 0, id_map[np.maximum(positions, 0)], -1)[:, :k]
        scores = np.where(ids >= 0, position_scores[:, :k], pad).astype(np.float32)
        shared = self.listed(positions).any(axis=1)
        for row in np.flatnonzero(shared):  # rows holding a position of several ids, or of another id than mapped
            found = positions[row] >= 0
            row_scores, row_positions = position_scores[row][found].tolist(), positions[row][found].tolist()
            pairs = [
                (score, id_)
                for score, position in zip(row_scores, row_positions, strict=True)
                for id_ in self.groups.get(position, (int(id_map[position]),))[:k]  # sorted: its k first suffice
            ]
            pairs.sort(key=(lambda pair: (-pair[0], pair[1])) if descending else None)
            best = pairs[:k]
            scores[row], ids[row] = pad, -1
            scores[row, : len(best)] = [score for score, _ in best]
            ids[row, : len(best)] = [id_ for _, id_ in best]
        return scores, ids

    def renumbered(self, kept: np.ndarray) -> Copies:
        """The entries of positions `kept` (sorted) at their new places 0..len(kept)-1, one-id entries dropped:
        after a rebuild each kept position's id map holds its first id."""
        new_place = {int(old): new for new, old in enumerate(kept.tolist())}
        return Copies({new_place[old]: ids for old, ids in self.groups.items() if old in new_place and len(ids) > 1})

    def to_json(self) -> list[list]:
        return [[position, ids] for position, ids in sorted(self.groups.items())]

    @classmethod
    def from_json(cls, entries: list[list]) -> Copies:
        return cls({int(position): [int(id_) for id_ in ids] for position, ids in entries})


class CodeTable:
    """Stored codes (n, code_size) uint8 looked up by content: which position, if any, holds a given code."""

    def __init__(self, stored: np.ndarray) -> None:
        hashes = hash_rows(stored)
        order = np.argsort(hashes, kind="stable")
        self._hashes, self._positions = hashes[order], order.astype(np.int64)

    def find(self, codes: np.ndarray, stored: np.ndarray) -> np.ndarray:
        """Positions (n,) int64 in stored (the codes the table was built and extended from) holding each of codes
        (n, code_size) uint8, or -1."""
        hashes = hash_rows(codes)
        first = np.searchsorted(self._hashes, hashes)
        last = np.searchsorted(self._hashes, hashes, side="right")
        found = np.full(len(codes), -1, np.int64)
        for row in np.flatnonzero(last > first):  # rows whose hash is stored: check the codes themselves
            for position in self._positions[first[row] : last[row]]:
                if np.array_equal(stored[position], codes[row]):
                    found[row] = position
                    break
        return found

    def extend(self, codes: np.ndarray, positions: np.ndarray) -> None:
        """Record codes (n, code_size) uint8 as stored at positions (n,)."""
        hashes = hash_rows(codes)
        order = np.argsort(hashes, kind="stable")
        places = np.searchsorted(self._hashes, hashes[order], side="right")
        self._hashes = np.insert(self._hashes, places, hashes[order])
        self._positions = np.insert(self._positions, places, np.asarray(positions, np.int64)[order])


def distinct_rows(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first row (m,) int64 of each distinct row of codes (n, code_size) uint8, and which of them each row is
    (n,) int64 (as `np.unique(..., return_index=True, return_inverse=True)` over rows, 10x faster on long codes)."""
    _, first, which = np.unique(hash_rows(codes), return_index=True, return_inverse=True)
    if not (codes == codes[first[which]]).all():  # two codes of one hash: sort the codes themselves
        rows = np.ascontiguousarray(codes).view(np.dtype((np.void, codes.shape[1]))).ravel()
        _, first, which = np.unique(rows, return_index=True, return_inverse=True)
    return first, which.ravel()


def hash_rows(codes: np.ndarray) -> np.ndarray:
    """A 64-bit hash (n,) uint64 of each row of codes (n, code_size) uint8; equal rows hash equal."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, size = codes.shape
    words = -(-size // 8)
    multipliers = _multipliers(words)
    hashes = np.empty(n, np.uint64)
    for start in range(0, n, _HASH_CHUNK):
        chunk = codes[start : start + _HASH_CHUNK]
        if size % 8:
            chunk = np.pad(chunk, ((0, 0), (0, words * 8 - size)))
        mixed = (chunk.view(np.uint64) * multipliers).sum(axis=1, dtype=np.uint64)  # wraps mod 2**64
        mixed ^= mixed >> np.uint64(31)
        mixed *= np.uint64(0x9E3779B97F4A7C15)
        mixed ^= mixed >> np.uint64(29)
        hashes[start : start + len(chunk)] = mixed
    return hashes


def _multipliers(words: int) -> np.ndarray:
    """Fixed odd 64-bit multipliers, one a word of a row: a row's hash is the same in every process."""
    generator = np.random.default_rng(0x5EED)
    return generator.integers(0, 2**63, words, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
