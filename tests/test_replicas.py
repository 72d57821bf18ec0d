"""Two ``serve`` replicas over one PostgreSQL database agree: an enrollment through one is found by
``identify`` on the other, a removal through the other stops matching on the first, and a bounded
concurrent load over both has no errors. The replicas listen on 127.0.0.1 only; the database is on
the session's throwaway server (Unix socket, tests/pg_helpers.py); the shipped default model
embeds 3-second cuts of real test-split speech.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import soundfile as sf

from model_helpers import model_override, pick_speakers
from speakerverify.embedding import resolve_model_dir
from speakerverify.errors import ModelError
from speakerverify.service.local_server import start_local_server
from speakerverify.store import SpeakerStore
from speakerverify.store.keys import create_key

REQUESTS = 60
CLIENTS = 8


def _cut(path: Path, seconds: float = 3.0) -> bytes:
    wave, rate = sf.read(path, dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, wave[: int(seconds * rate)], rate, format="WAV")
    return buf.getvalue()


@pytest.fixture
def replicas(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str, str]]:
    try:
        resolve_model_dir(model_override())
    except ModelError as exc:
        pytest.skip(f"no shipped default model to serve ({exc})")
    with SpeakerStore(pg_url) as store:
        admin = create_key(store, "replica-admin", admin=True)
    extra = ("--no-access-log", "--rate-limit", "0")
    with (start_local_server(pg_url, tmp_path / "replica0.log", threads=1, model=model_override(), extra=extra) as a,
          start_local_server(pg_url, tmp_path / "replica1.log", threads=1, model=model_override(), extra=extra) as b):
        yield a.url, b.url, admin


def test_two_replicas_over_one_database_agree(replicas: tuple[str, str, str],
                                              test_speaker_clips: dict[str, list[Path]]) -> None:
    a, b, key = replicas
    auth = {"Authorization": f"Bearer {key}"}
    (spk1, clips1), (spk2, clips2) = pick_speakers(test_speaker_clips, 2)
    for base, spk, clips in ((a, spk1, clips1), (a, spk2, clips2)):
        files = [("files", (f"{spk}-{i}.wav", _cut(c), "audio/wav")) for i, c in enumerate(clips[:2])]
        r = httpx.post(f"{base}/v1/speakers", data={"name": spk}, files=files, headers=auth, timeout=60)
        assert r.status_code == 201, r.text
    probe1, probe2 = _cut(clips1[2]), _cut(clips2[2])

    def identify(base: str, probe: bytes) -> dict:
        r = httpx.post(f"{base}/v1/identify", files={"file": ("p.wav", probe, "audio/wav")}, headers=auth,
                       timeout=60)
        assert r.status_code == 200, r.text
        return r.json()

    # enrolled through a, found through b
    who = identify(b, probe1)
    assert who["speaker"] == spk1 and who["gallery"] == 2
    assert identify(b, probe2)["speaker"] == spk2
    # removed through b, no longer matched through a
    assert httpx.delete(f"{b}/v1/speakers/{spk1}", headers=auth, timeout=30).status_code == 200
    who = identify(a, probe1)
    assert who["gallery"] == 1 and who["speaker"] != spk1
    assert spk1 not in [c["speaker"] for c in who["candidates"]]

    # bounded load over both replicas: every answer 200, and every one agrees
    def one(i: int) -> tuple[int, str, float]:
        t0 = time.monotonic()
        r = httpx.post(f"{(a, b)[i % 2]}/v1/identify", files={"file": ("p.wav", probe2, "audio/wav")},
                       headers=auth, timeout=120)
        return r.status_code, r.json().get("speaker", ""), time.monotonic() - t0

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(one, range(REQUESTS)))
    errors = [s for s, _, _ in answers if s != 200]
    assert errors == [], f"{len(errors)} of {REQUESTS} requests failed: {sorted(set(errors))}"
    assert {spk for _, spk, _ in answers} == {spk2}
