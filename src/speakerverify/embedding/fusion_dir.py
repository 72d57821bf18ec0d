"""A fusion model directory from member model directories: :func:`write_fusion_dir`.

The members' networks go, with their trained weights, into one
:class:`~speakerverify.models.fusion.Fusion` over a ``stacked`` front end of the members' own
front ends (:mod:`speakerverify.features.stacked`); ``alpha`` weights the members' cosines. The
back end is written separately (``scripts/make_fusion.py`` fits it on dev).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speakerverify import models
from speakerverify.embedding.model_dir import ModelBundle, file_sha256, write_model_dir
from speakerverify.errors import ModelError


def check_member(bundle: ModelBundle) -> None:
    """A fusion member must be a single-branch cosine model without a VAD policy of its own."""
    if bundle.two_branch or hasattr(bundle.network, "score") or bundle.config.get("vad"):
        raise ModelError(f"{bundle.directory}: only single-branch cosine models without VAD can be fused")


def write_fusion_dir(out: str | Path, bundles: Sequence[ModelBundle], alpha: Sequence[float], *,
                     name: str = "fusion", record: dict[str, Any] | None = None) -> Path:
    """Write the fusion of ``bundles`` weighted by ``alpha`` to ``out``; ``record`` (how the weights
    were fitted) is kept under the ``fusion`` key of ``model.yaml`` with the members' identities."""
    if len(bundles) < 2:
        raise ModelError("a fusion needs at least two member models")
    for b in bundles:
        check_member(b)
    params = {"members": [{"arch": b.config["arch"], "params": b.config.get("params") or {}} for b in bundles],
              "feat_dims": [int(b.frontend.dim) for b in bundles], "alpha": [float(a) for a in alpha]}
    network = models.build("fusion", **params)
    for member, b in zip(network.members, bundles, strict=True):
        member.load_state_dict(b.network.state_dict())
    members = [{"model": str(b.directory), "ident": b.ident, "sha256": file_sha256(b.weights_path)} for b in bundles]
    record = {**(record or {}), "alpha": list(params["alpha"]), "members": members}
    version = hashlib.sha256(json.dumps([members, params["alpha"]]).encode()).hexdigest()[:10]
    frontend = {"type": "stacked", "members": [b.config["frontend"] for b in bundles]}
    return write_model_dir(out, "fusion", params, frontend, network.state_dict(), name=name, version=version,
                           min_duration_s=max(b.min_duration_s for b in bundles), extra={"fusion": record})
