"""The REST service through fastapi's TestClient.

Auth, size limits, bad input and concurrency use the stub verifier (fast, model-independent);
verify/identify on real clips use the shipped default model.
"""

from __future__ import annotations

import io
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from model_helpers import default_verifier, pick_speakers
from stub_verifier import StubVerifier, tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from speakerverify.service.app import ServiceConfig, create_app
from speakerverify.store import SpeakerStore
from speakerverify.store.keys import create_key


def wav_bytes(wave: np.ndarray, rate: int = 16000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt)
    return buf.getvalue()


class Service:
    def __init__(self, tmp: Path, verifier, max_upload_bytes: int = 2_000_000, workers: int = 2) -> None:
        self.db = tmp / "service.db"
        store = SpeakerStore(self.db, verifier=verifier)
        self.admin = {"Authorization": f"Bearer {create_key(store, 'admin', admin=True)}"}
        self.user = {"Authorization": f"Bearer {create_key(store, 'user')}"}
        store.close()
        self.app = create_app(ServiceConfig(store=self.db, verifier=verifier, max_upload_bytes=max_upload_bytes,
                                            workers=workers))
        self.client = TestClient(self.app)


@pytest.fixture(scope="module")
def stub_service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    return Service(tmp_path_factory.mktemp("stubsvc"), StubVerifier())


def test_public_routes(stub_service: Service) -> None:
    c = stub_service.client
    assert c.get("/healthz").json() == {"status": "ok", "model": "stub@1"}
    page = c.get("/")
    assert page.status_code == 200 and "speakerverify" in page.text and "<script" in page.text
    assert "cdn" not in page.text.lower() and "https://" not in page.text
    spec = c.get("/openapi.json").json()
    paths = spec["paths"]
    assert {"/v1/verify", "/v1/embed", "/v1/speakers", "/v1/speakers/{name}", "/v1/speakers/{name}/verify",
            "/v1/identify"} <= set(paths)
    # Bearer keys are a declared security scheme (the API page's "Authorize"); /healthz needs none.
    assert {s["scheme"] for s in spec["components"]["securitySchemes"].values()} == {"bearer"}
    assert paths["/v1/identify"]["post"]["security"] and "security" not in paths["/healthz"]["get"]
    docs = c.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text and "/openapi.json" in docs.text
    assert "https://" not in docs.text  # no CDN: the page's script and style come from this server
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"):
        assert f"/docs-assets/{asset}" in docs.text
        assert c.get(f"/docs-assets/{asset}").status_code == 200


