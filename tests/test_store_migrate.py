"""`store migrate SRC DST`: a whole store copied between engines, ids and ciphertext kept, all or
nothing, into empty stores only. PostgreSQL cases use the session's throwaway server
(tests/conftest.py) and skip with its reason where there is none."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from cli_helpers import one_line_error
from speakerverify import cli
from speakerverify.errors import DataError
from speakerverify.store import SpeakerStore
from speakerverify.store import migrate as migration
from speakerverify.store.crypto import write_key_file
from speakerverify.store.keys import create_key, list_keys
from stub_verifier import StubVerifier, tone

SRC = Path(__file__).resolve().parents[1] / "src"
PAIRS = [("sqlite", "postgresql"), ("postgresql", "sqlite"), ("sqlite", "sqlite")]


@pytest.fixture
def location(request: pytest.FixtureRequest, tmp_path: Path):
    """``location(engine)``: a new, empty store location on that engine."""
    n = iter(range(100))

    def make(engine: str) -> str:
        if engine == "postgresql":
            return request.getfixturevalue("pg_cluster").new_database()
        return str(tmp_path / f"s{next(n)}.db")

    return make


def _filled(where: str, key_file: Path | None) -> SpeakerStore:
    s = SpeakerStore(where, verifier=StubVerifier(), key_file=key_file, actor="cli:test")
    s.enroll("low", [tone(300, seed=1), tone(300, seed=2)])
    s.enroll("high", [("a.wav", tone(2000, seed=3))])
    s.enroll("gone", [tone(900, seed=5)])
    assert s.remove("gone")  # ids with a gap, and audit records of a removal
    create_key(s, "ops", admin=True)
    s.identify(tone(300, seed=9))
    return s


def _state(s: SpeakerStore) -> dict:
    return {"speakers": [{k: v for k, v in r.items()} for r in s.speakers()],
            "vectors": {n: s.speaker_vector(n).tolist() for n in ("low", "high")},
            "keys": list_keys(s), "settings": {k: v for k, v in s.settings().items() if k != "store"},
            "audit": [(e["actor"], e["action"], e["speaker"], e["outcome"]) for e in s.audit_events()]}


@pytest.mark.parametrize(("src_engine", "dst_engine"), PAIRS)
def test_an_encrypted_store_moves_with_everything_and_keeps_working(location, tmp_path: Path,
                                                                    src_engine: str, dst_engine: str) -> None:
    key = write_key_file(tmp_path / "store.key")
    src_url, dst_url = location(src_engine), location(dst_engine)
    src = _filled(src_url, key)
    before = _state(src)

    result = migration.migrate(src_url, dst_url, actor="cli:test")
    assert result.rows == {"speakers": 2, "clips": 3, "api_keys": 1, "audit": len(before["audit"])}

    dst = SpeakerStore(dst_url, verifier=StubVerifier(), key_file=key)
    after = _state(dst)
    assert after["audit"][:-1] == before["audit"]
    assert after["audit"][-1][:2] == ("cli:test", "store-migrate") and str(src.path) in after["audit"][-1][3]
    assert {k: v for k, v in after.items() if k != "audit"} == {k: v for k, v in before.items() if k != "audit"}
    assert after["settings"]["encrypted"]
    assert dst.identify(tone(2000, seed=11)).speaker == "high"
    assert dst.check_integrity() == []
    # Row ids continue after the copied ones (PostgreSQL's identity sequences were moved on).
    dst.enroll("new", [tone(1200, seed=6)])
    create_key(dst, "reader")
    assert dst.identify(tone(1200, seed=7)).speaker == "new"
    assert [k["name"] for k in list_keys(dst)] == ["ops", "reader"]
    # Without the key the copy cannot be read either: it holds the same ciphertext.
    with pytest.raises(DataError):
        SpeakerStore(dst_url, verifier=StubVerifier())
    # The source is unchanged.
    assert _state(SpeakerStore(src_url, verifier=StubVerifier(), key_file=key)) == before


@pytest.mark.parametrize(("src_engine", "dst_engine"), PAIRS[:2])
def test_a_destination_that_holds_anything_is_refused_and_left_alone(location, src_engine: str,
                                                                      dst_engine: str) -> None:
    src_url, dst_url = location(src_engine), location(dst_engine)
    _filled(src_url, None)
    dst = SpeakerStore(dst_url, verifier=StubVerifier())
    dst.enroll("other", [tone(500, seed=1)])
    vector = dst.speaker_vector("other")
    with pytest.raises(DataError, match="already holds 1 speakers, 1 clips.*empty store only"):
        migration.migrate(src_url, dst_url)
    assert [s["name"] for s in dst.speakers()] == ["other"]
    assert np.array_equal(dst.speaker_vector("other"), vector)


_KILLED_MID_COPY = """
import sys, time
from speakerverify.store import migrate as m
real = m._insert
def insert_then_hang(con, table, names, rows):
    real(con, table, names, rows)
    if table == "clips":  # speakers and clips are written, the transaction is open: say so, wait
        open(sys.argv[3], "w").close()
        time.sleep(120)
