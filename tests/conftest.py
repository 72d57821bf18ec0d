from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPEAKERVERIFY_SHARED", REPO.parent / "shared")).resolve()
DATA = SHARED / "data"
LIBRI = DATA / "corpora" / "libri-train-clean"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not DATA.is_dir():
        pytest.skip(f"{DATA} not found: the shared speech data must sit beside the repository")
    return DATA


@pytest.fixture(scope="session")
def test_speaker_clips(shared_data: Path) -> dict[str, list[Path]]:
    """Clips of a few TEST-split speakers of libri-train-clean, by speaker."""
    from speakerverify.data import from_manifest

    by_spk: dict[str, list[Path]] = {}
    for u in from_manifest(LIBRI / "manifest.csv", splits=["test"]):
        by_spk.setdefault(u.speaker, []).append(u.path)
    return {s: sorted(p) for s, p in sorted(by_spk.items()) if len(p) >= 3}
