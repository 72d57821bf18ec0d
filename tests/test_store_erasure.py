"""Erasure that erases (issue 10, item 2) and private store files (item 3).

A removed speaker's stored audio (the FLAC blob) and embeddings (speaker and clip vectors, as
stored) are searched for, byte by byte, in the database file, its WAL and its journal. Two
controls show the search finds them when either measure is missing: ``secure_delete`` off (the
deleted pages keep their bytes in the file), or the WAL left untruncated (it keeps the pages the
enrollment wrote).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from model_helpers import pick_speakers
from speakerverify.store import SpeakerStore, db
from stub_verifier import StubVerifier, tone


def _secrets_of(store: SpeakerStore, name: str) -> list[bytes]:
    """Byte strings only this speaker's stored data contains: 256-byte pieces of each kept FLAC
    blob (start, middle, end) and every embedding blob, as stored."""
    con = store.db.connection()
    sid = con.execute("SELECT id FROM speakers WHERE name = ?", (name,)).fetchone()[0]
    needles = [con.execute("SELECT embedding FROM speakers WHERE id = ?", (sid,)).fetchone()[0]]
    for emb, audio in con.execute("SELECT embedding, audio FROM clips WHERE speaker_id = ?", (sid,)):
        needles.append(emb)
        assert audio is not None and len(audio) > 4096
        needles += [audio[k:k + 256] for k in (64, len(audio) // 2, len(audio) - 300)]
    return [bytes(n) for n in needles]


def _found(path: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for suffix in ("", "-wal", "-journal", "-shm"):
        f = Path(str(path) + suffix)
        if f.exists():
            data = f.read_bytes()
            hits += [f"{f.name}: needle {i}" for i, n in enumerate(needles) if n in data]
    return hits


def _enroll_two(path: Path, clips: list[Path], other: list[Path]) -> tuple[SpeakerStore, list[bytes]]:
    store = SpeakerStore(path, verifier=StubVerifier())
    store.enroll("gone", clips)
    store.enroll("stays", other)
    return store, _secrets_of(store, "gone")


def test_removed_speaker_leaves_no_audio_or_embedding_in_db_wal_or_journal(
        tmp_path: Path, test_speaker_clips: dict[str, list[Path]]) -> None:
    (_, clips), (_, other) = pick_speakers(test_speaker_clips, 2)
    path = tmp_path / "s.db"
    store, needles = _enroll_two(path, clips[:3], other[:3])
    assert _found(path, needles)  # the search finds them while the speaker is enrolled
    assert store.remove("gone")
    assert _found(path, needles) == []  # right after the removal, the store still open
    store.close()
    assert _found(path, needles) == []
    survivor = SpeakerStore(path, verifier=StubVerifier())
    assert [s["name"] for s in survivor.speakers()] == ["stays"] and survivor.check_integrity() == []


def test_without_secure_delete_the_removed_audio_stays_in_the_file(
        tmp_path: Path, test_speaker_clips: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db, "SECURE_DELETE", "OFF")
    (_, clips), (_, other) = pick_speakers(test_speaker_clips, 2)
    path = tmp_path / "s.db"
    store, needles = _enroll_two(path, clips[:3], other[:3])
    store.remove("gone")
    assert os.path.getsize(str(path) + "-wal") == 0  # the WAL was truncated...
    assert any(h.startswith("s.db:") for h in _found(path, needles))  # ...but the file keeps the bytes


def test_without_truncating_the_wal_the_removed_audio_stays_in_it(
        tmp_path: Path, test_speaker_clips: dict[str, list[Path]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db.SqliteDatabase, "truncate_wal", lambda self: None)
    (_, clips), (_, other) = pick_speakers(test_speaker_clips, 2)
    path = tmp_path / "s.db"
    store, needles = _enroll_two(path, clips[:3], other[:3])
    store.remove("gone")
    assert any(h.startswith("s.db-wal:") for h in _found(path, needles))


def test_replacing_clips_and_dropping_kept_audio_erase_too(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SpeakerStore(path, verifier=StubVerifier())
    store.enroll("x", [tone(500, seconds=3, seed=1), tone(500, seconds=3, seed=2)])
    old = _secrets_of(store, "x")
    store.enroll("x", [tone(500, seconds=3, seed=3)], replace=True)
    assert _found(path, old) == []
    kept = _secrets_of(store, "x")[2:]  # the new clip's audio pieces
    assert store.set_keep_audio(False) == 1
    assert _found(path, kept) == [] and store.settings()["clips_with_audio"] == 0
    r = store.enroll("y", [tone(900, seed=4)])
    assert r.n_clips == 1 and store.speakers()[1]["audio_kept"] is False  # the setting wins
    reopened = SpeakerStore(path, verifier=StubVerifier(), keep_audio=True)
    assert reopened.keep_audio is False
    reopened.set_keep_audio(True)
    assert SpeakerStore(path, verifier=StubVerifier()).keep_audio is True


def test_new_store_files_are_0600_and_new_folders_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    before = stat.S_IMODE(os.stat(tmp_path).st_mode)
    try:
        path = tmp_path / "new" / "deeper" / "s.db"
        store = SpeakerStore(path, verifier=StubVerifier())
        store.enroll("a", [tone(400, seed=1)])
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert all(f.exists() for f in files)
        for f in files:
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
        for d in (tmp_path / "new", tmp_path / "new" / "deeper"):
            assert stat.S_IMODE(os.stat(d).st_mode) == 0o700, d
        assert stat.S_IMODE(os.stat(tmp_path).st_mode) == before  # existing folders are left alone
    finally:
        os.umask(old)
