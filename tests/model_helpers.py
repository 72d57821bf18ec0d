"""Shared helpers for the tests that need the shipped default model and real speech."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

from speakerverify.errors import ModelError

#: For local experiments only: point the model-backed tests at another model directory.
MODEL_ENV = "SPEAKERVERIFY_TEST_MODEL"


def model_override() -> str | None:
    return os.environ.get(MODEL_ENV) or None


@functools.lru_cache(maxsize=1)
def _load():
    from speakerverify.verifier import Verifier

    # One torch thread: on a small shared machine intra-op threads fight other processes for cores
    # (and every test here embeds one short clip at a time).
    return Verifier(model_override(), threads=1)


def default_verifier():
    """The shipped default model (loaded once per test process), or skip when it is not there."""
    try:
        return _load()
    except ModelError as exc:
        pytest.skip(f"no shipped default model to test with ({exc})")


def pick_speakers(clips_by_speaker: dict[str, list[Path]], n: int = 4) -> list[tuple[str, list[Path]]]:
    """The first ``n`` TEST-split speakers (by id) with at least three clips."""
    chosen = [(s, c) for s, c in sorted(clips_by_speaker.items()) if len(c) >= 3][:n]
    if len(chosen) < n:
        pytest.skip(f"need {n} test speakers with 3+ clips, found {len(chosen)}")
    return chosen
