"""The core CLI on real clips with the shipped model: verify, embed, eval, seed-eval, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from speakerverify.cli import app

runner = CliRunner()


def _json(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.stdout)


def test_verify_same_and_different_test_speakers(test_speaker_clips):
    (spk_a, clips_a), (spk_b, clips_b) = list(test_speaker_clips.items())[:2]
    same = _json(["verify", str(clips_a[0]), str(clips_a[1]), "--json"])
    diff = _json(["verify", str(clips_a[0]), str(clips_b[0]), "--json"])
    assert {"score", "same_speaker", "threshold", "model", "llr", "probability"} <= set(same)
    assert same["same_speaker"] is True and diff["same_speaker"] is False
    assert same["score"] > diff["score"] and same["probability"] > diff["probability"]
    strict = _json(["verify", str(clips_a[0]), str(clips_a[1]), "--json", "--far", "0.01"])
    assert strict["threshold"] > same["threshold"]


def test_verify_json_reports_the_model_ident(test_speaker_clips):
    from speakerverify.verifier import Verifier

    clips = next(iter(test_speaker_clips.values()))
    result = _json(["verify", str(clips[0]), str(clips[1]), "--json"])
    assert result["model"] == Verifier().model_ident and "@" in result["model"]  # was "default"


@pytest.mark.parametrize("far", ["0", "-1"])
def test_impossible_far_is_one_line(far, test_speaker_clips):
    clips = next(iter(test_speaker_clips.values()))
    r = subprocess.run([sys.executable, "-m", "speakerverify", "verify", str(clips[0]), str(clips[1]), "--far", far],
                       capture_output=True, text=True)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr  # was a "math domain error" traceback
    assert "FAR must be a rate between 0 and 1" in lines[0] and "domain" not in lines[0]


def test_bad_inputs_are_one_line_errors(tmp_path, test_speaker_clips):
    good = str(next(iter(test_speaker_clips.values()))[0])
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n" * 50)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    short = tmp_path / "short.wav"
    sf.write(short, np.random.default_rng(0).normal(0, 0.1, 800).astype(np.float32), 16000)
    cases = {tmp_path / "missing.wav": "no such file", text: "not a readable audio file",
             empty: "file is empty", short: "too short"}
    for path, problem in cases.items():
        r = subprocess.run([sys.executable, "-m", "speakerverify", "verify", good, str(path)],
                           capture_output=True, text=True)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 2, r.stderr
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert str(path) in lines[0] and problem in lines[0]


def test_embed_and_eval(tmp_path, shared_data, test_speaker_clips):
    files = [str(p) for clips in list(test_speaker_clips.values())[:2] for p in clips[:2]]
    out = tmp_path / "emb.npz"
    summary = _json(["embed", *files, "--out", str(out), "--json"])
    assert summary["n_files"] == 4 and summary["rtf"] > 0 and summary["load_s"] >= 0
    emb = np.load(out)["embeddings"]
    assert emb.shape[0] == 4 and np.all(np.isfinite(emb))
    trials = (shared_data / "trials" / "libri-train-clean-test.txt").read_text().splitlines()
    subset = tmp_path / "trials.txt"
    subset.write_text("\n".join([t for t in trials if t[0] == "1"][:15] + [t for t in trials if t[0] == "0"][:15]))
    det = tmp_path / "det.png"
    res = _json(["eval", str(subset), "--root", str(shared_data), "--json", "--det", str(det)])
    assert res["n_trials"] == 30 and res["n_target"] == 15
    assert 0 <= res["eer_percent"] < 50 and 0 <= res["min_dcf_p01"] <= 1.0 and "min_dcf_p05" in res
    assert det.read_bytes()[:4] == b"\x89PNG"


def test_seed_eval_on_the_protocol(shared_data):
    proto = shared_data / "seed-protocol"
    res = _json(["seed-eval", str(proto / "tes.pkl"), str(proto / "test_pairs.txt"), "--json"])
    assert res["n_pairs"] == 1800 and res["n_target"] == 900
    assert 0.5 < res["pair_accuracy"] <= 1.0
    assert res["eer_percent"] < 50  # same-speaker 1-s clips score above different-speaker ones


@pytest.mark.parametrize("args", [["verify", "a.wav"], ["eval", "nope.txt", "--root", "."]])
def test_usage_errors_exit_nonzero(args):
    assert runner.invoke(app, args).exit_code != 0


def test_unknown_model_is_one_line(test_speaker_clips):
    clip = str(next(iter(test_speaker_clips.values()))[0])
    r = subprocess.run([sys.executable, "-m", "speakerverify", "verify", clip, clip, "--model", "no-such-model"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "no-such-model" in r.stderr
    assert Path(clip).exists()
