import pytest
import torch

from speakerverify import models
from speakerverify.models.siamese import SiameseCnn, SiameseGru, SiameseGruSeed

torch.set_num_threads(1)

SMALL = {
    "siamese-gru-seed": {"input_dim": 20, "hidden": 8},
    "siamese-gru": {"input_dim": 20, "hidden": 8},
    "siamese-cnn": {"input_dim": 20, "channels": [4, 8], "embed_dim": 16, "freq_pool": 2},
}


def _batch(lengths: list[int], dim: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    feats = torch.zeros(len(lengths), max(lengths), dim)
    for i, n in enumerate(lengths):
        feats[i, :n] = torch.rand(n, dim, generator=g) * 3
    return feats, torch.tensor(lengths)


def test_registered():
    assert {"siamese-gru-seed", "siamese-gru", "siamese-cnn"} <= set(models.names())


@pytest.mark.parametrize("name", sorted(SMALL))
def test_shapes_and_default_dims(name):
    net = models.build(name, **SMALL[name]).eval()
    feats, frames = _batch([7, 5, 3])
    emb = net(feats, frames)
    assert emb.shape == (3, 16 if name == "siamese-cnn" else 8)
    score = net.score(emb, emb.flip(0))
    assert score.shape == (3,) and bool(((score > 0) & (score < 1)).all())
    assert models.build(name).input_dim == 513


@pytest.mark.parametrize("name", sorted(SMALL))
def test_padding_never_changes_an_embedding(name):
    net = models.build(name, **SMALL[name]).eval()
    lengths = [9, 4, 1, 6, 2]
    feats, frames = _batch(lengths)
    sides = [net.forward] + ([net.forward_second] if hasattr(net, "forward_second") else [])
    with torch.no_grad():
        for side in sides:
            batched = side(feats, frames)
            singles = torch.cat([side(feats[i:i + 1, :n], frames[i:i + 1]) for i, n in enumerate(lengths)])
            torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)


def test_seed_model_branches_are_not_shared():
    net = SiameseGruSeed(input_dim=20, hidden=8).eval()
    assert not set(map(id, net.branch1.parameters())) & set(map(id, net.branch2.parameters()))
    feats, frames = _batch([5, 5])
    before = net(feats, frames).clone()
    assert not torch.allclose(before, net.forward_second(feats, frames))
    with torch.no_grad():
        for p in net.branch2.parameters():
            p.add_(1.0)
    torch.testing.assert_close(net(feats, frames), before)


def test_shared_models_have_one_branch():
    for net in (SiameseGru(input_dim=20, hidden=8), SiameseCnn(input_dim=20, channels=[4])):
        assert not hasattr(net, "forward_second")
    gru = SiameseGru(input_dim=20, hidden=8)
    n_branch = sum(p.numel() for p in gru.branch.parameters())
    assert sum(p.numel() for p in gru.parameters()) == n_branch + 2


def test_score_is_sigmoid_of_dense_on_cosine():
    net = SiameseGru(input_dim=20, hidden=8)
    ea, eb = torch.randn(4, 8), torch.randn(4, 8)
    cos = torch.nn.functional.cosine_similarity(ea, eb)
    w, b = net.head.dense.weight.item(), net.head.dense.bias.item()
    torch.testing.assert_close(net.score(ea, eb), torch.sigmoid(w * cos + b))


def test_keras_initialisation():
    gru = SiameseGruSeed(input_dim=20, hidden=8).branch1.gru
    assert torch.count_nonzero(gru.bias_ih_l0) == 0 and torch.count_nonzero(gru.bias_hh_l0) == 0
    w = gru.weight_hh_l0
    torch.testing.assert_close(w.T @ w, torch.eye(8), atol=1e-5, rtol=0)


def test_shared_models_start_by_calling_similar_inputs_same():
    signs = set()
    for seed in range(6):
        torch.manual_seed(seed)
        signs.add(SiameseGruSeed(input_dim=20, hidden=8).head.dense.weight.item() > 0)
        torch.manual_seed(seed)
        assert SiameseGru(input_dim=20, hidden=8).head.dense.weight.item() > 0
        torch.manual_seed(seed)
        assert SiameseCnn(input_dim=20, channels=[4]).head.dense.weight.item() > 0
    assert signs == {True, False}


def test_export_path_gives_the_packed_result(monkeypatch):
    from speakerverify.models import siamese

    net = SiameseGruSeed(input_dim=20, hidden=8).eval()
    feats, frames = _batch([9, 4, 1, 6])
    with torch.no_grad():
        packed = (net(feats, frames), net.forward_second(feats, frames))
        monkeypatch.setattr(siamese, "_tracing", lambda: True)
        gathered = (net(feats, frames), net.forward_second(feats, frames))
    for a, b in zip(packed, gathered, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
