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


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL server for the session (tests/pg_helpers.py); skips when none."""
    from pg_helpers import start_cluster

    cluster = start_cluster()
    if isinstance(cluster, str):
        pytest.skip(f"PostgreSQL cases skipped: {cluster}")
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh empty PostgreSQL database on the session's server: its URL."""
    return pg_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's store lives, once per engine: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return request.getfixturevalue("pg_url")
    return str(tmp_path / "s.db")