ROUTES = [("post", "/v1/verify"), ("post", "/v1/embed"), ("get", "/v1/speakers"), ("post", "/v1/speakers"),
          ("delete", "/v1/speakers/x"), ("post", "/v1/speakers/x/verify"), ("post", "/v1/identify"),
          ("get", "/v1/whoami")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_keys_are_required(stub_service: Service, method: str, path: str) -> None:
    c = stub_service.client
    for headers in ({}, {"Authorization": "Bearer svk_wrong"}, {"Authorization": "Basic abc"}):
        r = getattr(c, method)(path, headers=headers)
        assert r.status_code == 401, (path, headers)
        assert r.json()["error"] and r.headers["www-authenticate"] == "Bearer"


def test_admin_key_needed_to_enroll_and_remove(stub_service: Service) -> None:
    c = stub_service.client
    files = [("files", ("a.wav", wav_bytes(tone(300)), "audio/wav"))]
    r = c.post("/v1/speakers", headers=stub_service.user, data={"name": "low"}, files=files)
    assert r.status_code == 403 and "admin" in r.json()["error"]
    assert c.delete("/v1/speakers/low", headers=stub_service.user).status_code == 403
    r = c.post("/v1/speakers", headers=stub_service.admin, data={"name": "low"}, files=files)
    assert r.status_code == 201 and r.json()["n_clips"] == 1
    assert [s["name"] for s in c.get("/v1/speakers", headers=stub_service.user).json()["speakers"]] == ["low"]
    assert c.delete("/v1/speakers/low", headers=stub_service.admin).json() == {"removed": "low"}
    r = c.delete("/v1/speakers/low", headers=stub_service.admin)
    assert r.status_code == 404 and "low" in r.json()["error"]


def test_uploads_over_the_limit_get_413(stub_service: Service) -> None:
    c = stub_service.client
    big = wav_bytes(tone(300, seconds=70))  # ~2.2 MB > 2 MB
    r = c.post("/v1/embed", headers=stub_service.user, files={"file": ("big.wav", big)})
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(40):
            yield b"x" * 100_000

    r = c.post("/v1/embed", headers={**stub_service.user, "content-type": "multipart/form-data; boundary=b"},
               content=chunks())
    assert r.status_code == 413 and r.json()["error"]
    # the service still works afterwards
    ok = c.post("/v1/embed", headers=stub_service.user, files={"file": ("a.wav", wav_bytes(tone(300)))})
    assert ok.status_code == 200 and ok.json()["dim"] == 32


@pytest.mark.parametrize("upload,expect", [
    (("junk.wav", b"this is not audio"), "junk.wav: not a readable audio file"),
    (("empty.wav", b""), "empty"),
    (("short.wav", wav_bytes(tone(300, seconds=0.1))), "short.wav: too short"),
    (("silent.wav", wav_bytes(np.zeros(16000, np.float32))), "silent"),
    (("noisy.ogg", b"OggS" + b"\0" * 200), "noisy.ogg"),
])
def test_unreadable_audio_gets_422(stub_service: Service, upload: tuple[str, bytes], expect: str) -> None:
    c = stub_service.client
    good = ("good.wav", wav_bytes(tone(300)))
    for path, files in (("/v1/embed", {"file": upload}), ("/v1/identify", {"file": upload}),
                        ("/v1/verify", {"a": upload, "b": good})):
        r = c.post(path, headers=stub_service.user, files=files)
        assert r.status_code == 422, (path, r.text)
        assert expect in r.json()["error"]


def test_too_long_recordings_get_422(tmp_path: Path) -> None:
    store = SpeakerStore(tmp_path / "s.db", verifier=StubVerifier())
    key = create_key(store, "u")
    app = create_app(ServiceConfig(store=tmp_path / "s.db", verifier=StubVerifier(), max_audio_s=5))
    data = wav_bytes(tone(300, seconds=6))
    auth = {"Authorization": f"Bearer {key}"}
    r = TestClient(app).post("/v1/embed", headers=auth, files={"file": ("long.wav", data)})
    assert r.status_code == 422 and r.json()["error"] == "long.wav: too long: 6 s, at most 5 s per recording"


def test_malformed_requests_get_json_errors(stub_service: Service) -> None:
    c = stub_service.client
    r = c.post("/v1/verify", headers=stub_service.user, files={"a": ("a.wav", wav_bytes(tone(300)))})
    assert r.status_code == 422 and "b" in r.json()["error"]
    r = c.post("/v1/identify", headers=stub_service.user, data={"top": "0"},
               files={"file": ("a.wav", wav_bytes(tone(300)))})
    assert r.status_code == 422 and "top" in r.json()["error"]
    r = c.post("/v1/identify", headers=stub_service.user, data={"stranger_rate": "0"},
               files={"file": ("a.wav", wav_bytes(tone(300)))})
    assert r.status_code == 422 and "stranger_rate" in r.json()["error"]
    r = c.post("/v1/speakers/nobody/verify", headers=stub_service.user,
               files={"file": ("a.wav", wav_bytes(tone(300)))})
    assert r.status_code == 404 and "nobody" in r.json()["error"]
    r = c.post("/v1/speakers", headers=stub_service.admin, data={"name": "x"},
               files=[("files", ("short.wav", wav_bytes(tone(300, seconds=0.1))))])
    assert r.status_code == 422 and "no usable enrollment clip" in r.json()["error"]
    r = c.post("/v1/verify", headers=stub_service.user, data={"far": "0.123"},
               files={"a": ("a.wav", wav_bytes(tone(300))), "b": ("b.wav", wav_bytes(tone(300)))})
    assert r.status_code == 400 and r.json()["error"]
    assert c.get("/nope").json() == {"error": "Not Found"}


def test_ogg_opus_upload_is_read(stub_service: Service) -> None:
    """Firefox's MediaRecorder gives ogg/opus; libsndfile reads it (Chromium's webm it does not)."""
    data = wav_bytes(tone(300, seconds=1.5, noise=0.05), rate=48000, fmt="OGG")
    r = stub_service.client.post("/v1/embed", headers=stub_service.user, files={"file": ("rec.ogg", data)})
    assert r.status_code == 200, r.text


class BlockingStub(StubVerifier):
    """An embedding that holds its worker until the test releases it."""

    def __init__(self) -> None:
        super().__init__()
        self.started = threading.Event()
        self.release = threading.Event()

    def embed_waves(self, waves, second=False, batch_size=1):
        self.started.set()
        assert self.release.wait(60), "the test never released the embedding"
        return super().embed_waves(waves)


def test_inference_does_not_block_other_requests(tmp_path: Path) -> None:
    # Ordering, not wall-clock: other requests must complete while an embedding is still
    # held inside the inference worker (the embedding cannot finish until they have).
    stub = BlockingStub()
    svc = Service(tmp_path, stub, workers=1)
    c = svc.client
    results: list[int] = []
    t = threading.Thread(target=lambda: results.append(
        c.post("/v1/embed", headers=svc.user, files={"file": ("a.wav", wav_bytes(tone(300)))}).status_code))
    t.start()
    try:
        assert stub.started.wait(30), "the embedding never started"
        assert c.get("/healthz").status_code == 200
        assert c.get("/v1/speakers", headers=svc.user).status_code == 200
        assert not results  # the embedding is still held
    finally:
        stub.release.set()
        t.join(60)
    assert results == [200]


# -- the shipped default model on real speech -------------------------------------------------


@pytest.fixture(scope="module")
def real_service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    return Service(tmp_path_factory.mktemp("realsvc"), default_verifier(), max_upload_bytes=5_000_000)


def test_verify_real_clips(real_service: Service, test_speaker_clips: dict[str, list[Path]]) -> None:
    (s1, c1), (s2, c2) = pick_speakers(test_speaker_clips, 2)
    c = real_service.client

    def post(a: Path, b: Path) -> dict:
        r = c.post("/v1/verify", headers=real_service.user, files={"a": (a.name, a.read_bytes()),
                                                                   "b": (b.name, b.read_bytes())})
        assert r.status_code == 200, r.text
        return r.json()

    same, diff = post(c1[0], c1[-1]), post(c1[0], c2[-1])
    local = default_verifier().verify(c1[0], c1[-1]).to_dict()
    assert set(same) == set(local)  # the same keys as `speakerverify verify --json`
    assert same["score"] == pytest.approx(local["score"], abs=1e-4)
    assert same["score"] > diff["score"]
    emb = c.post("/v1/embed", headers=real_service.user, files={"file": (c1[0].name, c1[0].read_bytes())}).json()
    assert emb["dim"] == len(emb["embedding"]) and emb["model"] == default_verifier().model_ident


def test_enroll_identify_verify_real_clips(real_service: Service, test_speaker_clips: dict[str, list[Path]]) -> None:
    c = real_service.client
    chosen = pick_speakers(test_speaker_clips, 2)
    for spk, clips in chosen:
        r = c.post("/v1/speakers", headers=real_service.admin, data={"name": spk},
                   files=[("files", (p.name, p.read_bytes())) for p in clips[:2]])
        assert r.status_code == 201, r.text
        assert r.json()["n_clips"] == 2
    spk, clips = chosen[0]
    r = c.post("/v1/identify", headers=real_service.user, data={"top": "2"},
               files={"file": (clips[-1].name, clips[-1].read_bytes())})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["candidates"][0]["speaker"] == spk and len(body["candidates"]) == 2
    assert body["speaker"] == spk  # passes the default bar: at most 1 % of strangers let in
    r = c.post("/v1/identify", headers=real_service.user, data={"stranger_rate": "1"},
               files={"file": (clips[-1].name, clips[-1].read_bytes())})
    assert r.status_code == 200 and r.json()["threshold"] < body["threshold"]  # even odds: a lower bar
    r = c.post(f"/v1/speakers/{spk}/verify", headers=real_service.user,
               files={"file": (clips[-1].name, clips[-1].read_bytes())})
    assert r.status_code == 200 and r.json()["speaker"] == spk
    assert {"score", "same_speaker", "threshold"} <= set(r.json())


def test_service_refuses_a_store_of_another_model(tmp_path: Path) -> None:
    from speakerverify.errors import ModelError

    SpeakerStore(tmp_path / "s.db", verifier=StubVerifier("1")).enroll("a", [tone(300)])
    with pytest.raises(ModelError, match="stub@1.*stub@2"):
        create_app(ServiceConfig(store=tmp_path / "s.db", verifier=StubVerifier("2")))
