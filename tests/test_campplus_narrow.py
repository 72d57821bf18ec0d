"""A narrowed CAM++ sliced from a full one (models.campplus_narrow)."""

from __future__ import annotations

import pytest
import torch

from speakerverify.models.campplus import CAMPPlus
from speakerverify.models.campplus_narrow import narrow_campplus

PARAMS = {"m_channels": 8, "init_channels": 32, "growth_rate": 8, "bn_size": 2, "embedding_dim": 16,
          "blocks": [[3, 3, 1], [4, 3, 2], [2, 3, 2]]}


def _trained_looking(seed: int = 0) -> CAMPPlus:
    """A small CAM++ whose BatchNorms hold varied statistics and gains (as a trained one does)."""
    torch.manual_seed(seed)
    net = CAMPPlus(**PARAMS)
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            if m.affine:
                m.weight.data.uniform_(0.2, 1.5)
                m.bias.data.uniform_(-0.2, 0.2)
    return net.eval()


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randn(2, 120, 80), torch.tensor([120, 90])


def test_keeping_everything_gives_the_same_network() -> None:
    net = _trained_looking()
    params, state = narrow_campplus(net.state_dict(), PARAMS, 8, [3, 4, 2])
    copy = CAMPPlus(**params)
    copy.load_state_dict(state)  # strict: every tensor present with its full shape
    x, n = _inputs()
    with torch.no_grad():
        torch.testing.assert_close(copy.eval()(x, n), net(x, n))


def test_the_first_dense_layers_compute_what_they_computed() -> None:
    net = _trained_looking()
    params, state = narrow_campplus(net.state_dict(), PARAMS, 8, [2, 2, 1])
    small = CAMPPlus(**params).eval()
    small.load_state_dict(state)
    assert params["blocks"] == [[2, 3, 1], [2, 3, 2], [1, 3, 2]]
    outs = {}
    for name, model in (("full", net), ("small", small)):
        model.xvector.block1.register_forward_hook(lambda _m, _i, o, name=name: outs.__setitem__(name, o))
    x, n = _inputs()
    with torch.no_grad():
        net(x, n), small(x, n)
    kept = 32 + 2 * 8  # the block input and two layers' outputs
    assert outs["small"].shape[1] == kept
    torch.testing.assert_close(outs["small"], outs["full"][:, :kept])


def test_a_narrowed_front_module_loads_and_keeps_the_channels_the_network_uses() -> None:
    net = _trained_looking()
    state = net.state_dict()
    dead = 5  # a residual-stream channel that nothing writes
    for key in [k for k in state if k.startswith("head.") and k.endswith(("bn1.weight", "bn2.weight"))]:
        if state[key].shape[0] == 8 and ("layer" not in key or key.endswith("bn2.weight")):
            state[key][dead] = 0.0
    params, small_state = narrow_campplus(state, PARAMS, 7, [3, 4, 2])
    small = CAMPPlus(**params).eval()
    small.load_state_dict(small_state)
    kept = [c for c in range(8) if c != dead]
    torch.testing.assert_close(small_state["head.conv1.weight"], state["head.conv1.weight"][kept])
    assert small.head.out_channels == 7 * 10
    x, n = _inputs()
    with torch.no_grad():
        emb = small(x, n)
    assert emb.shape == (2, 16) and torch.isfinite(emb).all()


@pytest.mark.parametrize(("m", "layers"), [(0, [3, 4, 2]), (9, [3, 4, 2]), (8, [3, 5, 2]), (8, [3, 0, 2]),
                                           (8, [3, 4])])
def test_impossible_sizes_are_refused(m: int, layers: list[int]) -> None:
    with pytest.raises(ValueError):
        narrow_campplus(_trained_looking().state_dict(), PARAMS, m, layers)
