"""The store's CLI commands, the Python API example and the package's lazy exports."""

from __future__ import annotations

import json
import runpy
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from model_helpers import default_verifier, model_override, pick_speakers
from speakerverify.errors import ModelError, OperatingPointError

REPO = Path(__file__).resolve().parents[1]


def _cli():
    from speakerverify.cli import app

    return app


def test_import_is_cheap_and_exports_lazy() -> None:
    code = ("import sys, speakerverify; assert 'torch' not in sys.modules and 'numpy' not in sys.modules; "
            "from speakerverify import SpeakerStore, Verifier; print(SpeakerStore.__name__, Verifier.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["SpeakerStore", "Verifier"]


def test_the_run_time_path_leaves_the_fitting_libraries_unloaded() -> None:
    """Verifying, the store and the service apply a back end; only fitting one needs scikit-learn and
    SciPy (about a second and 90 MB per process to import), so neither is loaded on that path."""
    code = ("import sys; from speakerverify.verifier import Verifier; from speakerverify.store import SpeakerStore; "
            "import speakerverify.service.app; from speakerverify.scoring import Calibration; "
            "Calibration(1.0, 0.0).llr([0.5]); print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-1] == "[]", out.stdout
    # and fitting still works, loading scikit-learn when asked
    code = ("import sys, numpy as np; from speakerverify.scoring import Calibration; "
            "c = Calibration.fit(np.r_[np.zeros(50), np.ones(50)] + np.linspace(0, 0.5, 100), np.r_[np.zeros(50), "
            "np.ones(50)]); print(c.a > 0, 'sklearn' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True"]


def test_keys_commands(tmp_path: Path) -> None:
    db = str(tmp_path / "k.db")
    runner = CliRunner()
    r = runner.invoke(_cli(), ["keys", "create", "ops", "--admin", "--store", db])
    assert r.exit_code == 0, r.output
    key = r.stdout.strip().splitlines()[-1]
    assert key.startswith("svk_") and len(key) > 40
    raw = sqlite3.connect(db).execute("SELECT key_hash FROM api_keys").fetchall()
    assert key not in str(raw)  # only the hash is stored
    r = runner.invoke(_cli(), ["keys", "list", "--json", "--store", db])
    assert json.loads(r.stdout)["keys"][0] | {"created": 0} == {"name": "ops", "admin": True, "created": 0}
    assert runner.invoke(_cli(), ["keys", "create", "ops", "--store", db]).exception is not None
    assert runner.invoke(_cli(), ["keys", "revoke", "ops", "--store", db]).exit_code == 0
    assert runner.invoke(_cli(), ["keys", "revoke", "ops", "--store", db]).exit_code == 2


def test_cli_enroll_list_remove_reembed_check(tmp_path: Path, test_speaker_clips: dict[str, list[Path]]) -> None:
    default_verifier()
    (spk, clips), = pick_speakers(test_speaker_clips, 1)
    db = str(tmp_path / "s.db")
    model = ["--model", model_override()] if model_override() else []
    runner = CliRunner()
    missing = str(tmp_path / "missing.wav")
    r = runner.invoke(_cli(), ["enroll", spk, str(clips[0]), str(clips[1]), missing, "--store", db, *model])
    assert r.exit_code == 0, r.output
    assert "enrolled" in r.stdout and f"skipped {missing}: no such file" in r.stderr.replace("\n", "")
    r = runner.invoke(_cli(), ["speakers", "--json", "--store", db])
    assert [(s["name"], s["clips"]) for s in json.loads(r.stdout)["speakers"]] == [(spk, 2)]
    r = runner.invoke(_cli(), ["store", "reembed", "--json", "--store", db, *model])
    assert json.loads(r.stdout)["unchanged"] == [spk]
    assert runner.invoke(_cli(), ["store", "check", "--store", db]).exit_code == 0
    r = runner.invoke(_cli(), ["verify-speaker", spk, str(clips[-1]), "--json", "--store", db, *model])
    assert {"speaker", "score", "same_speaker", "threshold"} <= set(json.loads(r.stdout))
    thresholds = {}
    for rate in ("0.001", "1"):
        r = runner.invoke(_cli(), ["identify", str(clips[-1]), "--stranger-rate", rate, "--json", "--store", db,
                                   *model])
        assert r.exit_code == 0, r.output
        thresholds[rate] = json.loads(r.stdout)["threshold"]
    assert thresholds["0.001"] > thresholds["1"]  # fewer strangers let in: a higher bar
    r = runner.invoke(_cli(), ["identify", str(clips[-1]), "--stranger-rate", "2", "--store", db, *model])
    assert isinstance(r.exception, OperatingPointError)  # main() prints it as one line
    assert "stranger rate must be above 0 and at most 1" in str(r.exception)
    assert runner.invoke(_cli(), ["remove", spk, "--store", db]).exit_code == 0
    assert runner.invoke(_cli(), ["remove", spk, "--store", db]).exit_code == 2


def test_cli_refuses_a_store_of_another_model(tmp_path: Path, test_speaker_clips: dict[str, list[Path]]) -> None:
    default_verifier()
    (_, clips), = pick_speakers(test_speaker_clips, 1)
    db = tmp_path / "other.db"
    from speakerverify.store import SpeakerStore

    SpeakerStore(db).close()
    con = sqlite3.connect(db)
    con.execute("INSERT INTO meta VALUES ('model', 'someothermodel@7')")
    con.commit()
    con.close()
    model = ["--model", model_override()] if model_override() else []
    r = CliRunner().invoke(_cli(), ["identify", str(clips[0]), "--store", str(db), *model])
    assert isinstance(r.exception, ModelError)
    assert "someothermodel@7" in str(r.exception) and "reembed" in str(r.exception)


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    code = "from speakerverify.cli import main; main()"
    r = subprocess.run([sys.executable, "-c", code, "speakers", "--store", str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path}: is a directory, not a speaker store"
    notdb = tmp_path / "notdb.db"
    notdb.write_text("hello" * 1000)
    r = subprocess.run([sys.executable, "-c", code, "remove", "x", "--store", str(notdb)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: {notdb}: ") and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_api_example_runs(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                          shared_data: Path) -> None:
    default_verifier()
    argv = ["api-example.py", "--data", str(shared_data)]
    if model_override():
        argv += ["--model", model_override()]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(REPO / "docs" / "api-example.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "is alice: alice" in out and "is bob: True" in out
    assert "after removing bob: ['alice']" in out


def test_the_stranger_rate_help_names_the_default_the_back_end_uses() -> None:
    from speakerverify.cli.store import StrangerRateOpt
    from speakerverify.scoring import IDENTIFY_STRANGER_RATE

    option = StrangerRateOpt.__metadata__[0]
    assert f"default {IDENTIFY_STRANGER_RATE:g})" in option.help
