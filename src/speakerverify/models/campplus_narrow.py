"""A narrowed CAM++: a smaller CAM++ whose weights are sliced from a trained full-size one.

A student started from a slice of its teacher starts near it; distillation then has to mend what
the slice dropped instead of learning everything from random weights (which, on this project's few
hours of audio and one CPU, falls far short). Two cuts:

* the front module (FCM) keeps ``m_channels`` of its channels: the residual stream, each residual
  block's inner channels and the output convolution's channels are each chosen by how strongly
  the network writes them (BatchNorm gain) times how strongly the next layer reads them (norm of
  its weights over that channel);
* each densely connected block keeps its first ``layers[i]`` layers. Those see exactly the inputs
  they saw before (a dense layer reads only the block input and the layers before it), so in
  block 1, whose input is untouched, they compute what they computed; each transition layer keeps
  the half of its outputs that the following layers read most.

Everything else (the first TDNN layer's outputs, growth rate, bottleneck, embedding layer) keeps
its size. Weight slicing by index bookkeeping is not in any library we use (torch's pruning utilities
mask weights in place; they do not shrink a densely connected network), so it is written here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Tensor = torch.Tensor


def _bn_gain(state: dict[str, Tensor], prefix: str) -> Tensor:
    """|gamma| / sqrt(var + eps): how strongly a BatchNorm passes each channel on."""
    weight = state.get(prefix + ".weight")
    gain = torch.ones_like(state[prefix + ".running_var"]) if weight is None else weight.abs()
    return gain.float() / torch.sqrt(state[prefix + ".running_var"].float() + 1e-5)


def _read_strength(weight: Tensor, groups: int = 1) -> Tensor:
    """Norm of a conv weight over each input channel (``groups`` consecutive inputs per channel)."""
    w = weight.float().transpose(0, 1).reshape(weight.shape[1] // groups, -1)
    return w.norm(dim=1)


def _top(score: Tensor, k: int) -> list[int]:
    """Indices of the ``k`` largest scores, in ascending index order."""
    if not 0 < k <= score.numel():
        raise ValueError(f"cannot keep {k} of {score.numel()} channels")
    return sorted(torch.topk(score, k).indices.tolist())


def _bn(state: dict[str, Tensor], out: dict[str, Tensor], prefix: str, keep: Sequence[int]) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        key = f"{prefix}.{name}"
        if key in state:
            out[key] = state[key][list(keep)].clone()
    key = prefix + ".num_batches_tracked"
    if key in state:
        out[key] = state[key].clone()


def _conv(state: dict[str, Tensor], out: dict[str, Tensor], prefix: str,
          keep_out: Sequence[int] | None, keep_in: Sequence[int] | None) -> None:
    w = state[prefix + ".weight"]
    if keep_out is not None:
        w = w[list(keep_out)]
    if keep_in is not None:
        w = w[:, list(keep_in)]
    out[prefix + ".weight"] = w.clone()
    if prefix + ".bias" in state:
        b = state[prefix + ".bias"]
        out[prefix + ".bias"] = (b if keep_out is None else b[list(keep_out)]).clone()


def narrow_campplus(state: dict[str, Tensor], params: dict, m_channels: int,
                    layers: Sequence[int]) -> tuple[dict, dict[str, Tensor]]:
    """(params, state dict) of a CAM++ with ``m_channels`` front-module channels and the first
    ``layers[i]`` layers of dense block ``i``, sliced from the full model ``(params, state)``."""
    blocks = [tuple(b) for b in params.get("blocks", ((12, 3, 1), (24, 3, 2), (16, 3, 2)))]
    if len(layers) != len(blocks) or any(not 0 < k <= b[0] for k, b in zip(layers, blocks, strict=True)):
        raise ValueError(f"layers {list(layers)} must keep 1..n of each block's {[b[0] for b in blocks]} layers")
    growth = int(params.get("growth_rate", 32))
    old_m = state["head.conv1.weight"].shape[0]
    if not 0 < m_channels <= old_m:
        raise ValueError(f"m_channels {m_channels} must be in 1..{old_m}")
    out: dict[str, Tensor] = {}
    res_blocks = sorted({k.split(".")[1] + "." + k.split(".")[2] for k in state
                         if k.startswith(("head.layer1.", "head.layer2."))},
                        key=lambda s: (s.split(".")[0], int(s.split(".")[1])))

    # Front module: one residual stream, read by every block and by the output convolution.
    written = _bn_gain(state, "head.bn1") + sum(_bn_gain(state, f"head.{b}.bn2") for b in res_blocks)
    stream = _top(written * _read_strength(state["head.conv2.weight"]), m_channels)
    _conv(state, out, "head.conv1", stream, None)
    _bn(state, out, "head.bn1", stream)
    for b in res_blocks:
        p = f"head.{b}"
        inner = _top(_bn_gain(state, p + ".bn1") * _read_strength(state[p + ".conv2.weight"]), m_channels)
        _conv(state, out, p + ".conv1", inner, stream)
        _bn(state, out, p + ".bn1", inner)
        _conv(state, out, p + ".conv2", stream, inner)
        _bn(state, out, p + ".bn2", stream)
        if p + ".shortcut.0.weight" in state:
            _conv(state, out, p + ".shortcut.0", stream, stream)
            _bn(state, out, p + ".shortcut.1", stream)
    tdnn_w = state["xvector.tdnn.linear.weight"]
    freq = tdnn_w.shape[1] // old_m
    fcm_out = _top(_bn_gain(state, "head.bn2") * _read_strength(tdnn_w, groups=freq), m_channels)
    _conv(state, out, "head.conv2", fcm_out, stream)
    _bn(state, out, "head.bn2", fcm_out)
    # FCM's output is (channel, frequency) flattened channel-major.
    _conv(state, out, "xvector.tdnn.linear", None, [c * freq + f for c in fcm_out for f in range(freq)])
    _bn(state, out, "xvector.tdnn.nonlinear.batchnorm", range(tdnn_w.shape[0]))

    keep = list(range(tdnn_w.shape[0]))  # block input channels kept, as indices of the full model's
    for i, k in enumerate(layers, start=1):
        block_in = state[f"xvector.block{i}.tdnnd1.linear1.weight"].shape[1]
        for j in range(1, k + 1):
            p = f"xvector.block{i}.tdnnd{j}"
            _bn(state, out, p + ".nonlinear1.batchnorm", keep)
            _conv(state, out, p + ".linear1", None, keep)
            for name, value in state.items():
                if name.startswith(p + ".") and name not in out and ".nonlinear1." not in name:
                    out[name] = value.clone()
            keep = keep + list(range(block_in + (j - 1) * growth, block_in + j * growth))
        t = f"xvector.transit{i}"
        _bn(state, out, t + ".nonlinear.batchnorm", keep)
        if i < len(layers):
            nxt = f"xvector.block{i + 1}.tdnnd1"
            reads = _bn_gain(state, nxt + ".nonlinear1.batchnorm") * _read_strength(state[nxt + ".linear1.weight"])
        else:
            dense = state["xvector.dense.linear.weight"]
            c = dense.shape[1] // 2
            strength = _read_strength(dense)
            reads = _bn_gain(state, "xvector.out_nonlinear.batchnorm") * (strength[:c] + strength[c:])
        transit_out = _top(reads, len(keep) // 2)
        _conv(state, out, t + ".linear", transit_out, keep)
        keep = transit_out
    _bn(state, out, "xvector.out_nonlinear.batchnorm", keep)
    c = state["xvector.dense.linear.weight"].shape[1] // 2
    _conv(state, out, "xvector.dense.linear", None, keep + [c + o for o in keep])
    for name, value in state.items():
        if name.startswith("xvector.dense.nonlinear."):
            out[name] = value.clone()
    new_params = {**params, "m_channels": m_channels,
                  "blocks": [[k, b[1], b[2]] for k, b in zip(layers, blocks, strict=True)]}
    return new_params, out