m._insert = insert_then_hang
m.migrate(sys.argv[1], sys.argv[2])
"""


@pytest.mark.parametrize("dst_engine", ["sqlite", "postgresql"])
def test_kill_9_mid_copy_leaves_the_destination_empty_and_a_rerun_completes(location, tmp_path: Path,
                                                                            dst_engine: str) -> None:
    src_url, dst_url = location("sqlite"), location(dst_engine)
    before = _state(_filled(src_url, None))
    flag = tmp_path / "mid-copy"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_MID_COPY, src_url, dst_url, str(flag)],
                             env={**os.environ, "PYTHONPATH": str(SRC)})
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the copy never got under way"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        child.kill()
    assert child.returncode == -signal.SIGKILL
    empty = SpeakerStore(dst_url, verifier=StubVerifier())
    assert len(empty) == 0 and list_keys(empty) == [] and empty.audit_events() == []
    empty.close()

    migration.migrate(src_url, dst_url)  # the PostgreSQL server rolled the dead client's work back
    after = _state(SpeakerStore(dst_url, verifier=StubVerifier()))
    assert after["speakers"] == before["speakers"] and after["audit"][:-1] == before["audit"]


def test_cli_migrates_and_refuses_in_one_line(location, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    src_url, dst_url = location("sqlite"), location("sqlite")
    _filled(src_url, None).close()
    monkeypatch.setattr(sys, "argv", ["speakerverify", "store", "migrate", src_url, dst_url])
    with pytest.raises(SystemExit) as done:
        cli.main()
    assert done.value.code == 0
    printed = capsys.readouterr().out
    assert "2 speakers, 3 clips, 1 API keys, 6 audit records" in printed and "compared equal" in printed

    missing = str(tmp_path / "nope.db")
    assert "no such speaker store" in one_line_error(["store", "migrate", missing, str(tmp_path / "x.db")],
                                                     monkeypatch, capsys)
    assert not (tmp_path / "x.db").exists() and not Path(missing).exists()
    assert "same store" in one_line_error(["store", "migrate", src_url, src_url], monkeypatch, capsys)
    assert "already holds 2 speakers" in one_line_error(["store", "migrate", src_url, dst_url],
                                                        monkeypatch, capsys)


def test_rows_of_a_postgresql_table_come_from_a_server_side_cursor(location) -> None:
    # psycopg's default cursor would load the whole table at execute(); migrate reads the source
    # (and both sides' digests) through a server-side cursor, BATCH rows at a time.
    from speakerverify.store.engines import open_database

    where = location("postgresql")
    s = SpeakerStore(where, verifier=StubVerifier(), actor="cli:test")
    for k in range(migration.BATCH + 10):
        s.audit("note", f"event {k}")
    s.close()
    db = open_database(where)
    try:
        with db.snapshot() as con:
            rows = migration._rows(con, "audit")
            first = next(rows)
            open_cursors = [r[0] for r in con.execute("SELECT name FROM pg_cursors").fetchall()]
            assert any(name.startswith("speakerverify_stream_") for name in open_cursors), open_cursors
            assert "id" in first[0] and sum(1 for _ in rows) + 1 >= migration.BATCH + 10
            assert con.execute("SELECT COUNT(*) FROM pg_cursors").fetchone()[0] == 0  # closed when done
    finally:
        db.close()
