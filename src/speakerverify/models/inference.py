"""Inference copies of networks, with BatchNorm folded into the convolution before it.

In eval mode a BatchNorm that follows a convolution is a fixed affine map per channel, so it folds
into the convolution's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): the same
outputs to float rounding, one pass over the activations fewer per pair. Blocks that hold such
pairs say so with a ``fold_batchnorm()`` method; every other module is left as it is.

The copy is for embedding only: its parameter names differ from the network's, so checkpoints,
digests and exports keep using the network itself.
"""

from __future__ import annotations

import copy

from torch import nn


def for_inference(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` with every foldable BatchNorm folded; ``network`` is untouched."""
    folded = copy.deepcopy(network).eval()
    for module in list(folded.modules()):  # listed first: folding replaces children
        fold = getattr(module, "fold_batchnorm", None)
        if callable(fold):
            fold()
    return folded
