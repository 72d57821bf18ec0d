"""Padding invariance of the conv architectures: a padded batch gives the single-input rows."""

from __future__ import annotations

import pytest
import torch

from speakerverify import models
from speakerverify.models.inference import PointwiseConv1d, for_inference
from speakerverify.models.masking import reflect_pad

torch.set_num_threads(1)

SMALL = {
    "ecapa-tdnn": {"channels": 32, "mfa_channels": 96, "embedding_dim": 16, "attention_channels": 8,
                   "se_channels": 8, "res2net_scale": 4},
    "ecapa-tdnn-zeros": {"channels": 32, "mfa_channels": 96, "embedding_dim": 16, "attention_channels": 8,
                         "se_channels": 8, "res2net_scale": 4, "padding": "zeros"},
    "resnet34-thin": {"base_width": 4, "embedding_dim": 16, "layers": [1, 1, 1, 1]},
    "campplus": {"embedding_dim": 16, "growth_rate": 8, "bn_size": 2, "init_channels": 16, "m_channels": 4,
                 "blocks": [[2, 3, 1], [2, 3, 2]]},
    "fastnet": {"channels": 32, "mfa_channels": 64, "embed_dim": 16},
}
SMALL["ensemble"] = {"members": [{"arch": "fastnet", "params": SMALL["fastnet"]},
                                 {"arch": "campplus", "params": SMALL["campplus"]}]}


def randomize_norms(net: torch.nn.Module, seed: int = 0) -> None:
    """Give batch norms non-trivial statistics so any leak from padded frames shows."""
    g = torch.Generator().manual_seed(seed)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if m.affine:
                m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.5)


def small_model(key: str) -> torch.nn.Module:
    torch.manual_seed(0)
    net = models.build(key.removesuffix("-zeros"), **SMALL[key])
    randomize_norms(net)
    return net.eval()


@pytest.mark.parametrize("key", sorted(SMALL))
def test_padded_batch_equals_single_inputs(key: str) -> None:
    net = small_model(key)
    lengths = [157, 3, 60, 201, 1]  # includes inputs shorter than every kernel and segment
    torch.manual_seed(1)
    singles = [torch.randn(1, n, 80) for n in lengths]
    batch = torch.zeros(len(lengths), max(lengths), 80)
    for i, s in enumerate(singles):
        batch[i, : s.shape[1]] = s[0]
    with torch.inference_mode():
        rows = net(batch, torch.tensor(lengths))
        for i, s in enumerate(singles):
            single = net(s, torch.tensor([s.shape[1]]))[0]
            assert torch.isfinite(single).all()
            torch.testing.assert_close(rows[i], single, atol=2e-5, rtol=1e-4)


# fastnet (and so an ensemble holding it) relies on the contract's zero padding: its strided stem
# convolves the zeros after the last frame, exactly as a single input's zero padding.
ZERO_PADDED = {"fastnet", "ensemble"}


@pytest.mark.parametrize("key", sorted(set(SMALL) - ZERO_PADDED))
def test_garbage_in_padded_frames_is_ignored(key: str) -> None:
    """Front ends zero padded frames, but models must not depend on it beyond the contract."""
    net = small_model(key)
    torch.manual_seed(2)
    x = torch.randn(2, 90, 80)
    x[1, 50:] = 0
    noisy = x.clone()
    noisy[1, 50:] = 1e3
    n = torch.tensor([90, 50])
    with torch.inference_mode():
        torch.testing.assert_close(net(noisy, n), net(x, n), atol=2e-5, rtol=1e-4)


def test_embedding_shape_and_registry() -> None:
    assert {"ecapa-tdnn", "resnet34-thin", "campplus"} <= set(models.names())
    for key in SMALL:
        net = small_model(key)
        out = net(torch.randn(2, 40, 80), torch.tensor([40, 33]))
        assert out.shape == (2, 32 if key == "ensemble" else 16)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 9])
def test_reflect_pad_matches_torch(n: int) -> None:
    x = torch.randn(1, 3, n)
    for pad in range(1, 5):
        ours = reflect_pad(torch.cat([x, torch.zeros(1, 3, 4)], dim=-1), torch.tensor([n]), pad)[..., : n + 2 * pad]
        if pad < n:
            torch.testing.assert_close(ours, torch.nn.functional.pad(x, (pad, pad), mode="reflect"))
        else:
            assert torch.isfinite(ours).all()


