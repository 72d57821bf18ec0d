from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import soundfile as sf

from speakerverify.data import (
    from_folder,
    from_kaldi,
    from_manifest,
    from_seed_pickle,
    load_array_pickle,
    manifest_hash,
    read_trials,
)
from speakerverify.errors import DataError


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/speakerverify-pwned",))


def test_unpickler_refuses_code(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(DataError, match="refused"):
        load_array_pickle(path)
    assert not os.path.exists("/tmp/speakerverify-pwned")


def test_unpickler_loads_arrays(tmp_path):
    arr = np.random.default_rng(0).normal(size=(20, 160)).astype(np.float32)
    path = tmp_path / "trs.pkl"
    path.write_bytes(pickle.dumps(arr))
    np.testing.assert_array_equal(load_array_pickle(path), arr)
    utts = from_seed_pickle(path)
    assert len(utts) == 20 and utts[9].speaker == utts[0].speaker != utts[10].speaker


def test_seed_protocol_pickles(shared_data):
    utts = from_seed_pickle(shared_data / "seed-protocol" / "tes.pkl")
    assert len(utts) == 200 and utts[0].wave.shape == (16000,)
    names = (shared_data / "seed-protocol" / "tes_speakers.txt").read_text().split()
    assert [u.speaker for u in utts[::10]] == names


def test_manifest_splits(shared_data):
    manifest = shared_data / "corpora" / "libri-train-clean" / "manifest.csv"
    train, test = from_manifest(manifest, ["train"]), from_manifest(manifest, ["test"])
    assert train and test
    assert not {u.speaker for u in train} & {u.speaker for u in test}
    assert all(u.path.is_file() for u in train[:5])
    assert manifest_hash(train) == manifest_hash(list(reversed(train))) != manifest_hash(test)


def test_folder_and_kaldi(tmp_path):
    rng = np.random.default_rng(0)
    for spk in ("alice", "bob"):
        (tmp_path / "audio" / spk).mkdir(parents=True)
        for k in range(2):
            sf.write(tmp_path / "audio" / spk / f"{k}.wav", rng.normal(0, 0.1, 1600).astype(np.float32), 16000)
    utts = from_folder(tmp_path / "audio")
    assert sorted({u.speaker for u in utts}) == ["alice", "bob"] and len(utts) == 4
    kaldi = tmp_path / "kaldi"
    kaldi.mkdir()
    (kaldi / "wav.scp").write_text("".join(f"u{i} {u.path}\n" for i, u in enumerate(utts)))
    (kaldi / "utt2spk").write_text("".join(f"u{i} {u.speaker}\n" for i, u in enumerate(utts)))
    assert [u.speaker for u in from_kaldi(kaldi)] == [u.speaker for u in utts]
    (kaldi / "wav.scp").write_text("u0 sox a.wav -t wav - |\n")
    with pytest.raises(DataError, match="piped"):
        from_kaldi(kaldi)


def test_trial_list(shared_data, tmp_path):
    trials = read_trials(shared_data / "trials" / "libri-train-clean-dev.txt")
    assert len(trials) == 542 and sum(t.label for t in trials) == 242
    bad = tmp_path / "bad.txt"
    bad.write_text("2 a b\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_trials(bad)
