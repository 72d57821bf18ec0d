"""Importing published checkpoints: key mapping (always) and parity with the original
implementations on real clips (where the peers' wheels and environment are installed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA, SHARED
from speakerverify import importers, models
from speakerverify.embedding import TorchEmbedder, load_model
from speakerverify.errors import ModelError

torch.set_num_threads(1)

PEERS = {"speechbrain-ecapa": "ecapa", "campplus": "campplus"}


# --- key mapping, on synthetic checkpoints (runs everywhere) -------------------------------------

def to_speechbrain(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our ECAPA parameter names -> SpeechBrain's (the inverse of importers.speechbrain_key)."""
    out = {}
    for k, v in state.items():
        k2 = re.sub(r"(^|\.)(conv|conv1|conv2|shortcut|fc)\.(weight|bias)$", r"\1\2.conv.\3", k)
        k2 = re.sub(r"(^|\.)(norm|asp_bn)\.(weight|bias|running_mean|running_var|num_batches_tracked)$",
                    r"\1\2.norm.\3", k2)
        out[k2] = v
    return out


def test_speechbrain_ecapa_mapping_round_trip(tmp_path: Path) -> None:
    params = {"channels": 64, "mfa_channels": 192, "embedding_dim": 24, "attention_channels": 16,
              "se_channels": 16, "res2net_scale": 8}
    torch.manual_seed(0)
    net = models.build("ecapa-tdnn", **params)
    sb = to_speechbrain(net.state_dict())
    assert "blocks.0.conv.conv.weight" in sb and "asp_bn.norm.running_mean" in sb and "fc.conv.weight" in sb
    torch.save(sb, tmp_path / "embedding_model.ckpt")
    imported = importers.load_checkpoint("speechbrain-ecapa", tmp_path / "embedding_model.ckpt")
    assert imported.arch == "ecapa-tdnn" and imported.frontend["type"] == "speechbrain-fbank"
    for key, value in params.items():
        assert imported.params[key] == value
    x, n = torch.randn(2, 50, 80), torch.tensor([50, 31])
    with torch.inference_mode():
        torch.testing.assert_close(imported.build()(x, n), net.eval()(x, n))


def test_campplus_mapping_round_trip(tmp_path: Path) -> None:
    params = {"embedding_dim": 32, "growth_rate": 8, "bn_size": 2, "init_channels": 16, "m_channels": 8,
              "blocks": [[2, 3, 1], [3, 3, 2], [2, 3, 2]]}
    torch.manual_seed(0)
    net = models.build("campplus", **params)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "campplus.pt")
    imported = importers.load_checkpoint("campplus", tmp_path / "campplus.pt")
    assert imported.params == {"input_dim": 80, **params}
    assert imported.frontend == {"type": "kaldi-fbank", "num_mel_bins": 80, "mean_norm": True}


def test_import_errors_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such checkpoint"):
        importers.load_checkpoint("campplus", tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a readable PyTorch checkpoint"):
        importers.load_checkpoint("campplus", tmp_path / "junk.pt")
    torch.save({"head.conv1.weight": torch.zeros(1)}, tmp_path / "partial.pt")
    with pytest.raises(ModelError, match="not a 3D-Speaker CAM"):
        importers.load_checkpoint("campplus", tmp_path / "partial.pt")
    with pytest.raises(ModelError, match="unknown checkpoint format"):
        importers.load_checkpoint("wav2vec", tmp_path / "partial.pt")


# test_gaussian_threshold_sits_between_the_classes: in test_fit.py, beside fit_backend.


# --- parity with the original implementations on real speech --------------------------------------

def clips() -> list[str]:
    """Paths relative to the data folder: two 3.5-s segments, one long test-other utterance, one digit."""
    picks = []
    for corpus, n in (("libri-train-clean", 2), ("libri-test-other", 1), ("fsdd", 1)):
        lines = (DATA / "corpora" / corpus / "manifest.csv").read_text().splitlines()[1:]
        picks += [f"corpora/{corpus}/{line.split(',')[0]}" for line in lines[:n]]
    return picks


def peer_embeddings(peer: str, files: list[str], tmp: Path) -> np.ndarray:
    python = importers.peers_venv() / "bin" / "python"
    runner = SHARED / "peers" / "peers.py"
    if not python.is_file() or not runner.is_file():
        pytest.skip(f"peers environment not installed ({python}); see ../shared/peers/README.md")
    listing = tmp / "files.txt"
    listing.write_text("\n".join(files) + "\n")
    out = tmp / f"{peer}.npz"
    cmd = [str(python), str(runner), "embed", "--model", peer, "--root", str(DATA), "--list", str(listing),
           "--out", str(out), "--threads", "1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    data = np.load(out)
    assert list(data["files"]) == files
    return data["embeddings"]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, -1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PEERS))
def test_parity_with_original_implementation(kind: str, shared_data: Path, tmp_path: Path) -> None:
    checkpoint = importers.wheel_checkpoint(kind)
    if checkpoint is None:
        pytest.skip(f"{kind} checkpoint not installed (peers wheel under {importers.peers_venv()})")
    importers.import_model(kind, checkpoint, tmp_path / "model")
    bundle = load_model(tmp_path / "model")
    from speakerverify.audio import load_audio

    files = clips()
    waves = [load_audio(DATA / f) for f in files]
    embedder = TorchEmbedder(bundle)
    singles = np.concatenate([embedder.embed_batch([w]) for w in waves])
    batched = embedder.embed_batch(waves)  # one padded batch: must give the same rows
    reference = peer_embeddings(PEERS[kind], files, tmp_path)
    single_cos, batch_cos = cosines(singles, reference), cosines(batched, reference)
    print(f"{kind} parity: min cosine single {single_cos.min():.8f}, batched {batch_cos.min():.8f}")
    assert np.all(single_cos > 0.999), single_cos
    assert np.all(batch_cos > 0.999), batch_cos


def test_cli_import_model_with_dev_threshold(tmp_path: Path) -> None:
    """import-model end to end on a synthetic checkpoint; the threshold comes from a dev list."""
    import json

    import soundfile as sf
    from typer.testing import CliRunner

    from speakerverify.cli import app

    torch.manual_seed(0)
    params = {"embedding_dim": 16, "growth_rate": 8, "bn_size": 2, "init_channels": 16, "m_channels": 8,
              "blocks": [[1, 3, 1], [1, 3, 2], [1, 3, 2]]}
    torch.save(models.build("campplus", **params).state_dict(), tmp_path / "ckpt.pt")
    rng = np.random.default_rng(0)
    for i in range(4):
        sf.write(tmp_path / f"c{i}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
    (tmp_path / "my-dev.txt").write_text("1 c0.wav c1.wav\n1 c2.wav c3.wav\n0 c0.wav c2.wav\n0 c1.wav c3.wav\n")
    runner = CliRunner()
    bad = runner.invoke(app, ["import-model", "campplus", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "m"),
                              "--dev-trials", str(tmp_path / "x-test.txt"), "--root", str(tmp_path)])
    assert bad.exit_code != 0 and not (tmp_path / "m").exists()
    result = runner.invoke(app, ["import-model", "campplus", str(tmp_path / "ckpt.pt"), "--out", str(tmp_path / "m"),
                                 "--dev-trials", str(tmp_path / "my-dev.txt"), "--root", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    backend = json.loads((tmp_path / "m" / "backend.json").read_text())
    assert backend["threshold_source"]["trials"] == "my-dev.txt"
    assert json.loads(result.output)["thresholds"]["eer"] == backend["thresholds"]["eer"]
    assert load_model(tmp_path / "m").config["source"]["format"] == "3dspeaker-campplus"
