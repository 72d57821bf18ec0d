"""The speaker store: enrollment bookkeeping, outliers, model guard, re-embedding, crash safety.

These use a stub verifier (tests/stub_verifier.py) so they test storage, not model quality. Tests
taking ``store`` or ``store_location`` run once per engine (SQLite, and PostgreSQL on the session's
throwaway server: tests/conftest.py), with the same assertions; the rest are about SQLite files.
"""

from __future__ import annotations

import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from speakerverify.errors import AudioError, ModelError, SpeakerVerifyError
from speakerverify.scoring import Backend
from speakerverify.store import SpeakerNotFound, SpeakerStore, decode_flac, default_store_path, find_outliers
from stub_verifier import StubVerifier, tone

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def store(store_location: str) -> SpeakerStore:
    return SpeakerStore(store_location, verifier=StubVerifier())


def test_enroll_list_identify_remove(store: SpeakerStore) -> None:
    r = store.enroll("low", [tone(300, seed=1), tone(300, seed=2)])
    assert r.n_clips == 2 and not r.rejected
    store.enroll("high", [("a.wav", tone(2000, seed=3)), ("b.wav", tone(2000, seed=4))])
    names = [s["name"] for s in store.speakers()]
    assert names == ["high", "low"]
    assert store.model == "stub@1"
    assert all(s["audio_kept"] and s["clips"] == 2 and not s["stale"] for s in store.speakers())

    who = store.identify(tone(300, seed=9), top=2).to_dict()
    assert who["speaker"] == "low"
    assert [c["speaker"] for c in who["candidates"]] == ["low", "high"]
    assert who["candidates"][0]["score"] > who["candidates"][1]["score"]
    assert store.identify(tone(5000, seed=9)).to_dict()["speaker"] == "unknown"

    v = store.verify("high", tone(2000, seed=10)).to_dict()
    assert set(v) >= {"speaker", "score", "same_speaker", "threshold", "model"}
    assert v["same_speaker"] and v["speaker"] == "high"
    assert not store.verify("high", tone(300, seed=10)).to_dict()["same_speaker"]

    assert store.remove("low") and not store.remove("low")
    assert [s["name"] for s in store.speakers()] == ["high"]
    with pytest.raises(SpeakerNotFound):
        store.verify("low", tone(300)).to_dict()
    assert store.check_integrity() == []


def test_adding_and_replacing_clips(store: SpeakerStore) -> None:
    store.enroll("x", [tone(500, seed=1)])
    r = store.enroll("x", [tone(500, seed=2), tone(500, seed=3)])
    assert r.n_clips == 3 and not r.replaced
    r = store.enroll("x", [tone(500, seed=4)], replace=True)
    assert r.n_clips == 1 and r.replaced
    assert store.speakers()[0]["clips"] == 1
    assert store.check_integrity() == []


