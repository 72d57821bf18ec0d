"""Search indexes: numpy and faiss agree; the IVF index finds (nearly) the same neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from speakerverify.scoring import l2_normalize
from speakerverify.store.index import IVF_MIN, ExactIndex, FaissFlatIndex, FaissIVFIndex, build_index, positions_of


def _gallery(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    return l2_normalize(np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32))


def test_numpy_and_faiss_flat_agree() -> None:
    g = _gallery(3000)
    q = _gallery(20, seed=1)
    s1, i1 = ExactIndex(g).search(q, 10)
    s2, i2 = FaissFlatIndex(g).search(q, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    assert np.all(np.diff(s1, axis=1) <= 1e-7)  # best first


def test_k_larger_than_gallery_is_padded() -> None:
    g = _gallery(3)
    for index in (ExactIndex(g), FaissFlatIndex(g)):
        s, i = index.search(g[:1], 5)
        assert i.shape == (1, 5) and i[0, 0] == 0 and list(i[0, 3:]) == [-1, -1]
    s, i = ExactIndex(np.zeros((0, 8), np.float32)).search(np.ones(8, np.float32), 2)
    assert list(i[0]) == [-1, -1]


def test_ivf_finds_the_true_neighbour() -> None:
    g = _gallery(20000, dim=32)
    rng = np.random.default_rng(2)
    rows = rng.choice(len(g), 50, replace=False)
    q = l2_normalize(g[rows] + 0.05 * rng.standard_normal((50, 32)).astype(np.float32))
    _, exact = ExactIndex(g).search(q, 1)
    _, approx = FaissIVFIndex(g, nlist=128, nprobe=16).search(q, 1)
    assert np.mean(exact[:, 0] == approx[:, 0]) >= 0.95
    assert np.mean(exact[:, 0] == rows) == 1.0


def test_build_index_picks_by_size() -> None:
    assert build_index(_gallery(10)).kind == "numpy"
    assert build_index(_gallery(10), kind="faiss-flat").kind == "faiss-flat"
    assert IVF_MIN >= 10_000
    with pytest.raises(ValueError):
        build_index(_gallery(10), kind="nope")
    with pytest.raises(ValueError, match="dimension"):
        ExactIndex(_gallery(10)).search(np.ones(3, np.float32), 1)


def test_ivf_updated_in_place_matches_a_fresh_index() -> None:
    # Rows carry ids (gaps, like database ids); remove some, change some, add some: the updated
    # index must find what an index built afresh on the final rows finds.
    g = _gallery(3000, dim=32)
    ids = np.arange(3000, dtype=np.int64) * 3 + 7
    index = FaissIVFIndex(g, nlist=32, nprobe=32, ids=ids)  # nprobe = nlist: exhaustive, comparable
    gone, changed = ids[[5, 100, 2999]], ids[[10, 11]]
    new_ids = np.array([ids[-1] + 3, ids[-1] + 6])
    final = {int(i): v for i, v in zip(ids, g, strict=True) if i not in gone}
    fresh_vectors = _gallery(4, dim=32, seed=5)
    for i, v in zip([*changed, *new_ids], fresh_vectors, strict=True):
        final[int(i)] = v
    final_ids = np.array(sorted(final), dtype=np.int64)
    index.update(final_ids, np.concatenate([gone, changed]), np.concatenate([changed, new_ids]), fresh_vectors)
    matrix = np.stack([final[int(i)] for i in final_ids])
    assert len(index) == len(final_ids) == 3000 - 3 + 2
    q = np.concatenate([fresh_vectors, _gallery(20, dim=32, seed=6)])
    s1, i1 = ExactIndex(matrix).search(q, 5)
    s2, i2 = index.search(q, 5)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-5)
    # A search against ids taken before the update never points at a row it did not have.
    _, stale = positions_of(*index.search_ids(fresh_vectors[2:], 1), ids)
    assert list(stale[:, 0]) == [-1, -1]
