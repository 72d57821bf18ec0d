"""One enrollment policy for the CLI, the Python API and REST (issue 10, item 7) and the store's
small defects of item 8 (the reembed suggestion, help texts)."""

from __future__ import annotations

import io
import json
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from speakerverify.errors import ModelError
from speakerverify.store import SpeakerStore, check_name
from speakerverify.store.enrollment import audio_digest, duplicate_of
from speakerverify.store.keys import create_key
from stub_verifier import StubVerifier, tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NFC, NFD = "Zo\u00eb", "Zoe\u0308"


def _wav(wave, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV")
    return buf.getvalue()


def test_policy_functions_without_a_database() -> None:
    assert NFC != NFD and check_name(NFD) == check_name(NFC) == NFC
    a, b = tone(300, seed=1), tone(300, seed=2)
    assert audio_digest(a) == audio_digest(a.copy()) != audio_digest(b)
    seen: dict[str, str] = {}
    assert [duplicate_of(audio_digest(w), n, seen) for w, n in ((a, "a"), (b, "b"), (a, "a2"), (a, "a"))] == [
        None, None, "a", "a"]


def test_one_name_in_two_unicode_forms_is_one_speaker(tmp_path: Path) -> None:
    store = SpeakerStore(tmp_path / "s.db", verifier=StubVerifier())
    store.enroll(NFC, [tone(300, seed=1)])
    assert store.enroll(NFD, [tone(300, seed=2)]).n_clips == 2
    assert [s["name"] for s in store.speakers()] == [NFC] and NFD in store
    assert store.verify(NFD, tone(300, seed=3)).to_dict()["speaker"] == NFC
    assert store.remove(NFD) and len(store) == 0


def test_duplicates_count_once_and_are_listed(tmp_path: Path, test_speaker_clips: dict[str, list[Path]]) -> None:
    store = SpeakerStore(tmp_path / "s.db", verifier=StubVerifier())
    clip = next(iter(test_speaker_clips.values()))[0]
    copy = tmp_path / "copy.flac"
    copy.write_bytes(clip.read_bytes())
    r = store.enroll("x", [clip, clip, copy])
    assert r.n_clips == 1 and r.enrolled == [str(clip)]
    assert r.skipped == [{"name": str(clip), "reason": f"duplicate of {clip} (same audio); counted once"},
                         {"name": str(copy), "reason": f"duplicate of {clip} (same audio); counted once"}]
    w = tone(500, seed=1)
    assert store.enroll("y", [w] * 100).n_clips == 1


def test_unusable_clips_are_skipped_the_same_way_in_cli_api_and_rest(tmp_path: Path) -> None:
    from speakerverify.service.app import ServiceConfig, create_app

    good = [tone(300, seed=1), tone(300, seed=2)]
    bad = {"empty.wav": b"", "short.wav": _wav(tone(300, seconds=0.1)), "silent.wav": _wav(np.zeros(16000, "f4")),
           "long.wav": _wav(tone(300, seconds=7)), "junk.wav": b"not audio at all"}
    files = {n: tmp_path / n for n in bad}
    for n, data in bad.items():
        files[n].write_bytes(data)
    for i, w in enumerate(good):
        files[f"good{i}.wav"] = tmp_path / f"good{i}.wav"
        files[f"good{i}.wav"].write_bytes(_wav(w))
    reasons = {}
    # Python API
    api = SpeakerStore(tmp_path / "api.db", verifier=StubVerifier(), max_audio_s=5)
    r = api.enroll("a", [(n, p) for n, p in files.items()]).to_dict()
    reasons["api"] = {s["name"]: s["reason"] for s in r["skipped"]}
    assert r["n_clips"] == 2 and set(reasons["api"]) == set(bad)
    # REST: one bad clip does not refuse the enrollment
    store = SpeakerStore(tmp_path / "rest.db", verifier=StubVerifier())
    admin = {"Authorization": f"Bearer {create_key(store, 'ops', admin=True)}"}
    c = TestClient(create_app(ServiceConfig(store=tmp_path / "rest.db", verifier=StubVerifier(), max_audio_s=5)))
    resp = c.post("/v1/speakers", headers=admin, data={"name": "a"},
                  files=[("files", (n, p.read_bytes(), "audio/wav")) for n, p in files.items()])
    assert resp.status_code == 201, resp.text
    reasons["rest"] = {s["name"]: s["reason"] for s in resp.json()["skipped"]}
    assert resp.json()["n_clips"] == 2
    # CLI (stub model: the store's verifier is given through the SpeakerStore the CLI builds)
    from speakerverify.cli import app
    from speakerverify.cli import store as cli_store

    original = cli_store._store
    cli_store._store = lambda *a, **k: SpeakerStore(tmp_path / "cli.db", verifier=StubVerifier(), max_audio_s=5)
    try:
        out = CliRunner().invoke(app, ["enroll", "a", *[str(p) for p in files.values()], "--json"])
    finally:
        cli_store._store = original
    assert out.exit_code == 0, out.output
    reasons["cli"] = {Path(s["name"]).name: s["reason"] for s in json.loads(out.stdout)["skipped"]}
    for n in bad:  # the same reason everywhere (paths differ in how the file is named)
        assert reasons["api"][n] == reasons["rest"][n] == reasons["cli"][n], n
    assert "empty" in reasons["api"]["empty.wav"] and "too long" in reasons["api"]["long.wav"]
    # only when nothing usable is left does enrollment fail
    resp = c.post("/v1/speakers", headers=admin, data={"name": "b"},
                  files=[("files", (n, bad[n], "audio/wav")) for n in ("empty.wav", "junk.wav")])
    assert resp.status_code == 422 and "no usable enrollment clip" in resp.json()["error"]


def test_model_mismatch_suggests_a_command_that_names_the_model_directory(tmp_path: Path) -> None:
    from speakerverify.embedding.model_dir import PRETRAINED

    SpeakerStore(tmp_path / "s.db", verifier=StubVerifier("1")).enroll("a", [tone(300)])
    other = StubVerifier("2")
    other.bundle = SimpleNamespace(**vars(other.bundle), directory=tmp_path / "my model")
    with pytest.raises(ModelError) as info:
        SpeakerStore(tmp_path / "s.db", verifier=other).check_model()
    assert f"--model '{tmp_path / 'my model'}'" in str(info.value)
    assert f"store reembed --store {tmp_path / 's.db'}" in str(info.value)
    other.bundle.directory = PRETRAINED / "default"
    with pytest.raises(ModelError, match=r"--model default`"):
        SpeakerStore(tmp_path / "s.db", verifier=other).check_model()


def _commands(cmd, path=()):
    yield list(path), cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_every_help_text_keeps_its_words() -> None:
    import typer

    from speakerverify.cli import app

    runner = CliRunner()
    seen = 0
    for path, cmd in _commands(typer.main.get_command(app)):
        text = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "400"}).output
        for p in getattr(cmd, "params", []):
            # every word of every shown option's help is there (rich eats "[...]" as markup)
            if p.help and not getattr(p, "hidden", False):
                words = " ".join(p.help.split())
                assert words in " ".join(text.replace("│", " ").split()), (path, p.help)
                seen += 1
        assert not re.search(r"\w \.(\s|$)", text), (path, text)  # "file ." where words were eaten
    assert seen > 30
