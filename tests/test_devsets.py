"""train.devsets helpers: seeded short crops of dev recordings and the per-speaker choice."""

from __future__ import annotations

import numpy as np

from speakerverify.data import Utterance
from speakerverify.train.devsets import per_speaker_choice, short_crops


def test_short_crops_are_seeded_slices_and_telephone_band_changes_them() -> None:
    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (40000, 16000, 9000)]
    clean = short_crops(waves, 1.0, seed=3, telephone_band=False)
    assert [len(c) for c in clean] == [16000, 16000, 9000]  # a shorter wave is kept whole
    for w, c in zip(waves, clean, strict=True):  # each crop is a contiguous piece of its wave
        start = int(np.flatnonzero(w == c[0])[0])
        np.testing.assert_array_equal(w[start:start + len(c)], c)
    again = short_crops(waves, 1.0, seed=3, telephone_band=False)
    assert all(np.array_equal(a, b) for a, b in zip(clean, again, strict=True))
    tel = short_crops(waves, 1.0, seed=3)
    assert [len(t) for t in tel] == [len(c) for c in clean]
    assert not np.allclose(tel[0], clean[0], atol=1e-3)  # band-limited and re-quantised


def test_per_speaker_choice_caps_each_speaker_and_keeps_order() -> None:
    utts = [Utterance(f"{s}-{i}", s) for s in ("b", "a", "c") for i in range(5 if s != "c" else 1)]
    chosen = per_speaker_choice(utts, 2, seed=1)
    assert [u.speaker for u in chosen] == ["b", "b", "a", "a", "c"]  # first-seen order, at most 2 each
    for spk in "ba":
        keys = [u.key for u in chosen if u.speaker == spk]
        assert keys == sorted(keys)  # listed order within a speaker
    assert per_speaker_choice(utts, 2, seed=1) == chosen
    assert any(per_speaker_choice(utts, 2, seed=s) != chosen for s in range(2, 10))
