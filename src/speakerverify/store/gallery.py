"""The gallery: enrolled speakers of one model as a search index, cached and kept up to date.

Any process's write bumps the store's generation; the next search reads only the new or updated
speakers' embeddings. A large (IVF) index is updated in place when under a tenth of the gallery
changed, instead of being retrained and refilled (:mod:`speakerverify.store.index`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from speakerverify.store import index as search
from speakerverify.store.codecs import from_blob
from speakerverify.store.crypto import Cipher
from speakerverify.store.db import Database


@dataclass
class Gallery:
    generation: str
    model: str
    names: list[str]
    matrix: np.ndarray
    index: search.Index
    rows: dict[int, tuple[str, float, np.ndarray]]  # speaker id -> (name, updated, embedding)
    ids: np.ndarray  # speaker ids, ascending, one per row of ``matrix``

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Row positions of the top ``k`` (-1 pads). An IVF index is shared with newer galleries
        (updated in place), so it answers speaker ids and this gallery maps them to its own rows."""
        if hasattr(self.index, "search_ids"):
            return search.positions_of(*self.index.search_ids(query, k), self.ids)[1][0]
        return self.index.search(query, k)[1][0]


class GalleryCache:
    """The latest :class:`Gallery` of a store (``current``), rebuilt or updated on demand; it holds
    the decrypted vectors (``cipher`` opens the stored ones)."""

    def __init__(self, db: Database, cipher: Cipher) -> None:
        self.db = db
        self.cipher = cipher
        self.current: Gallery | None = None
        self._lock = threading.Lock()

    def now(self, model: str) -> Gallery:
        """The enrolled speakers of ``model``, brought up to date when the store changed."""
        gen = self.db.meta("generation") or "0"
        with self._lock:
            g = self.current
            if g is not None and g.generation == gen and g.model == model:
                return g
            prev = g.rows if g is not None and g.model == model else {}
            with self.db.snapshot() as con:  # one consistent snapshot for the reads below
                gen = self.db.meta("generation") or "0"
                listing = con.execute("SELECT id, name, updated FROM speakers WHERE model = ? ORDER BY id",
                                      (model,)).fetchall()
                need = [sid for sid, _, upd in listing if sid not in prev or prev[sid][1] != upd]
                fetched: dict[int, np.ndarray] = {}
                for start in range(0, len(need), 500):
                    chunk = need[start:start + 500]
                    marks = ",".join("?" * len(chunk))
                    for sid, dim, blob in con.execute(
                            f"SELECT id, dim, embedding FROM speakers WHERE id IN ({marks})", chunk):
                        fetched[sid] = from_blob(self.cipher.open(blob, "speakers", "embedding", sid), dim)
            rows = {sid: (name, upd, fetched[sid] if sid in fetched else prev[sid][2]) for sid, name, upd in listing}
            names = [r[0] for r in rows.values()]
            vectors = [r[2] for r in rows.values()]
            dim = vectors[0].size if vectors else 1
            matrix = np.stack(vectors) if vectors else np.zeros((0, dim), np.float32)
            ids = np.array(list(rows), dtype=np.int64)
            index = _updated_index(g if prev else None, rows, fetched, ids)
            if index is None:
                index = search.build_index(matrix, ids=ids)
            self.current = Gallery(gen, model, names, matrix, index, rows, ids)
            return self.current


def _updated_index(g: Gallery | None, rows: dict, fetched: dict[int, np.ndarray],
                   ids: np.ndarray) -> search.Index | None:
    """The previous gallery's IVF index changed in place when only a few speakers changed and
    the gallery is still IVF-sized; None means build afresh."""
    if g is None or not isinstance(g.index, search.FaissIVFIndex) or len(ids) < search.IVF_MIN:
        return None
    gone = [sid for sid in g.rows if sid not in rows]
    if len(gone) + len(fetched) > max(1, len(ids) // 10):
        return None  # many changes: a fresh index fits the new gallery's cells better
    changed = sorted(fetched)
    g.index.update(ids, np.array(gone + [sid for sid in changed if sid in g.rows], dtype=np.int64),
                   np.array(changed, dtype=np.int64),
                   np.stack([fetched[sid] for sid in changed]) if changed else np.zeros((0, 1), np.float32))
    return g.index
