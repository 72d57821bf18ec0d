"""Inference copies of networks, with BatchNorm folded into the convolution before it and
pointwise convolutions run as matrix products on a batch of one.

In eval mode a BatchNorm that follows a convolution is a fixed affine map per channel, so it folds
into the convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same
outputs to float rounding, one pass over the activations fewer per pair. Blocks that hold such
pairs say so with a ``fold_batchnorm()`` method; every other module is left as it is.

A kernel-1 ``Conv1d`` becomes :class:`PointwiseConv1d`: on one input, torch runs a small
convolution through its reference path, which copies the input into a column matrix before the
matrix product; the product straight on the activations is up to 2.5x faster for CAM++'s 1x1
layers on a 1-s clip. Larger batches keep ``conv1d``, which is as fast or faster there.

The copy is for embedding only: its parameter names differ from the network's, so checkpoints,
digests and exports keep using the network itself.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn


class PointwiseConv1d(nn.Module):
    """A kernel-1 ``Conv1d`` (stride 1, no padding, one group) with the same weights: a matrix
    product on a batch of one, ``conv1d`` otherwise."""

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias

    @staticmethod
    def replaces(module: nn.Module) -> bool:
        return (type(module) is nn.Conv1d and module.kernel_size == (1,) and module.stride == (1,)
                and module.padding == (0,) and module.dilation == (1,) and module.groups == 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != 1:
            return F.conv1d(x, self.weight, self.bias)
        y = torch.mm(self.weight[:, :, 0], x[0])
        if self.bias is not None:
            y += self.bias.unsqueeze(1)
        return y.unsqueeze(0)


def for_inference(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` with every foldable BatchNorm folded and every pointwise
    ``Conv1d`` a :class:`PointwiseConv1d`; ``network`` is untouched."""
    folded = copy.deepcopy(network).eval()
    for module in list(folded.modules()):  # listed first: folding replaces children
        fold = getattr(module, "fold_batchnorm", None)
        if callable(fold):
            fold()
    for module in list(folded.modules()):
        for name, child in module.named_children():
            if PointwiseConv1d.replaces(child):
                setattr(module, name, PointwiseConv1d(child))
    return folded
