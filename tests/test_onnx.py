"""ONNX export (CLI `speakerverify export`) and the onnxruntime engine against torch.

One small randomly initialised model per architecture family (exported once per module: export
takes a while), and the shipped default model when there is one.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from speakerverify.cli import app
from speakerverify.embedding import PRETRAINED, TorchEmbedder, load_model, write_model_dir
from speakerverify.embedding.onnx_embedder import OnnxEmbedder
from speakerverify.embedding.onnx_export import export_onnx
from speakerverify.errors import ModelError
from test_model_padding import SMALL, small_model

pytestmark = pytest.mark.slow
torch.set_num_threads(1)

FAMILIES = {"ecapa-tdnn": {"type": "speechbrain-fbank"}, "resnet34-thin": {"type": "kaldi-fbank"},
            "campplus": {"type": "kaldi-fbank"}}
LENGTHS = (16000, 2400, 27000, 1600)  # includes clips shorter than the export example's width


def waves(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(max(LENGTHS)) / 16000
    # noise plus a gliding tone, so the embeddings are not all alike
    return [(0.05 * rng.standard_normal(n) + 0.1 * np.sin(2 * np.pi * (150 + 40 * i) * t[:n] * (1 + t[:n])))
            .astype(np.float32) for i, n in enumerate(LENGTHS)]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def exported(request, tmp_path_factory) -> tuple[Path, dict]:
    """A small model directory of one family, exported with the CLI."""
    arch = request.param
    directory = tmp_path_factory.mktemp(arch) / "model"
    write_model_dir(directory, arch, SMALL[arch], FAMILIES[arch], small_model(arch).state_dict(), name=f"tiny-{arch}")
    result = CliRunner().invoke(app, ["export", str(directory), "--onnx", str(directory / "model.onnx"), "--json"])
    assert result.exit_code == 0, result.output
    return directory, json.loads(result.output.strip().splitlines()[-1])


def test_export_summary(exported: tuple[Path, dict]) -> None:
    directory, summary = exported
    assert (directory / "model.onnx").is_file()
    assert summary["outputs"] == ["embedding"]
    assert summary["check_min_cosine"] > 0.9999


def test_onnx_matches_torch_and_padding(exported: tuple[Path, dict]) -> None:
    directory, _ = exported
    bundle = load_model(directory)
    torch_e, onnx_e = TorchEmbedder(bundle), OnnxEmbedder(bundle, threads=1)
    w = waves()
    t_single = np.concatenate([torch_e.embed_batch([x]) for x in w])
    o_single = np.concatenate([onnx_e.embed_batch([x]) for x in w])
    t_batch, o_batch = torch_e.embed_batch(w), onnx_e.embed_batch(w)
    assert np.all(cosines(o_single, t_single) > 0.9999)
    assert np.all(cosines(t_batch, t_single) > 0.99999)  # torch: padded batch == single inputs
    assert np.all(cosines(o_batch, o_single) > 0.99999)  # onnx: padded batch == single inputs
    np.testing.assert_allclose(o_batch, o_single, atol=1e-4, rtol=1e-3)
    assert onnx_e.engine == "onnx" and onnx_e.compute_s > 0


def test_cli_embed_with_onnx_engine(exported: tuple[Path, dict], tmp_path: Path) -> None:
    directory, _ = exported
    files = []
    for i, x in enumerate(waves(1)[:2]):
        files.append(tmp_path / f"clip{i}.wav")
        sf.write(files[-1], x, 16000)
    outs = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / f"{engine}.npz"
        result = CliRunner().invoke(app, ["embed", *map(str, files), "--out", str(out), "-m", str(directory),
                                          "--engine", engine, "--json"])
        assert result.exit_code == 0, result.output
        outs[engine] = np.load(out)["embeddings"]
    assert np.all(cosines(outs["onnx"], outs["torch"]) > 0.9999)
    # The engine's old option name still works, with a note on stderr.
    out = tmp_path / "old.npz"
    result = CliRunner().invoke(app, ["embed", *map(str, files), "--out", str(out), "-m", str(directory),
                                      "--backend", "onnx", "--json"])
    assert result.exit_code == 0, result.output
    assert "--backend is deprecated" in result.stderr and json.loads(result.stdout)["engine"] == "onnx"
    np.testing.assert_array_equal(np.load(out)["embeddings"], outs["onnx"])


def test_stale_or_missing_onnx_is_refused(exported: tuple[Path, dict], tmp_path: Path) -> None:
    directory, _ = exported
    bundle = load_model(directory)
    with pytest.raises(ModelError, match="no model.onnx"):
        OnnxEmbedder(bundle, path=tmp_path / "absent.onnx")
    copy = tmp_path / "changed"
    state = {k: v + 1 if v.is_floating_point() else v for k, v in bundle.network.state_dict().items()}
    write_model_dir(copy, bundle.config["arch"], bundle.config["params"], bundle.config["frontend"], state,
                    name="changed")
    (copy / "model.onnx").write_bytes((directory / "model.onnx").read_bytes())
    with pytest.raises(ModelError, match="different model.pt"):
        OnnxEmbedder(load_model(copy))


def test_shipped_default_model(tmp_path: Path) -> None:
    if not (PRETRAINED / "default" / "model.yaml").is_file():
        pytest.skip("no shipped default model (src/speakerverify/pretrained/default)")
    bundle = load_model("default")
    onnx_path = tmp_path / "default.onnx"
    summary = export_onnx(bundle, onnx_path)
    assert summary["check_min_cosine"] > 0.9999
    torch_e, onnx_e = TorchEmbedder(bundle), OnnxEmbedder(bundle, threads=1, path=onnx_path)
    w = [x for x in waves(2) if len(x) / 16000 >= bundle.min_duration_s]
    branches = [False, True] if bundle.two_branch else [False]
    for second in branches:
        t_single = np.concatenate([torch_e.embed_batch([x], second) for x in w])
        o_single = np.concatenate([onnx_e.embed_batch([x], second) for x in w])
        assert np.all(cosines(o_single, t_single) > 0.9999)
        assert np.all(cosines(torch_e.embed_batch(w, second), t_single) > 0.99999)
        assert np.all(cosines(onnx_e.embed_batch(w, second), o_single) > 0.99999)


def test_onnx_engine_exports_on_first_use_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model directory without model.onnx (as shipped models are, to stay small) still runs on
    onnxruntime: the graph is exported once into the cache, then reused."""
    from speakerverify.embedding import make_embedder

    monkeypatch.setenv("SPEAKERVERIFY_CACHE", str(tmp_path / "cache"))
    net = small_model("campplus")
    directory = write_model_dir(tmp_path / "m", "campplus", SMALL["campplus"], {"type": "kaldi-fbank"},
                                net.state_dict(), name="tiny")
    bundle = load_model(directory)
    assert not bundle.onnx_path.exists()
    first = make_embedder(bundle, "onnx", threads=1)
    cached = list((tmp_path / "cache" / "onnx").glob("tiny-*.onnx"))
    assert len(cached) == 1 and first.path == cached[0]
    stamp = cached[0].stat().st_mtime_ns
    w = [x for x in waves(3)]
    assert np.all(cosines(first.embed_batch(w), TorchEmbedder(bundle).embed_batch(w)) > 0.9999)
    again = make_embedder(load_model(directory), "onnx", threads=1)
    assert again.path == cached[0] and cached[0].stat().st_mtime_ns == stamp
    assert not list((tmp_path / "cache" / "onnx").glob(".*.tmp"))