def test_short_unreadable_and_outlier_clips_are_reported(store: SpeakerStore, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    clips = [tone(700, seed=i) for i in range(3)] + [("odd.wav", tone(3500, seed=7)),
                                                     ("short.wav", tone(700, seconds=0.2)), junk]
    r = store.enroll("spk", clips)
    rejected = {x["file"]: x["reason"] for x in r.rejected}
    assert "too short" in rejected["short.wav"]
    assert "not a readable audio file" in rejected[str(junk)]
    assert "too unlike" in rejected["odd.wav"]
    assert r.n_clips == 3 and len(r.enrolled) == 3


def test_all_clips_bad_raises_and_writes_nothing(store: SpeakerStore) -> None:
    with pytest.raises(AudioError, match="no usable enrollment clip"):
        store.enroll("nobody", [("s.wav", tone(700, seconds=0.1))])
    assert len(store) == 0
    with pytest.raises(SpeakerVerifyError, match="no enrollment clips"):
        store.enroll("nobody", [])
    for bad in ("", "  ", "a/b", "x" * 101, "tab\there"):
        with pytest.raises(SpeakerVerifyError):
            store.enroll(bad, [tone(700)])


def test_outlier_rule() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal(64)
    same = [base + 0.3 * rng.standard_normal(64) for _ in range(4)]
    odd = rng.standard_normal(64)
    flagged, loo = find_outliers(np.stack(same + [odd]))
    assert flagged == [4] and loo[4] < loo[:4].min()
    assert find_outliers(np.stack(same))[0] == []
    assert find_outliers(np.stack(same[:2]))[0] == []  # two clips: nothing is dropped
    # never drop down to fewer than two clips or half of them
    assert len(find_outliers(np.stack([base, rng.standard_normal(64), rng.standard_normal(64)]))[0]) <= 1


def test_store_refuses_another_model_and_reembeds(store_location: str) -> None:
    path = store_location
    old = SpeakerStore(path, verifier=StubVerifier("1"))
    old.enroll("kept", [tone(400, seed=1), tone(400, seed=2)])
    SpeakerStore(path, verifier=StubVerifier("1"), keep_audio=False).enroll("lost", [tone(2500, seed=3)])

    new = SpeakerStore(path, verifier=StubVerifier("2", flip=True))
    for call in (lambda: new.identify(tone(400)).to_dict(), lambda: new.verify("kept", tone(400)).to_dict(),
                 lambda: new.enroll("x", [tone(400)])):
        with pytest.raises(ModelError, match="stub@1.*stub@2.*reembed"):
            call()

    result = new.reembed()
    assert result.reembedded == ["kept"] and result.must_reenroll == ["lost"]
    assert new.model == "stub@2"
    rows = {s["name"]: s for s in new.speakers()}
    assert not rows["kept"]["stale"] and rows["lost"]["stale"]
    assert new.identify(tone(400, seed=5)).to_dict()["speaker"] == "kept"
    assert new.identify(tone(2500, seed=5)).to_dict()["gallery"] == 1  # the stale speaker is left out
    with pytest.raises(ModelError, match="enroll the speaker again"):
        new.verify("lost", tone(2500)).to_dict()
    # re-enrolling a stale speaker replaces its old clips
    r = new.enroll("lost", [tone(2500, seed=6)])
    assert r.replaced and r.n_clips == 1
    assert new.reembed().unchanged == ["kept", "lost"]
    assert new.check_integrity() == []
    # the old model is now refused
    with pytest.raises(ModelError):
        SpeakerStore(path, verifier=StubVerifier("1")).identify(tone(400)).to_dict()


def test_kept_audio_is_flac_at_16k(store: SpeakerStore) -> None:
    wave = tone(440, seconds=1.5)
    store.enroll("a", [wave])
    blob = store.db.connection().execute("SELECT audio FROM clips").fetchone()[0]
    assert blob[:4] == b"fLaC"
    back = decode_flac(blob)
    assert back.shape == wave.shape and np.max(np.abs(back - wave)) < 1e-3


def test_bad_store_files(tmp_path: Path) -> None:  # SQLite files only
    notdb = tmp_path / "x.db"
    notdb.write_bytes(b"hello, I am not a database" * 100)
    with pytest.raises(SpeakerVerifyError, match="x.db"):
        SpeakerStore(notdb, verifier=StubVerifier())
    with pytest.raises(SpeakerVerifyError, match="directory"):
        SpeakerStore(tmp_path, verifier=StubVerifier())


def test_default_store_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPEAKERVERIFY_STORE", str(tmp_path / "env.db"))
    assert default_store_path() == tmp_path / "env.db"
    monkeypatch.delenv("SPEAKERVERIFY_STORE")
    assert default_store_path() == Path.home() / ".local/share/speakerverify/speakers.db"
    monkeypatch.setenv("SPEAKERVERIFY_STORE", "postgresql://sv@db.example/speakers")
    assert default_store_path() == "postgresql://sv@db.example/speakers"


_CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from stub_verifier import StubVerifier, tone
    from speakerverify.store import SpeakerStore

    store = SpeakerStore({db!r}, verifier=StubVerifier())
    i = len(store)
    while True:
        n = i % 4 + 1                      # speaker i has n clips
        store.enroll(f"spk-{{i:05d}}-{{n}}", [tone(200 + 37 * i, seconds=3.0, seed=i * 10 + k) for k in range(n)])
        print(i, flush=True)               # committed
        i += 1
""")


def _expected_clips(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def test_kill_9_during_enrollment_loses_nothing(store_location: str) -> None:
    db = store_location
    code = _CHILD.format(tests=str(TESTS), db=db)
    committed: set[str] = set()
    rng = np.random.default_rng(0)
    for round_ in range(6):
        child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert child.stdout is not None
        lines = []
        deadline = time.monotonic() + 60
        while len(lines) < 3 and time.monotonic() < deadline:  # let it commit a few first
            line = child.stdout.readline()
            if not line:
                break
            lines.append(line)
        time.sleep(float(rng.uniform(0.0, 0.15)))  # then kill it at some point mid-loop
        child.send_signal(signal.SIGKILL)
        rest, _ = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, f"round {round_}: child ended on its own"
        for line in lines + rest.splitlines():
            i = int(line)
            committed.add(f"spk-{i:05d}-{i % 4 + 1}")
        assert len(lines) >= 3, f"round {round_}: child committed too little before the kill"

        if not db.startswith("postgresql://"):
            con = sqlite3.connect(db)
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            con.close()
        store = SpeakerStore(db, verifier=StubVerifier())
        assert store.check_integrity() == []
        stored = {s["name"]: s["clips"] for s in store.speakers()}
        assert committed <= set(stored), f"lost committed speakers: {sorted(committed - set(stored))}"
        for name, clips in stored.items():  # complete: every stored speaker has all its clips
            assert clips == _expected_clips(name), f"{name}: {clips} clips"
        store.close()
    assert len(committed) >= 18


def test_two_unlike_clips_warn_but_enroll(store: SpeakerStore) -> None:
    r = store.enroll("pair", [tone(300, seed=1), tone(3000, seed=2)])
    assert r.n_clips == 2 and not r.rejected
    assert r.warnings and "below the model's threshold" in r.warnings[0]


def test_identify_sees_changes_made_elsewhere(store_location: str) -> None:
    """The in-memory gallery follows writes by other store objects (other processes)."""
    reader = SpeakerStore(store_location, verifier=StubVerifier())
    writer = SpeakerStore(store_location, verifier=StubVerifier())
    writer.enroll("a", [tone(300, seed=1)])
    assert reader.identify(tone(300, seed=2)).to_dict()["speaker"] == "a"
    writer.enroll("b", [tone(1500, seed=1)])
    assert reader.identify(tone(1500, seed=2)).to_dict()["speaker"] == "b"
    writer.enroll("a", [tone(3000, seed=1)], replace=True)  # a's voice changes
    assert reader.identify(tone(3000, seed=2)).to_dict()["speaker"] == "a"
    assert reader.identify(tone(300, seed=2)).to_dict()["speaker"] == "unknown"
    writer.remove("b")
    who = reader.identify(tone(1500, seed=2)).to_dict()
    assert who["gallery"] == 1 and who["speaker"] == "unknown"


def test_identify_of_a_calibrated_model_raises_its_bar_with_the_gallery(store_location: str):
    # llr = 10 s - 5: the best of N candidates is accepted when its llr >= ln(N / r), r the stranger
    # rate (1 % unless given), i.e. at score (ln(N / r) + 5) / 10; a fixed FAR point ignores N.
    v = StubVerifier()
    v.backend = Backend({"calibration": {"a": 10.0, "b": -5.0}, "thresholds": {"eer": 0.5, "far": {"0.01": 0.9}}})
    store = SpeakerStore(store_location, verifier=v)
    probe = tone(300, seed=9)
    thresholds = []
    for n, freq in enumerate([300, 2000, 900, 4000], start=1):
        store.enroll(f"s{freq}", [tone(freq, seed=1), tone(freq, seed=2)])
        r = store.identify(probe, top=n).to_dict()
        assert r["gallery"] == n and r["threshold"] == pytest.approx((math.log(n / 0.01) + 5) / 10)
        even_odds = store.identify(probe, top=n, stranger_rate=1.0).to_dict()
        assert even_odds["threshold"] == pytest.approx((math.log(n) + 5) / 10)
        best = r["candidates"][0]
        assert best["speaker"] == "s300" and best["same_speaker"] == (best["score"] >= r["threshold"])
        assert [c["same_speaker"] for c in r["candidates"]] == [c["score"] >= r["threshold"] for c in r["candidates"]]
        thresholds.append(r["threshold"])
        assert store.identify(probe, far=0.01).to_dict()["threshold"] == pytest.approx(0.9)
    assert thresholds == sorted(thresholds) and thresholds[0] < thresholds[-1]


def test_large_gallery_index_is_updated_in_place(store_location: str, monkeypatch):
    # With the IVF cut-off lowered, a 25-speaker gallery gets an IVF index; enrolling or removing
    # one speaker then changes that index in place instead of building (and training) a new one.
    import speakerverify.store.index as search

    monkeypatch.setattr(search, "IVF_MIN", 20)
    store = SpeakerStore(store_location, verifier=StubVerifier())
    freqs = [125 + 250 * k for k in range(27)]  # one stub spectrum bin each
    for f in freqs[:25]:
        store.enroll(f"s{f}", [tone(f, seed=1)])
    assert store.identify(tone(freqs[3], seed=5)).to_dict()["candidates"][0]["speaker"] == f"s{freqs[3]}"
    first = store.galleries.current.index
    assert first.kind == "faiss-ivf"
    store.enroll(f"s{freqs[25]}", [tone(freqs[25], seed=1)])
    assert store.identify(tone(freqs[25], seed=5)).to_dict()["candidates"][0]["speaker"] == f"s{freqs[25]}"
    store.remove(f"s{freqs[3]}")
    who = store.identify(tone(freqs[3], seed=5), top=30).to_dict()
    assert f"s{freqs[3]}" not in [c["speaker"] for c in who["candidates"]] and who["gallery"] == 25
    assert store.galleries.current.index is first and len(first) == 25
    # Another process's store (no shared index) builds its own and agrees.
    other = SpeakerStore(store_location, verifier=StubVerifier())
    assert other.identify(tone(freqs[25], seed=6)).to_dict()["candidates"][0]["speaker"] == f"s{freqs[25]}"


def test_enrollment_policy_without_a_database() -> None:
    from speakerverify.store.enrollment import select_clips, speaker_embedding

    rng = np.random.default_rng(1)
    base = rng.standard_normal(32)
    same = [base + 0.3 * rng.standard_normal(32) for _ in range(4)]
    odd = rng.standard_normal(32)

    def cos(a, b):
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    sel = select_clips(same[:1], [*same[1:], odd], ["b", "c", "d", "odd"], threshold=0.5, score=cos)
    assert sel.keep == [0, 1, 2] and [r["file"] for r in sel.rejected] == ["odd"] and not sel.warnings
    np.testing.assert_allclose(sel.embedding, speaker_embedding(np.stack(same)), atol=1e-6)
    # The model would accept the odd clip (threshold below its score): it stays.
    assert select_clips([], [*same, odd], list("abcde"), threshold=-1.0, score=cos).keep == [0, 1, 2, 3, 4]
    two = select_clips([], [base, -base], ["a", "b"], threshold=0.5, score=cos)
    assert two.keep == [0, 1] and "below the model's threshold" in two.warnings[0]
