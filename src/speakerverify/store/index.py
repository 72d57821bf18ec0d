"""Nearest-speaker search over enrolled embeddings (inner product of unit vectors = cosine).

* :class:`ExactIndex` -- numpy matrix product; exact, no extra memory, best for small galleries.
* :class:`FaissFlatIndex` -- faiss ``IndexFlatIP``; exact, the same results as numpy. Measured
  no faster than numpy for one query at a time on one thread, and it holds a second copy of the
  vectors, so it is only used when asked for.
* :class:`FaissIVFIndex` -- faiss ``IndexIVFFlat`` (``nlist`` = sqrt(n) cells, probes 64);
  approximate, for galleries where exact search gets slow.

:func:`build_index` picks numpy up to ``IVF_MIN`` speakers and IVF above; the cut-off comes from
``scripts/bench_search.py`` (``docs/bench-search.md``): exact search costs about 6-7 ms per query at
100k speakers and 50 ms at 1M on this machine, against 1-2 ms for IVF at 1M with recall@1 1.0.
Every index ranks by inner product; callers re-score the shortlist with the model's own scoring, so
the approximate index only has to get the right speaker into the shortlist.
"""

from __future__ import annotations

import threading
from typing import Protocol

import numpy as np

#: Galleries from this size use an IVF index (approximate); smaller ones exact numpy search.
IVF_MIN = 200_000
EXACT_MAX = IVF_MIN - 1


class Index(Protocol):
    kind: str

    def __len__(self) -> int: ...

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, row indices) per query, best first; indices -1 pad short rows."""
        ...


def _as_queries(queries: np.ndarray, dim: int) -> np.ndarray:
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if q.shape[1] != dim:
        raise ValueError(f"query dimension {q.shape[1]} does not match the gallery's {dim}")
    return q


def _pad(scores: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] == k:
        return scores, idx
    n = scores.shape[0]
    s = np.full((n, k), -np.inf, dtype=np.float32)
    i = np.full((n, k), -1, dtype=np.int64)
    s[:, : scores.shape[1]] = scores
    i[:, : idx.shape[1]] = idx
    return s, i


class ExactIndex:
    kind = "numpy"

    def __init__(self, matrix: np.ndarray) -> None:
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = _as_queries(queries, self.matrix.shape[1])
        n = len(self)
        kk = min(k, n)
        if kk == 0:
            return _pad(np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64), k)
        sims = q @ self.matrix.T
        if kk < n:
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(np.arange(n), (len(q), n))
        part_scores = np.take_along_axis(sims, part, axis=1)
        # Sort by score, ties by row index (faiss breaks ties the same way).
        order = np.lexsort((part, -part_scores), axis=1)
        idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
        return _pad(np.take_along_axis(sims, idx, axis=1), idx, k)


class FaissFlatIndex:
    kind = "faiss-flat"

    def __init__(self, matrix: np.ndarray) -> None:
        import faiss

        m = np.ascontiguousarray(matrix, dtype=np.float32)
        self.dim = m.shape[1]
        self.index = faiss.IndexFlatIP(self.dim)
        self.index.add(m)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        scores, idx = self.index.search(_as_queries(queries, self.dim), k)
        return scores.astype(np.float32), idx.astype(np.int64)


class FaissIVFIndex:
    """IVF over rows that carry stable ids (``ids``, ascending; row positions by default).

    ``search`` answers row positions like the other indexes. :meth:`update` removes and adds rows
    by id in place, keeping the trained cells, so a store of a million speakers does not retrain
    and refill the index (about 20 s here) for every enrollment."""

    kind = "faiss-ivf"

    def __init__(self, matrix: np.ndarray, nlist: int | None = None, nprobe: int = 64,
                 train_size: int | None = None, seed: int = 0, ids: np.ndarray | None = None) -> None:
        import faiss

        m = np.ascontiguousarray(matrix, dtype=np.float32)
        self.dim = m.shape[1]
        n = m.shape[0]
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if len(self.ids) != n or np.any(np.diff(self.ids) <= 0):
            raise ValueError("ids must be ascending and one per row")
        nlist = nlist or max(1, min(4096, int(np.sqrt(n))))
        train_size = train_size or max(50_000, 40 * nlist)
        quantizer = faiss.IndexFlatIP(self.dim)
        self.index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        sample = m if n <= train_size else m[rng.choice(n, train_size, replace=False)]
        self.index.train(sample)
        self.index.add_with_ids(m, self.ids)
        self.index.nprobe = min(nprobe, nlist)
        self._quantizer = quantizer  # faiss does not own it from Python
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def update(self, ids: np.ndarray, remove: np.ndarray, add_ids: np.ndarray, add_vectors: np.ndarray) -> None:
        """Drop the rows ``remove`` (ids), add ``add_vectors`` under ``add_ids``; ``ids`` is the
        full ascending id list afterwards (an updated row is removed and added again)."""
        with self._lock:
            remove = np.asarray(remove, dtype=np.int64)
            if remove.size:
                self.index.remove_ids(remove)
            if len(add_ids):
                self.index.add_with_ids(np.ascontiguousarray(add_vectors, dtype=np.float32),
                                        np.asarray(add_ids, dtype=np.int64))
            self.ids = np.asarray(ids, dtype=np.int64)
            if int(self.index.ntotal) != len(self.ids):
                raise RuntimeError(f"index holds {self.index.ntotal} rows, the gallery {len(self.ids)}")

    def search_ids(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, row ids); -1 pads short rows."""
        with self._lock:  # faiss does not allow a search during remove/add
            scores, found = self.index.search(_as_queries(queries, self.dim), k)
        return scores.astype(np.float32), found.astype(np.int64)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return positions_of(*self.search_ids(queries, k), self.ids)


def positions_of(scores: np.ndarray, found: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map row ids that a search found to positions in ``ids`` (ascending); ids not there become -1,
    so a search against an index updated since ``ids`` was taken cannot point at the wrong row."""
    pos = np.searchsorted(ids, found).clip(0, max(0, len(ids) - 1))
    ok = (found >= 0) & (ids[pos] == found) if len(ids) else np.zeros(found.shape, bool)
    return np.where(ok, scores, -np.inf).astype(np.float32), np.where(ok, pos, -1).astype(np.int64)


def build_index(matrix: np.ndarray, kind: str | None = None, ids: np.ndarray | None = None) -> Index:
    """An index over the rows of ``matrix`` (unit vectors); ``kind`` forces numpy, flat or ivf;
    ``ids`` (ascending, one per row) lets an IVF index be updated in place later."""
    n = int(np.asarray(matrix).shape[0])
    if kind is None:
        kind = "numpy" if n < IVF_MIN else "faiss-ivf"
    if kind in ("numpy", "exact"):
        return ExactIndex(matrix)
    if kind in ("faiss-flat", "flat"):
        return FaissFlatIndex(matrix)
    if kind in ("faiss-ivf", "ivf"):
        return FaissIVFIndex(matrix, ids=ids)
    raise ValueError(f"unknown index kind {kind!r}: use numpy, faiss-flat or faiss-ivf")
