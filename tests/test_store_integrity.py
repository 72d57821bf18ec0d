"""Corruption and concurrency (issue 10, item 6) and the schema migration.

A damaged store is one line naming the file in every command (no ``sqlite3.DatabaseError``
traceback), ``store check`` finds damaged pages and unsound vectors, ``serve`` refuses to start on
a damaged store, and eight threads enrolling one name are serialised, none refused.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from speakerverify.errors import DataError, StoreBusy
from speakerverify.store import SCHEMA_VERSION, SpeakerStore
from stub_verifier import StubVerifier, tone

CLI = "from speakerverify.cli import main; main()"


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=timeout)


def _store_with_speakers(path: Path, n: int = 6) -> None:
    store = SpeakerStore(path, verifier=StubVerifier())
    for i in range(n):
        store.enroll(f"spk{i}", [tone(300 + 400 * i, seed=1), tone(300 + 400 * i, seed=2)])
    store.db.truncate_wal()
    store.close()


def _overwrite_page(path: Path, table: str) -> None:
    """Fill the root page of ``table`` with 0xFF."""
    con = sqlite3.connect(path)
    page = con.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    size = con.execute("PRAGMA page_size").fetchone()[0]
    con.close()
    with open(path, "r+b") as f:
        f.seek((page - 1) * size)
        f.write(b"\xff" * size)


def test_a_page_of_0xff_is_one_line_everywhere(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _store_with_speakers(path)
    _overwrite_page(path, "speakers")
    for args in (["speakers"], ["store", "check"], ["remove", "spk1"]):
        r = _cli(*args, "--store", str(path))
        assert r.returncode in (1, 2) and "Traceback" not in r.stderr, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert lines and all(str(path) in ln or ln.startswith("problem:") for ln in lines), (args, r.stderr)
        if args != ["store", "check"]:
            assert len(lines) == 1 and "damaged" in lines[0], (args, r.stderr)
    store = SpeakerStore(path, verifier=StubVerifier())  # the Python API: DataError naming the file
    for call in (store.speakers, lambda: store.identify(tone(300)), lambda: store.enroll("new", [tone(700)])):
        with pytest.raises(DataError, match=str(path)):
            call()
    # serve refuses to start (and so never listens)
    r = _cli("serve", "--store", str(path), "--port", "0", timeout=60)
    assert r.returncode == 2 and "damaged" in r.stderr and "Traceback" not in r.stderr


def test_a_file_that_is_not_sqlite_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"\xff" * 8192)
    for args in (["speakers"], ["store", "check"], ["identify", str(path)]):
        r = _cli(*args, "--store", str(path))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and str(path) in r.stderr


def test_store_check_finds_zeroed_nan_and_wrong_size_vectors(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    _store_with_speakers(path, 4)
    assert _cli("store", "check", "--store", str(path)).returncode == 0
    con = sqlite3.connect(path)
    con.execute("UPDATE speakers SET embedding = ? WHERE name = 'spk0'", (np.zeros(32, "<f4").tobytes(),))
    con.execute("UPDATE speakers SET embedding = ? WHERE name = 'spk1'", (np.full(32, np.nan, "<f4").tobytes(),))
    con.execute("UPDATE speakers SET embedding = ?, dim = 16 WHERE name = 'spk2'", (np.ones(16, "<f4").tobytes(),))
    con.commit()
    con.close()
    r = _cli("store", "check", "--store", str(path))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert any("spk0: speaker embedding: is zero" in ln for ln in lines)
    assert any("spk1: speaker embedding: holds NaN" in ln for ln in lines)
    assert any("spk2: speaker embedding has dimension 16" in ln for ln in lines)
    assert not any("spk3" in ln for ln in lines)


def test_eight_threads_enrolling_one_name_are_serialised(store_location: str) -> None:
    path = store_location
    shared = SpeakerStore(path, verifier=StubVerifier())
    results, errors = [], []

    def enroll(i: int) -> None:
        store = shared if i % 2 else SpeakerStore(path, verifier=StubVerifier())  # one object or several
        try:
            results.append(store.enroll("same", [(f"c{i}.wav", tone(600, seed=i))]))
        except Exception as exc:  # noqa: BLE001 - every failure is a test failure, reported below
            errors.append(exc)

    threads = [threading.Thread(target=enroll, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 8
    assert sorted(r.n_clips for r in results) == list(range(1, 9))  # each added to the one before
    assert shared.speakers()[0]["clips"] == 8 and len(shared) == 1 and shared.check_integrity() == []


def _write_lock_holder(location: str):
    """Another client holding the store's write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: the
    advisory lock); rolled back by ``holder.execute("ROLLBACK")``."""
    if location.startswith("postgresql://"):
        import psycopg

        from speakerverify.store.postgres import WRITE_LOCK

        holder = psycopg.connect(location, autocommit=True)
        holder.execute("BEGIN")
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        return holder
    holder = sqlite3.connect(location, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def test_a_lock_not_had_in_time_is_store_busy(store_location: str) -> None:
    path = store_location
    SpeakerStore(path, verifier=StubVerifier()).close()
    holder = _write_lock_holder(path)
    try:
        store = SpeakerStore(path, verifier=StubVerifier(), busy_timeout_s=0.2)
        with pytest.raises(StoreBusy, match="busy") as info:
            store.enroll("x", [tone(600)])
        assert info.value.retry_after >= 1
    finally:
        holder.execute("ROLLBACK")
    assert store.enroll("x", [tone(600)]).n_clips == 1


def test_a_schema_1_store_is_migrated_and_a_newer_one_refused(store_location: str) -> None:
    path = store_location
    store = SpeakerStore(path, verifier=StubVerifier())
    store.enroll("kept", [tone(400, seed=1), tone(400, seed=2)])
    store.close()
    store = SpeakerStore(path, verifier=StubVerifier())
    con = store.db.connection()  # what the schema-1 code wrote: no audit table, no store_id
    con.execute("DROP TABLE audit")
    con.execute("DELETE FROM meta WHERE key = 'store_id'")
    con.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    store.close()
    store = SpeakerStore(path, verifier=StubVerifier())
    assert store.db.meta("schema") == str(SCHEMA_VERSION) and store.db.meta("store_id")
    assert store.verify("kept", tone(400, seed=3)).same_speaker
    assert [e["action"] for e in store.audit_events()] == ["verify"]
    store.db.connection().execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION + 1),))
    store.close()
    r = _cli("speakers", "--store", str(path))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "newer" in r.stderr
