"""Enrollment policy as plain functions (no database): names, input labels, duplicates, outliers,
averaging. The CLI, the Python API and the REST service all enroll through
:meth:`~speakerverify.store.SpeakerStore.enroll`, so they share this one policy:

* a clip that cannot be used (empty, undecodable, too short, silent, too long) is skipped and
  listed with its reason; enrollment fails only when no usable clip is left;
* a clip whose decoded 16 kHz audio is identical to an earlier one of the same enrollment
  (:func:`audio_digest`) is counted once, the copy listed as "duplicate of X";
* names are NFC-normalised (:func:`check_name`), so a name typed in two Unicode forms is one speaker.

Outlier rule (with at least three usable clips): each clip's cosine to the normalised mean of the
*other* clips (leave-one-out) is compared with the median of those cosines over the speaker's
clips; a clip more than ``max(0.2, 3 x 1.4826 x MAD)`` below that median, *and* which the model
would not accept as the others' speaker (its score against their mean is below the model's
threshold), is set aside as "too unlike the rest", as long as at least two clips (and more than
half) remain. With two clips, nothing is dropped; a warning is given when they score below the
threshold against each other.
"""

from __future__ import annotations

import hashlib
import os
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from speakerverify.errors import SpeakerVerifyError
from speakerverify.scoring import l2_normalize

#: An outlier sits at least this far (in cosine) below the median leave-one-out cosine...
OUTLIER_MIN_GAP = 0.2
#: ...and more than this many robust standard deviations (1.4826 x MAD) below it.
OUTLIER_MADS = 3.0
MAX_NAME_LEN = 100

#: ``score(a, b)``: the model's score of two embeddings (or a speaker model and an embedding).
Scorer = Callable[[np.ndarray, np.ndarray], float]


def check_name(name: str) -> str:
    """A speaker name: 1-100 printable characters, no '/', no surrounding spaces, in Unicode NFC
    (so "Zoë" typed as one code point or as "e" + combining diaeresis is one speaker)."""
    if not isinstance(name, str):
        raise SpeakerVerifyError("speaker name must be a string")
    clean = unicodedata.normalize("NFC", name).strip()
    if not clean:
        raise SpeakerVerifyError("speaker name is empty")
    if len(clean) > MAX_NAME_LEN:
        raise SpeakerVerifyError(f"speaker name is longer than {MAX_NAME_LEN} characters")
    if "/" in clean or not clean.isprintable():
        raise SpeakerVerifyError(f"speaker name {clean!r} contains '/' or control characters")
    return clean


def input_label(x: Any, i: int) -> str:
    """How an enrollment input is named in messages: its path, else its position."""
    if isinstance(x, (str, os.PathLike)):
        return str(x)
    if isinstance(x, bytes):
        return f"<upload {i + 1}>"
    return f"<array {i + 1}>"


def audio_digest(wave: np.ndarray) -> str:
    """SHA-256 of a clip's decoded 16 kHz samples: the same recording, whatever its file name or
    container, has the same digest."""
    return hashlib.sha256(np.ascontiguousarray(wave, dtype="<f4").tobytes()).hexdigest()


def duplicate_of(digest: str, label: str, seen: dict[str, str]) -> str | None:
    """The label of an earlier clip with this digest (then ``label`` is skipped), else None and
    ``label`` is remembered in ``seen``."""
    if digest in seen:
        return seen[digest]
    seen[digest] = label
    return None


def skip(name: str, reason: str) -> dict[str, str]:
    """One entry of an enrollment's skipped clips."""
    return {"file": name, "reason": reason}


def no_usable_clip(skipped: Sequence[dict[str, str]]) -> str:
    return "no usable enrollment clip (" + "; ".join(f"{r['file']}: {r['reason']}" for r in skipped) + ")"


def speaker_embedding(clip_embeddings: np.ndarray) -> np.ndarray:
    """A speaker's model: the normalised mean of its (normalised) clip embeddings."""
    return l2_normalize(l2_normalize(np.atleast_2d(clip_embeddings)).mean(axis=0))


def find_outliers(embeddings: np.ndarray, candidates: Sequence[int] | None = None) -> tuple[list[int], np.ndarray]:
    """Rows (among ``candidates``, default all) too unlike the rest; also each row's LOO cosine."""
    e = l2_normalize(np.atleast_2d(embeddings))
    n = len(e)
    if n < 3:
        return [], np.ones(n, dtype=np.float32)
    total = e.sum(axis=0)
    loo = np.array([float(l2_normalize(total - e[i]) @ e[i]) for i in range(n)], dtype=np.float32)
    med = float(np.median(loo))
    spread = 1.4826 * float(np.median(np.abs(loo - med)))
    cut = med - max(OUTLIER_MIN_GAP, OUTLIER_MADS * spread)
    pool = range(n) if candidates is None else candidates
    flagged = sorted((i for i in pool if loo[i] < cut), key=lambda i: loo[i])
    keep_at_least = max(2, n // 2 + 1)
    return sorted(flagged[: max(0, n - keep_at_least)]), loo


@dataclass
class Selection:
    """Which new clips to enroll: ``keep`` (indices into the new clips), the ``rejected`` ones
    with reasons, ``warnings``, and the speaker's resulting model ``embedding``."""

    keep: list[int]
    rejected: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    embedding: np.ndarray | None = None


def select_clips(old: Sequence[np.ndarray], new: Sequence[np.ndarray], sources: Sequence[str], threshold: float,
                 score: Scorer) -> Selection:
    """Apply the outlier rule to ``new`` clip embeddings added to the speaker's ``old`` ones."""
    all_emb = np.stack([*old, *new])
    new_idx = list(range(len(old), len(all_emb)))
    flagged, loo = find_outliers(all_emb, new_idx)
    outliers, rejected, warnings = [], [], []
    for i in flagged:  # ...and the model itself would not accept the clip as the others' speaker
        rest = speaker_embedding(np.delete(all_emb, i, axis=0))
        if score(rest, all_emb[i]) < threshold:
            outliers.append(i)
            rejected.append({"file": sources[i - len(old)],
                             "reason": f"too unlike the other clips (cosine {loo[i]:.2f} to their mean, "
                                       f"median {np.median(loo):.2f}); not enrolled"})
    keep = [j - len(old) for j in new_idx if j not in outliers]
    if len(all_emb) == 2:
        pair = score(all_emb[0], all_emb[1])
        if pair < threshold:
            warnings.append(f"the two clips score {pair:.2f} against each other, below the model's "
                            f"threshold {threshold:.2f}: check they are the same speaker")
    embedding = speaker_embedding(np.stack([*old, *(new[k] for k in keep)]))
    return Selection(keep, rejected, warnings, embedding)
