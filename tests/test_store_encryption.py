"""Encryption at rest (issue 10, item 3): AES-GCM blobs bound to their row, a key check that
makes a wrong or missing key one line, rekeying in one transaction."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from speakerverify.errors import DataError, StoreKeyError
from speakerverify.store import SpeakerStore
from speakerverify.store.crypto import MAGIC, parse_key, write_key_file
from speakerverify.store.keys import create_key
from stub_verifier import StubVerifier, tone

KEY = secrets.token_bytes(32)


def _enroll(path: Path, **kw) -> SpeakerStore:
    store = SpeakerStore(path, verifier=StubVerifier(), **kw)
    store.enroll("low", [tone(300, seed=1), tone(300, seed=2)])
    store.enroll("high", [tone(2000, seed=3), tone(2000, seed=4)])
    return store


def _blobs(path: Path) -> list[bytes]:
    con = sqlite3.connect(path)
    rows = con.execute("SELECT embedding FROM speakers").fetchall() + con.execute(
        "SELECT embedding FROM clips UNION ALL SELECT audio FROM clips").fetchall()
    con.close()
    return [bytes(r[0]) for r in rows]


def test_encrypted_store_gives_the_same_answers_and_stores_no_plaintext(tmp_path: Path) -> None:
    plain = _enroll(tmp_path / "plain.db")
    enc = _enroll(tmp_path / "enc.db", key=KEY)
    assert enc.encrypted and not plain.encrypted
    blobs = _blobs(tmp_path / "enc.db")
    assert len(blobs) == 10 and all(b.startswith(MAGIC) for b in blobs)
    raw = b"".join(Path(f"{tmp_path / 'enc.db'}{s}").read_bytes() for s in ("", "-wal"))
    assert b"fLaC" not in raw  # no FLAC stream in the clear
    vec = plain.speaker_vector("low")
    assert vec.tobytes() not in raw and vec.astype("<f4").tobytes() in Path(tmp_path / "plain.db-wal").read_bytes()
    np.testing.assert_array_equal(enc.speaker_vector("low"), vec)
    for probe in (tone(300, seed=9), tone(2000, seed=9)):
        assert enc.identify(probe, top=2).to_dict() == plain.identify(probe, top=2).to_dict()
        assert enc.verify("high", probe).to_dict() == plain.verify("high", probe).to_dict()
    assert enc.check_integrity() == []
    # the gallery cache holds decrypted vectors, and a fresh process's store reads them too
    again = SpeakerStore(tmp_path / "enc.db", verifier=StubVerifier(), key=KEY)
    assert again.identify(tone(300, seed=5)).speaker == "low"


def test_missing_wrong_and_unneeded_keys_are_one_line(tmp_path: Path) -> None:
    _enroll(tmp_path / "enc.db", key=KEY).close()
    _enroll(tmp_path / "plain.db").close()
    with pytest.raises(StoreKeyError, match=r"enc.db is encrypted: needs a key"):
        SpeakerStore(tmp_path / "enc.db", verifier=StubVerifier())
    with pytest.raises(StoreKeyError, match=r"enc.db is encrypted: wrong key$"):
        SpeakerStore(tmp_path / "enc.db", verifier=StubVerifier(), key=secrets.token_bytes(32))
    with pytest.raises(StoreKeyError, match=r"plain.db is not encrypted, but a key was given.*rekey"):
        SpeakerStore(tmp_path / "plain.db", verifier=StubVerifier(), key=KEY)
    with pytest.raises(StoreKeyError, match="not a 32-byte key"):
        parse_key(b"too short", "k")
    # the command line: one line, exit 2, no traceback
    code = "from speakerverify.cli import main; main()"
    for args in (["speakers"], ["speakers", "--key-file", str(write_key_file(tmp_path / "other.key"))]):
        r = subprocess.run([sys.executable, "-c", code, *args, "--store", str(tmp_path / "enc.db")],
                           capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "enc.db is encrypted" in r.stderr


def test_key_from_environment_and_key_file(store_location: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKERVERIFY_STORE_KEY", KEY.hex())
    _enroll(store_location).close()
    monkeypatch.setenv("SPEAKERVERIFY_STORE_KEY", base64.b64encode(KEY).decode())
    assert SpeakerStore(store_location, verifier=StubVerifier()).encrypted
    monkeypatch.delenv("SPEAKERVERIFY_STORE_KEY")
    key_file = tmp_path / "k"
    key_file.write_bytes(base64.urlsafe_b64encode(KEY) + b"\n")
    assert len(SpeakerStore(store_location, verifier=StubVerifier(), key_file=key_file)) == 2
    monkeypatch.setenv("SPEAKERVERIFY_STORE_KEY_FILE", str(key_file))
    assert SpeakerStore(store_location, verifier=StubVerifier()).verify("low", tone(300, seed=7)).same_speaker
    with pytest.raises(StoreKeyError, match="already exists"):
        write_key_file(key_file)


def test_blobs_swapped_between_rows_do_not_decrypt(tmp_path: Path) -> None:
    store = _enroll(tmp_path / "s.db", key=KEY)
    store.close()
    con = sqlite3.connect(tmp_path / "s.db")
    low, high = (con.execute("SELECT embedding FROM speakers WHERE name = ?", (n,)).fetchone()[0]
                 for n in ("low", "high"))
    con.execute("UPDATE speakers SET embedding = ? WHERE name = 'low'", (high,))
    con.commit()
    con.close()
    store = SpeakerStore(tmp_path / "s.db", verifier=StubVerifier(), key=KEY)
    with pytest.raises(DataError, match="does not decrypt"):
        store.verify("low", tone(2000, seed=5))
    problems = store.check_integrity()
    assert len(problems) == 1 and problems[0].startswith("low: speaker embedding") and "decrypt" in problems[0]
    assert low != high


def test_rekey_encrypts_rotates_and_decrypts(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = _enroll(path)
    create_key(store, "ops", admin=True)
    before = store.identify(tone(300, seed=9)).to_dict()
    runner = CliRunner()
    from speakerverify.cli import app

    k1, k2 = write_key_file(tmp_path / "k1"), write_key_file(tmp_path / "k2")
    r = runner.invoke(app, ["store", "rekey", "--new-key-file", str(k1), "--store", str(path)])
    assert r.exit_code == 0, r.output
    assert "10 blobs" in r.stdout and all(b.startswith(MAGIC) for b in _blobs(path))
    r = runner.invoke(app, ["store", "rekey", "--new-key-file", str(k2), "--key-file", str(k1), "--store", str(path)])
    assert r.exit_code == 0, r.output
    with pytest.raises(StoreKeyError, match="wrong key"):
        SpeakerStore(path, verifier=StubVerifier(), key_file=k1)
    s2 = SpeakerStore(path, verifier=StubVerifier(), key_file=k2)
    assert s2.identify(tone(300, seed=9)).to_dict() == before and s2.check_integrity() == []
    assert [e["action"] for e in s2.audit_events()][-3:] == ["rekey", "rekey", "identify"]
    s2.rekey(None)
    assert not any(b.startswith(MAGIC) for b in _blobs(path))
    assert SpeakerStore(path, verifier=StubVerifier()).identify(tone(300, seed=9)).to_dict() == before
    r = runner.invoke(app, ["store", "rekey", "--store", str(path)])
    assert r.exit_code == 2
