"""Batch extraction on real clips: `embed --list` under torchrun (2 CPU processes) gives the same
vectors as one process, resumes by skipping finished shards, merges in list order into .npz or
Kaldi ark/scp, and refuses shards that are missing or from another list or model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import kaldiio
import numpy as np
import pytest
from typer.testing import CliRunner

from cli_helpers import one_line_error
from speakerverify.cli import app
from speakerverify.ranks import DistInfo, threads_per_process

runner = CliRunner()


def _ok(args: list[str]) -> dict:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, (args, result.output, result.exception)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def clips(test_speaker_clips) -> list[str]:
    """12 short (~3.5 s) test-split clips, 3 from each of 4 speakers."""
    return [str(p) for ps in list(test_speaker_clips.values())[:4] for p in ps[:3]]


#: What each of 2 torchrun processes uses by default; the reference uses as many (a different thread
#: count sums in another order: differences of ~1e-5).
THREADS = threads_per_process(DistInfo(0, 2, 0, 2))


@pytest.fixture(scope="module")
def reference(clips, tmp_path_factory) -> np.ndarray:
    """The one-process `embed FILES --out x.npz` vectors of ``clips``."""
    out = tmp_path_factory.mktemp("ref") / "ref.npz"
    _ok(["embed", *clips, "--out", str(out), "--threads", str(THREADS), "--json"])
    with np.load(out) as z:
        assert list(z["files"]) == clips
        return z["embeddings"]


def _keyed_list(path: Path, clips: list[str]) -> list[str]:
    keys = [f"utt{i:02d}-{Path(c).stem}" for i, c in enumerate(clips)]
    path.write_text("# key path\n" + "".join(f"{k} {c}\n" for k, c in zip(keys, clips, strict=True)))
    return keys


def test_torchrun_two_processes_match_one_process(clips, reference, tmp_path):
    file_list = tmp_path / "files.txt"
    keys = _keyed_list(file_list, clips)
    shards = tmp_path / "shards"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "speakerverify", "embed", "--list", str(file_list), "--out", str(shards),
           "--shard-size", "5", "--format", "kaldi", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = sorted((json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")),
                   key=lambda s: s["rank"])
    # 12 files in shards of 5: shards 0, 1, 2; rank 0 takes 0 and 2, rank 1 takes 1
    assert [(s["rank"], s["world_size"], s["shards_done"], s["n_files"]) for s in ranks] == [(0, 2, 2, 7),
                                                                                           (1, 2, 1, 5)]
    assert {s["threads"] for s in ranks} == {THREADS}
    assert {json.loads(p.read_text())["rank"] for p in shards.glob("shard-*.json")} == {0, 1}

    merged = _ok(["embed", "--merge", str(shards), "--out", str(tmp_path / "all.npz"), "--json"])
    assert merged["n_files"] == 12 and merged["n_shards"] == 3
    with np.load(tmp_path / "all.npz") as z:
        assert list(z["keys"]) == keys and list(z["files"]) == clips
        np.testing.assert_allclose(z["embeddings"], reference, atol=1e-5, rtol=0)

    _ok(["embed", "--merge", str(shards), "--out", str(tmp_path / "all.ark"), "--format", "kaldi", "--json"])
    table = kaldiio.load_scp(str(tmp_path / "all.scp"))
    assert list(table.keys()) == keys
    np.testing.assert_allclose(np.stack([table[k] for k in keys]), reference, atol=1e-5, rtol=0)


def test_a_rerun_skips_finished_shards_and_redoes_unfinished_ones(clips, reference, tmp_path, monkeypatch):
    file_list = tmp_path / "files.txt"
    file_list.write_text("\n".join(clips[:8]) + "\n")
    shards = tmp_path / "shards"
    args = ["embed", "--list", str(file_list), "--out", str(shards), "--shard-size", "3", "--threads", str(THREADS),
            "--json"]
    # an earlier run as rank 1 of 2 finished shard 1 of 0, 1, 2 ...
    for key, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(key, value)
    first = _ok(args)
    assert (first["shards_done"], first["n_files"]) == (1, 3)
    done = shards / "shard-000001.npz"
    stamp = done.stat().st_mtime_ns
    # ... and was killed while writing shard 2: its vectors are there, its manifest is not
    (shards / "shard-000002.npz").write_bytes(b"half a file")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(key)
    again = _ok(args)  # one process now: shards 0 and 2 are left
    assert (again["shards_done"], again["shards_skipped"], again["n_files"]) == (2, 1, 5)
    assert done.stat().st_mtime_ns == stamp
    _ok(["embed", "--merge", str(shards), "--out", str(tmp_path / "all.npz"), "--json"])
    with np.load(tmp_path / "all.npz") as z:
        assert list(z["files"]) == clips[:8]
        np.testing.assert_allclose(z["embeddings"], reference[:8], atol=1e-5, rtol=0)
    assert _ok(args)["shards_done"] == 0  # nothing left to do


def test_merge_and_resume_refuse_what_does_not_belong(clips, tmp_path, monkeypatch, capsys):
    file_list = tmp_path / "files.txt"
    file_list.write_text("\n".join(clips[:4]) + "\n")
    shards = tmp_path / "shards"
    _ok(["embed", "--list", str(file_list), "--out", str(shards), "--shard-size", "2", "--json"])
    err = one_line_error(["embed", "--list", str(file_list), "--out", str(shards), "--shard-size", "3"],
                          monkeypatch, capsys)
    assert "shard-000000.json" in err and "shard_size" in err
    manifest = shards / "shard-000001.json"
    meta = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**meta, "model": "other@1"}))
    err = one_line_error(["embed", "--merge", str(shards), "--out", str(tmp_path / "m.npz")], monkeypatch, capsys)
    assert str(manifest) in err and "model" in err and "other@1" in err
    manifest.unlink()
    err = one_line_error(["embed", "--merge", str(shards), "--out", str(tmp_path / "m.npz")], monkeypatch, capsys)
    assert str(shards) in err and "1 of 2 shards are missing (1)" in err
    assert not (tmp_path / "m.npz").exists()
    err = one_line_error(["embed", "--merge", str(tmp_path), "--out", str(tmp_path / "m.npz")], monkeypatch, capsys)
    assert "no shard manifests" in err
    file_list.write_text(f"a {clips[0]}\na {clips[1]}\n")
    err = one_line_error(["embed", "--list", str(file_list), "--out", str(tmp_path / "s2")], monkeypatch, capsys)
    assert str(file_list) in err and "'a' appears twice" in err


def test_embed_out_writes_the_file_it_reports(clips, reference, tmp_path):
    out = tmp_path / "vectors.txt"  # np.savez(path) would have written vectors.txt.npz
    summary = _ok(["embed", clips[0], "--out", str(out), "--json"])
    assert summary["out"] == str(out) and out.is_file()
    assert not (tmp_path / "vectors.txt.npz").exists()
    with np.load(out) as z:
        np.testing.assert_allclose(z["embeddings"], reference[:1], atol=1e-5, rtol=0)


def test_embed_files_in_kaldi_format(clips, reference, tmp_path):
    summary = _ok(["embed", *clips[:2], "--out", str(tmp_path / "two"), "--format", "kaldi", "--json"])
    assert summary["written"] == [str(tmp_path / "two.ark"), str(tmp_path / "two.scp")]
    table = kaldiio.load_scp(str(tmp_path / "two.scp"))
    np.testing.assert_allclose(np.stack([table[c] for c in clips[:2]]), reference[:2], atol=1e-5, rtol=0)


def test_embed_takes_exactly_one_mode(clips, tmp_path, monkeypatch, capsys):
    err = one_line_error(["embed", clips[0], "--merge", str(tmp_path), "--out", str(tmp_path / "x.npz")],
                          monkeypatch, capsys)
    assert "FILES and --merge" in err
    err = one_line_error(["embed", clips[0], "--out", str(tmp_path / "x"), "--format", "hdf5"], monkeypatch, capsys)
    assert "--format" in err and "hdf5" in err


def test_cli_shard_size_default_is_the_extractors():
    from speakerverify.cli.embed import SHARD_SIZE
    from speakerverify.extract.shards import SHARD_SIZE as EXTRACT_SHARD_SIZE

    assert SHARD_SIZE == EXTRACT_SHARD_SIZE
