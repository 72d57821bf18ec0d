"""Property-based tests of the REST inputs (issue 10, item 9): random headers, truncated and garbage
uploads, WAV headers with random sample rates, channel counts and lengths, random form fields and
speaker names. Every answer is JSON with a 2xx or 4xx status (errors exactly ``{"error": "..."}``),
never a 500, and the service keeps answering afterwards.

The stub verifier keeps each example fast; rate limits are off so that they do not answer for the
properties (they have their own tests in test_service_limits.py).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audio_helpers import noise, pcm_wav
from stub_verifier import StubVerifier, tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from speakerverify.service.app import ServiceConfig, create_app
from speakerverify.store import SpeakerStore
from speakerverify.store.keys import create_key

#: Examples per property; SPEAKERVERIFY_FUZZ_EXAMPLES=2000 for a longer hunt.
EXAMPLES = int(os.environ.get("SPEAKERVERIFY_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
ROUTES = [("post", "/v1/verify"), ("post", "/v1/embed"), ("get", "/v1/speakers"), ("post", "/v1/speakers"),
          ("delete", "/v1/speakers/nobody"), ("post", "/v1/speakers/s1/verify"), ("post", "/v1/identify"),
          ("get", "/v1/whoami"), ("get", "/healthz"), ("get", "/"), ("get", "/docs"), ("get", "/openapi.json")]


def wav(wave: np.ndarray, rate: int = 16000, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format=fmt)
    return buf.getvalue()


GOOD = wav(tone(300))
BASES = [GOOD, wav(tone(500, seconds=0.8), rate=44100), wav(tone(700), fmt="FLAC"),
         wav(tone(900, seconds=1.0), rate=48000, fmt="OGG")]


class Fuzzed:
    def __init__(self, tmp: Path) -> None:
        db = tmp / "fuzz.db"
        with SpeakerStore(db, verifier=StubVerifier()) as store:
            self.admin = {"Authorization": f"Bearer {create_key(store, 'admin', admin=True)}"}
            store.enroll("s1", [tone(300)])
        self.client = TestClient(create_app(ServiceConfig(
            store=db, verifier=StubVerifier(), max_upload_bytes=1_000_000, max_audio_s=20,
            rate_limit=0, auth_fail_limit=0)))

    def check(self, r) -> dict:
        """The property every answer has."""
        assert 200 <= r.status_code < 300 or 400 <= r.status_code < 500, (r.status_code, r.text[:300])
        if r.request.url.path == "/" and r.status_code == 200:
            return {}
        if r.request.url.path == "/docs" and r.status_code == 200:
            assert "swagger-ui" in r.text
            return {}
        body = r.json()
        assert isinstance(body, dict)
        if r.status_code >= 400:
            assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
        return body

    def still_answers(self) -> None:
        assert self.client.get("/healthz").json()["status"] == "ok"
        r = self.client.post("/v1/embed", headers=self.admin, files={"file": ("ok.wav", GOOD)})
        assert r.status_code == 200 and r.json()["dim"] == 32


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Fuzzed:
    return Fuzzed(tmp_path_factory.mktemp("fuzz"))


HEADER_NAMES = st.sampled_from(["authorization", "content-type", "accept", "x-request-id", "cookie",
                                "x-forwarded-for", "range", "accept-encoding", "origin", "x-anything"])
HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300),
    st.builds(lambda s: "Bearer " + s, st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)),
    st.sampled_from(["Bearer", "Bearer ", "Basic abc", "multipart/form-data", "multipart/form-data; boundary=",
                     "multipart/form-data; boundary=x", "application/json", "text/plain", "*/*", "gzip"]),
)


@FUZZ
@given(route=st.sampled_from(ROUTES), headers=st.dictionaries(HEADER_NAMES, HEADER_VALUES, max_size=6),
       body=st.one_of(st.none(), st.binary(max_size=2000)), keyed=st.booleans())
def test_random_headers_and_bodies(svc: Fuzzed, route: tuple[str, str], headers: dict[str, str],
                                   body: bytes | None, keyed: bool) -> None:
    method, path = route
    if keyed and "authorization" not in headers:
        headers = {**headers, **svc.admin}
    kwargs = {"headers": headers}
    if body is not None and method == "post":
        kwargs["content"] = body
    svc.check(svc.client.request(method.upper(), path, **kwargs))


@st.composite
def broken_upload(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(BASES))
    how = draw(st.sampled_from(["truncate", "flip", "garbage", "splice", "empty-ish"]))
    if how == "truncate":
        return base[:draw(st.integers(0, len(base)))]
    if how == "flip":
        data = bytearray(base)
        for _ in range(draw(st.integers(1, 20))):
            i = draw(st.integers(0, len(data) - 1))
            data[i] = draw(st.integers(0, 255))
        return bytes(data)
    if how == "garbage":
        return draw(st.binary(min_size=1, max_size=5000))
    if how == "splice":
        cut = draw(st.integers(0, 200))
        return base[:cut] + draw(st.binary(max_size=3000))
    return base[:44]


@FUZZ
@given(data=broken_upload(), route=st.sampled_from(["/v1/embed", "/v1/identify", "/v1/verify", "/v1/speakers",
                                                    "/v1/speakers/s1/verify"]),
       filename=st.text(max_size=40))
def test_truncated_and_garbage_uploads(svc: Fuzzed, data: bytes, route: str, filename: str) -> None:
    upload = (filename or "x", data)
    if route == "/v1/verify":
        files = {"a": upload, "b": ("good.wav", GOOD)}
    elif route == "/v1/speakers":
        files = [("files", upload)]
    else:
        files = {"file": upload}
    form = {"name": "fuzzed"} if route == "/v1/speakers" else None
    body = svc.check(svc.client.post(route, headers=svc.admin, data=form, files=files))
    if route == "/v1/embed" and body.get("embedding") is not None:
        assert len(body["embedding"]) == body["dim"] and all(np.isfinite(body["embedding"]))


@FUZZ
@given(rate=st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([1, 8000, 16000, 44100, 96000, 384000])),
       channels=st.integers(0, 9), bits=st.sampled_from([0, 7, 8, 16, 24, 32, 64]),
       fmt_tag=st.sampled_from([1, 1, 1, 3, 0, 0xFFFE, 0x55]), n_bytes=st.integers(0, 60_000),
       data_size=st.one_of(st.none(), st.integers(0, 2**32 - 1)))
def test_wav_headers_with_random_rates_and_lengths(svc: Fuzzed, rate: int, channels: int, bits: int, fmt_tag: int,
                                                   n_bytes: int, data_size: int | None) -> None:
    samples = (noise(n_bytes // 2 + 1, seed=n_bytes) * 32767).astype("<i2").tobytes()[:n_bytes]
    data = pcm_wav(samples, rate, channels=channels, bits=bits, fmt_tag=fmt_tag, data_size=data_size)
    r = svc.client.post("/v1/embed", headers=svc.admin, files={"file": ("h.wav", data)})
    svc.check(r)
    if r.status_code == 422:
        assert r.json()["error"].startswith("h.wav: ")  # names the upload


FIELD = st.one_of(st.text(max_size=60), st.sampled_from(["", "0", "-1", "1", "nan", "inf", "1e309", "0.01", "5",
                                                         "true", "false", "101", "99999999999999999999"]))
NAMES = st.one_of(st.text(max_size=120), st.sampled_from(["", " ", "s1", "Zoë", "Zoe\u0308", "a" * 300, "../x",
                                                          "%00", "\u202e", "\x00"]))


@FUZZ
@given(top=FIELD, far=FIELD, replace=FIELD, name=NAMES, path_name=NAMES)
def test_random_form_fields_and_names(svc: Fuzzed, top: str, far: str, replace: str, name: str,
                                      path_name: str) -> None:
    c, up = svc.client, ("f.wav", GOOD)
    svc.check(c.post("/v1/identify", headers=svc.admin, data={"top": top, "far": far}, files={"file": up}))
    svc.check(c.post("/v1/verify", headers=svc.admin, data={"far": far}, files={"a": up, "b": up}))
    r = c.post("/v1/speakers", headers=svc.admin, data={"name": name, "replace": replace}, files=[("files", up)])
    svc.check(r)
    quoted = quote(path_name, safe="") or "%20"
    svc.check(c.post(f"/v1/speakers/{quoted}/verify", headers=svc.admin, data={"far": far}, files={"file": up}))
    if r.status_code == 201 and r.json()["name"] != "s1":
        svc.check(c.delete(f"/v1/speakers/{quote(r.json()['name'], safe='')}", headers=svc.admin))


def test_the_service_still_answers_after_the_fuzzing(svc: Fuzzed) -> None:
    # Runs after the properties above (file order): the same app, still healthy and still right.
    svc.still_answers()
    assert "s1" in [s["name"] for s in svc.client.get("/v1/speakers", headers=svc.admin).json()["speakers"]]