def test_ensemble_cosine_is_the_mean_of_its_members_cosines() -> None:
    net = small_model("ensemble")
    torch.manual_seed(2)
    a, b = torch.randn(1, 120, 80), torch.randn(1, 90, 80)
    with torch.inference_mode():
        ea, eb = net(a, torch.tensor([120])), net(b, torch.tensor([90]))
        joint = torch.nn.functional.cosine_similarity(ea, eb)
        each = [torch.nn.functional.cosine_similarity(m(a, torch.tensor([120])), m(b, torch.tensor([90])))
                for m in net.members]
    assert ea.shape[-1] == 16 + 16
    torch.testing.assert_close(joint, torch.stack(each).mean(0), atol=1e-6, rtol=1e-5)
    assert not torch.allclose(each[0], each[1])  # two different members, so the mean is a real fusion
    with pytest.raises(ValueError, match="at least two"):
        models.build("ensemble", members=[{"arch": "fastnet", "params": SMALL["fastnet"]}])


FOLDED = {"campplus", "fastnet", "ensemble"}  # the architectures with conv -> BatchNorm pairs to fold


@pytest.mark.parametrize("key", sorted(SMALL))
def test_inference_copy_embeds_like_the_network(key: str) -> None:
    """``for_inference`` folds BatchNorm into a copy: same rows on a padded batch and on single
    inputs, fewer BatchNorms where the architecture has pairs to fold, the network untouched."""
    net = small_model(key)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fast = for_inference(net)
    lengths = [201, 57, 2]
    torch.manual_seed(3)
    batch = torch.randn(len(lengths), max(lengths), 80)
    n = torch.tensor(lengths)
    with torch.inference_mode():
        torch.testing.assert_close(fast(batch, n), net(batch, n), atol=2e-5, rtol=1e-4)
        single = batch[:1, :201]
        torch.testing.assert_close(fast(single, n[:1]), net(single, n[:1]), atol=2e-5, rtol=1e-4)
    assert net.state_dict().keys() == before.keys()
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())

    def norms(m: torch.nn.Module) -> int:
        return sum(isinstance(x, torch.nn.modules.batchnorm._BatchNorm) for x in m.modules())

    assert norms(fast) < norms(net) if key in FOLDED else norms(fast) == norms(net)

    def pointwise(m: torch.nn.Module) -> int:
        return sum(PointwiseConv1d.replaces(x) for x in m.modules())

    assert pointwise(fast) == 0 and sum(isinstance(x, PointwiseConv1d) for x in fast.modules()) == pointwise(net)


def test_pointwise_conv_equals_conv1d() -> None:
    """The matrix-product path (a batch of one) and the conv1d path (larger batches) give conv1d's
    output, with and without bias, also on a non-contiguous input."""
    torch.manual_seed(5)
    for bias in (True, False):
        conv = torch.nn.Conv1d(12, 7, 1, bias=bias)
        fast = PointwiseConv1d(conv)
        for x in (torch.randn(1, 12, 9), torch.randn(3, 12, 9), torch.randn(1, 9, 12).transpose(1, 2)):
            torch.testing.assert_close(fast(x), conv(x), atol=1e-6, rtol=1e-5)
    assert not PointwiseConv1d.replaces(torch.nn.Conv1d(4, 4, 3))
    assert not PointwiseConv1d.replaces(torch.nn.Conv1d(4, 4, 1, stride=2))


@pytest.mark.parametrize("frames", [1, 2, 37, 230])
def test_campplus_unmasked_path_equals_masked(frames: int) -> None:
    """CAM++ drops its frame counts (``None``) when no row is padded, and every layer then skips its
    masks; that path gives what the masked one gives on the same whole rows, one frame included."""
    net = small_model("campplus")
    torch.manual_seed(6)
    x = torch.randn(2, 80, frames)
    n = torch.tensor([frames, frames])
    with torch.inference_mode():
        h = net.head(x, None)
        torch.testing.assert_close(h, net.head(x, n), atol=1e-6, rtol=1e-5)
        masked = net.xvector(h, n)  # a frame-count tensor takes the masked mean, std and CAM context
        torch.testing.assert_close(net.xvector(h, None), masked, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("frames", [71, 150, 237])
def test_campplus_front_module_in_chunks_equals_whole(frames: int) -> None:
    """A long unpadded input runs CAM++'s 2-D front module in chunks with a halo (bounded memory on
    long recordings): the same front-module output and embedding as one pass, for the network and
    its folded copy; a halo smaller than the receptive field would change them."""
    net = small_model("campplus")
    torch.manual_seed(4)
    x, n = torch.randn(1, frames, 80), torch.tensor([frames])
    with torch.inference_mode():
        whole_head, whole = net.head(x.transpose(1, 2), n), net(x, n)
        net.head.chunk = 50  # chunks of 50 frames with 10 on each side (every length here exceeds 70)
        torch.testing.assert_close(net.head(x.transpose(1, 2), n), whole_head, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net(x, n), whole, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(for_inference(net)(x, n), whole, atol=2e-5, rtol=1e-4)
        assert net.head.halo == 10  # conv1, 2 x 4 residual convs, conv2
        net.head.halo = 2
        assert not torch.allclose(net.head(x.transpose(1, 2), n), whole_head, atol=1e-3)
