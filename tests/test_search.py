"""Search indexes: numpy and faiss agree; the IVF index finds (nearly) the same neighbours."""

from __future__ import annotations

import numpy as np
import pytest

from speakerverify.scoring import l2_normalize
from speakerverify.search import IVF_MIN, ExactIndex, FaissFlatIndex, FaissIVFIndex, build_index


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
