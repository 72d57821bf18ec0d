"""The "done when" check for enrollment and identification, with the shipped default model.

Three TEST-split speakers of libri-train-clean are enrolled from two clips each; a held-out clip
of each must be identified as that speaker and a fourth speaker's clip as ``unknown`` -- through
the CLI and through the REST API with a key (401 without one).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_helpers import default_verifier, model_override, pick_speakers
from speakerverify.store import SpeakerStore
from speakerverify.store.keys import create_key

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cast(test_speaker_clips: dict[str, list[Path]]) -> dict:
    chosen = pick_speakers(test_speaker_clips, 4)
    enrolled = {spk: clips[:2] for spk, clips in chosen[:3]}
    held_out = {spk: clips[-1] for spk, clips in chosen[:3]}
    stranger = chosen[3][1][-1]
    return {"enrolled": enrolled, "held_out": held_out, "stranger": stranger}


def test_cli_enroll_and_identify(tmp_path: Path, cast: dict) -> None:
    default_verifier()  # skip early when there is no shipped model
    from speakerverify.cli import app

    runner = CliRunner()
    db = tmp_path / "speakers.db"
    model = ["--model", model_override()] if model_override() else []

    def run(*args: str) -> str:
        result = runner.invoke(app, [*args, "--store", str(db), *model])
        assert result.exit_code == 0, (args, result.output, result.exception)
        return result.stdout

    for spk, clips in cast["enrolled"].items():
        enrolled = json.loads(run("enroll", spk, *map(str, clips), "--json"))
        assert enrolled["n_clips"] == 2, enrolled
    listed = json.loads(runner.invoke(app, ["speakers", "--json", "--store", str(db)]).stdout)
    assert sorted(s["name"] for s in listed["speakers"]) == sorted(cast["enrolled"])

    for spk, clip in cast["held_out"].items():
        got = json.loads(run("identify", str(clip), "--json", "--top", "3"))
        assert got["speaker"] == spk, f"{clip.name}: identified as {got['speaker']}: {got['candidates']}"
        assert [c["speaker"] for c in got["candidates"]][0] == spk
        checked = json.loads(run("verify-speaker", spk, str(clip), "--json"))
        assert checked["same_speaker"] and checked["speaker"] == spk
    got = json.loads(run("identify", str(cast["stranger"]), "--json"))
    assert got["speaker"] == "unknown", f"stranger identified as {got['speaker']}: {got['candidates']}"


def test_rest_enroll_and_identify(tmp_path: Path, cast: dict) -> None:
    from speakerverify.service.app import ServiceConfig, create_app

    verifier = default_verifier()
    db = tmp_path / "speakers.db"
    key = create_key(SpeakerStore(db, verifier=verifier), "ops", admin=True)
    client = TestClient(create_app(ServiceConfig(store=db, verifier=verifier)))
    auth = {"Authorization": f"Bearer {key}"}

    def upload(p: Path) -> tuple[str, bytes]:
        return (p.name, p.read_bytes())

    for spk, clips in cast["enrolled"].items():
        r = client.post("/v1/speakers", headers=auth, data={"name": spk},
                        files=[("files", upload(p)) for p in clips])
        assert r.status_code == 201, r.text
    for spk, clip in cast["held_out"].items():
        r = client.post("/v1/identify", headers=auth, files={"file": upload(clip)})
        assert r.status_code == 200, r.text
        assert r.json()["speaker"] == spk, r.json()
    r = client.post("/v1/identify", headers=auth, files={"file": upload(cast["stranger"])})
    assert r.json()["speaker"] == "unknown", r.json()
    r = client.post("/v1/identify", files={"file": upload(cast["stranger"])})
    assert r.status_code == 401 and r.json()["error"]
