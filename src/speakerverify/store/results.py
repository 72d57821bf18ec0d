"""What the store's operations return: typed results with ``to_dict()`` (the JSON of the CLI and
the REST API)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from speakerverify.scoring import Decision


@dataclass
class EnrollResult:
    name: str
    model: str
    enrolled: list[str] = field(default_factory=list)
    rejected: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    n_clips: int = 0
    replaced: bool = False

    @property
    def skipped(self) -> list[dict[str, str]]:
        """The clips left out, ``{name, reason}`` each (``rejected`` is the same list as
        ``{file, reason}``, the key older versions gave)."""
        return [{"name": r["file"], "reason": r["reason"]} for r in self.rejected]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "enrolled": self.enrolled,
                "skipped": self.skipped, "rejected": self.rejected, "warnings": self.warnings,
                "n_clips": self.n_clips, "replaced": self.replaced}


@dataclass
class ReembedResult:
    model: str
    reembedded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    must_reenroll: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "reembedded": self.reembedded, "unchanged": self.unchanged,
                "must_reenroll": self.must_reenroll}


@dataclass(frozen=True)
class Candidate:
    """One enrolled speaker ranked by identification, with its decision at the identify threshold."""

    speaker: str
    decision: Decision

    @property
    def score(self) -> float:
        return self.decision.score

    @property
    def same_speaker(self) -> bool:
        return self.decision.same_speaker

    def to_dict(self) -> dict[str, Any]:
        d = self.decision.to_dict()
        del d["threshold"]  # the same for every candidate: given once, in IdentifyResult
        return {"speaker": self.speaker, **d}


@dataclass(frozen=True)
class IdentifyResult:
    """``speaker``: the best candidate passing ``threshold``, else ``"unknown"``; ``candidates``
    ranked by score; ``gallery``: the number of enrolled speakers searched."""

    speaker: str
    candidates: list[Candidate]
    threshold: float
    model: str
    gallery: int

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "candidates": [c.to_dict() for c in self.candidates],
                "threshold": self.threshold, "model": self.model, "gallery": self.gallery}
