"""The audit log (issue 10, item 4, store side): every enrollment, removal, verification,
identification and key change, with the key's name (never the key), from the Python API, the CLI
and the REST service."""

from __future__ import annotations

import io
import json
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from speakerverify.errors import AudioError, SpeakerVerifyError
from speakerverify.store import SpeakerStore
from speakerverify.store.audit import parse_since
from speakerverify.store.keys import create_key, revoke_key
from stub_verifier import StubVerifier, tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient


def _wav(wave) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, 16000, format="WAV")
    return buf.getvalue()


def test_store_records_every_change_and_read(store_location: str) -> None:
    store = SpeakerStore(store_location, verifier=StubVerifier(), actor="local:tester")
    store.enroll("low", [tone(300, seed=1), tone(300, seed=2)])
    store.verify("low", tone(300, seed=3), actor="key:ops")
    store.identify(tone(300, seed=4))
    store.identify(tone(5000, seed=4))
    with pytest.raises(AudioError):
        store.enroll("nobody", [("s.wav", tone(300, seconds=0.1))])
    key = create_key(store, "ops", admin=True)
    revoke_key(store, "ops")
    store.remove("low")
    store.remove("low")
    events = store.audit_events()
    got = [(e["actor"], e["action"], e["speaker"], e["outcome"].split(" ")[0]) for e in events]
    assert got == [("local:tester", "enroll", "low", "ok:"), ("key:ops", "verify", "low", "accept"),
                   ("local:tester", "identify", "low", "match"), ("local:tester", "identify", None, "unknown"),
                   ("local:tester", "enroll", "nobody", "refused:"), ("local:tester", "key-add", None, "ok:"),
                   ("local:tester", "key-remove", None, "ok:"), ("local:tester", "remove", "low", "ok"),
                   ("local:tester", "remove", "low", "not")]
    assert all(datetime.fromisoformat(e["when"]).tzinfo is not None for e in events)
    raw = store.db.connection().execute("SELECT * FROM audit").fetchall()
    assert key not in str(raw) and key[4:20] not in str(raw)  # never the key
    assert {len(r) for r in raw} == {6}  # when, actor, action, speaker, outcome: no audio, no vectors


def test_since_filters_by_time_and_duration(store_location: str) -> None:
    store = SpeakerStore(store_location, verifier=StubVerifier())
    store.enroll("a", [tone(300, seed=1)])
    con = store.db.connection()
    old = (datetime.now(UTC) - timedelta(days=3)).isoformat(timespec="microseconds")
    con.execute("UPDATE audit SET at = ?", (old,))
    store.remove("a")
    assert [e["action"] for e in store.audit_events(since="1d")] == ["remove"]
    assert [e["action"] for e in store.audit_events(since="7d")] == ["enroll", "remove"]
    day = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    assert [e["action"] for e in store.audit_events(since=day)] == ["remove"]
    assert [e["action"] for e in store.audit_events(limit=1)] == ["remove"]
    assert parse_since("2025-01-31T12:00+01:00").startswith("2025-01-31T11:00:00")
    with pytest.raises(SpeakerVerifyError, match="--since 'yesterday'"):
        store.audit_events(since="yesterday")


def test_cli_commands_are_audited_and_audit_command_lists_them(tmp_path: Path) -> None:
    from speakerverify.cli import app

    db = str(tmp_path / "s.db")
    store = SpeakerStore(db, verifier=StubVerifier())
    store.enroll("x", [tone(300, seed=1)])
    store.close()
    runner = CliRunner()
    assert runner.invoke(app, ["keys", "create", "ops", "--store", db]).exit_code == 0
    assert runner.invoke(app, ["remove", "x", "--store", db]).exit_code == 0
    r = runner.invoke(app, ["audit", "--json", "--since", "1h", "--store", db])
    assert r.exit_code == 0, r.output
    events = json.loads(r.stdout)["events"]
    assert [(e["action"], e["actor"].split(":")[0]) for e in events] == [
        ("enroll", "local"), ("key-add", "cli"), ("remove", "cli")]
    r = runner.invoke(app, ["audit", "--store", db])
    assert r.exit_code == 0 and "key-add" in r.stdout and "remove" in r.stdout
    assert runner.invoke(app, ["audit", "--since", "soon", "--store", db]).exit_code != 0


def test_rest_routes_are_audited_with_the_key_name(tmp_path: Path) -> None:
    from speakerverify.service.app import ServiceConfig, create_app

    store = SpeakerStore(tmp_path / "s.db", verifier=StubVerifier())
    admin = {"Authorization": f"Bearer {create_key(store, 'ops-admin', admin=True)}"}
    user = {"Authorization": f"Bearer {create_key(store, 'front-desk')}"}
    c = TestClient(create_app(ServiceConfig(store=tmp_path / "s.db", verifier=StubVerifier())))
    files = [("files", ("a.wav", _wav(tone(300, seed=1)), "audio/wav")),
             ("files", ("b.wav", _wav(tone(300, seed=2)), "audio/wav"))]
    assert c.post("/v1/speakers", headers=admin, data={"name": "low"}, files=files).status_code == 201
    assert c.post("/v1/speakers/low/verify", headers=user,
                  files={"file": ("q.wav", _wav(tone(300, seed=3)))}).status_code == 200
    assert c.post("/v1/identify", headers=user, files={"file": ("q.wav", _wav(tone(300, seed=4)))}).status_code == 200
    assert c.delete("/v1/speakers/low", headers=admin).status_code == 200
    got = [(e["actor"], e["action"], e["speaker"]) for e in store.audit_events()][2:]
    assert got == [("key:ops-admin", "enroll", "low"), ("key:front-desk", "verify", "low"),
                   ("key:front-desk", "identify", "low"), ("key:ops-admin", "remove", "low")]
