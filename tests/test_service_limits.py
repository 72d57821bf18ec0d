"""The service's protections: rate limits, the access log, security headers, private docs, a busy
store, impossible FARs and over-long headers (a real uvicorn server on 127.0.0.1).

All with the stub verifier: none of it depends on the model.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from stub_verifier import StubVerifier, tone

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from speakerverify.service.app import ServiceConfig, create_app
from speakerverify.store import SpeakerStore
from speakerverify.store.keys import create_key


def wav_bytes(wave: np.ndarray, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, format="WAV")
    return buf.getvalue()


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_service(tmp: Path, **config) -> tuple[TestClient, dict[str, str]]:
    db = tmp / "s.db"
    with SpeakerStore(db, verifier=StubVerifier()) as store:
        keys = {"admin": create_key(store, "admin", admin=True), "alice": create_key(store, "alice"),
                "bob": create_key(store, "bob")}
    app = create_app(ServiceConfig(store=db, verifier=StubVerifier(), **config))
    return TestClient(app), {name: f"Bearer {k}" for name, k in keys.items()}


def test_wrong_keys_get_429_with_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    c, keys = make_service(tmp_path, auth_fail_limit=20, auth_fail_window_s=60, clock=clock)
    statuses = []
    for i in range(200):
        r = c.get("/v1/speakers", headers={"Authorization": f"Bearer svk_guess{i}"})
        statuses.append(r.status_code)
        assert "error" in r.json()
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}  # used to be 200 x 401
    r = c.get("/v1/speakers", headers={"Authorization": keys["alice"]})
    assert r.status_code == 429, "blocked before the key is checked, even a good one"
    assert "too many invalid API keys" in r.json()["error"]
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= 60
    clock.t += wait - 0.5
    assert c.get("/v1/speakers", headers={"Authorization": keys["alice"]}).status_code == 429
    clock.t += 0.5
    assert c.get("/v1/speakers", headers={"Authorization": keys["alice"]}).status_code == 200
    # a missing key is not a guess: it never counts
    for _ in range(30):
        assert c.get("/v1/speakers").status_code == 401


def test_a_key_over_its_rate_gets_429_and_others_do_not(tmp_path: Path) -> None:
    clock = Clock()
    c, keys = make_service(tmp_path, rate_limit=60, rate_burst=5, clock=clock)
    alice, bob = {"Authorization": keys["alice"]}, {"Authorization": keys["bob"]}
    assert [c.get("/v1/whoami", headers=alice).status_code for _ in range(5)] == [200] * 5
    r = c.get("/v1/whoami", headers=alice)
    assert r.status_code == 429 and "rate limit of 60 requests a minute" in r.json()["error"]
    assert r.headers["retry-after"] == "1"  # one request a second refills
    assert [c.get("/v1/whoami", headers=bob).status_code for _ in range(5)] == [200] * 5
    clock.t += int(r.headers["retry-after"])
    assert c.get("/v1/whoami", headers=alice).status_code == 200
    assert c.get("/v1/whoami", headers=alice).status_code == 429
    clock.t += 10  # the bucket refills up to its burst, no further
    assert [c.get("/v1/whoami", headers=alice).status_code for _ in range(6)] == [200] * 5 + [429]
    assert c.get("/healthz").status_code == 200  # unkeyed routes are not limited


def test_limits_off_with_zero(tmp_path: Path) -> None:
    c, keys = make_service(tmp_path, rate_limit=0, auth_fail_limit=0)
    assert {c.get("/v1/whoami", headers={"Authorization": "Bearer svk_x"}).status_code for _ in range(60)} == {401}
    assert {c.get("/v1/whoami", headers={"Authorization": keys["alice"]}).status_code for _ in range(300)} == {200}


def test_access_log_is_one_json_line_per_request(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c, keys = make_service(tmp_path)
    audio = wav_bytes(tone(300))
    with caplog.at_level(logging.INFO, logger="speakerverify.access"):
        c.post("/v1/embed?token=secret123", headers={"Authorization": keys["alice"], "X-Request-ID": "req-42"},
               files={"file": ("a.wav", audio)})
        c.get("/v1/speakers", headers={"Authorization": "Bearer svk_wrongkey"})
        c.get("/healthz")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "speakerverify.access"]
    assert len(lines) == 3
    embed, bad, health = lines
    assert {"time", "method", "path", "status", "duration_ms", "client", "key", "request_id", "bytes_in",
            "bytes_out"} <= set(embed)
    assert (embed["method"], embed["path"], embed["status"], embed["key"]) == ("POST", "/v1/embed", 200, "alice")
    assert embed["request_id"] == "req-42" and embed["bytes_in"] > len(audio) and embed["bytes_out"] > 100
    assert embed["duration_ms"] >= 0 and embed["client"] == "testclient"
    assert (bad["status"], bad["key"]) == (401, None) and health["path"] == "/healthz"
    assert len(health["request_id"]) == 32  # none given: a fresh one
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret123" not in text and "svk_" not in text and "RIFF" not in text  # no query, key or audio
    r = c.get("/healthz", headers={"X-Request-ID": "abc"})
    assert r.headers["x-request-id"] == "abc"


def test_security_headers_on_page_api_and_errors(tmp_path: Path) -> None:
    c, keys = make_service(tmp_path)
    for path, headers in (("/", {}), ("/healthz", {}), ("/v1/speakers", {}), ("/v1/whoami", {"Authorization":
                          keys["alice"]}), ("/static/page.js", {}), ("/nope", {}), ("/docs", {})):
        r = c.get(path, headers=headers)
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff", path
        assert r.headers["referrer-policy"] == "no-referrer", path
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        if path != "/docs":
            assert "unsafe-inline" not in csp, path
    # the page works under its policy: no inline script, style or handlers left in it
    page = c.get("/").text
    assert "<script>" not in page and "<style" not in page and " style=" not in page and " onsubmit=" not in page
    assert '<script src="/static/page.js"' in page and '<link rel="stylesheet" href="/static/page.css">' in page


def test_private_docs_need_a_key(tmp_path: Path) -> None:
    c, keys = make_service(tmp_path / "a")
    assert c.get("/docs").status_code == 200 and c.get("/openapi.json").status_code == 200
    (tmp_path / "b").mkdir()
    c, keys = make_service(tmp_path / "b", private_docs=True)
    for path in ("/docs", "/openapi.json"):
        r = c.get(path)
        assert r.status_code == 401 and r.json()["error"], path
        assert c.get(path, headers={"Authorization": keys["alice"]}).status_code == 200, path
    assert "/v1/verify" in c.get("/openapi.json", headers={"Authorization": keys["alice"]}).json()["paths"]
    assert c.get("/healthz").status_code == 200 and c.get("/").status_code == 200


@pytest.mark.parametrize("far", ["0", "-1", "1", "nan"])
def test_impossible_far_over_rest_is_a_clear_error(tmp_path: Path, far: str) -> None:
    c, keys = make_service(tmp_path)
    auth = {"Authorization": keys["admin"]}
    assert c.post("/v1/speakers", headers=auth, data={"name": "s"},
                  files=[("files", ("s.wav", wav_bytes(tone(300))))]).status_code == 201
    up = ("x.wav", wav_bytes(tone(300, seed=1)))
    for path, files in (("/v1/verify", {"a": up, "b": up}), ("/v1/identify", {"file": up}),
                        ("/v1/speakers/s/verify", {"file": up})):
        r = c.post(path, headers=auth, data={"far": far}, files=files)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"].startswith("far: ") and "domain" not in r.json()["error"]


def test_impossible_far_in_python_is_an_operating_point_error() -> None:
    from speakerverify.errors import OperatingPointError
    from speakerverify.scoring import Backend

    backend = Backend({"thresholds": {"eer": 0.3, "far": {"0.01": 0.5}}})
    assert backend.threshold(0.01) == 0.5
    for far in (0.0, -1.0, 1.0, float("nan")):
        with pytest.raises(OperatingPointError, match="FAR must be a rate between 0 and 1"):
            backend.threshold(far)


def test_parallel_enrollments_of_one_name_never_get_a_bare_400(tmp_path: Path) -> None:
    c, keys = make_service(tmp_path, workers=8)
    auth = {"Authorization": keys["admin"]}
    answers: list[httpx.Response] = []

    def enroll(i: int) -> None:
        answers.append(c.post("/v1/speakers", headers=auth, data={"name": "same"},
                              files=[("files", (f"{i}.wav", wav_bytes(tone(300, seed=i))))]))

    threads = [threading.Thread(target=enroll, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8
    for r in answers:
        assert r.status_code in (201, 409), r.text
        if r.status_code == 409:
            assert int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["error"]
    n_ok = sum(r.status_code == 201 for r in answers)
    assert n_ok >= 1
    assert c.get("/v1/speakers", headers=auth).json()["speakers"][0]["clips"] == n_ok


def test_a_locked_store_answers_409_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    c, keys = make_service(tmp_path)
    store = c.app.state.store

    def locked(*args, **kwargs):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store, "enroll", locked)
    r = c.post("/v1/speakers", headers={"Authorization": keys["admin"]}, data={"name": "x"},
               files=[("files", ("x.wav", wav_bytes(tone(300))))])
    assert r.status_code == 409 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]


# -- a real uvicorn server, as `speakerverify serve` runs it --------------------------------------


@pytest.fixture()
def live_server(tmp_path: Path) -> Iterator[str]:
    import uvicorn

    from speakerverify.service.protocol import server_config

    c, _ = make_service(tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(server_config(c.app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_huge_request_header_gets_the_json_error(live_server: str) -> None:
    r = httpx.get(live_server + "/healthz", headers={"X-Big": "a" * 1_000_000}, timeout=10)
    assert r.status_code == 400 and r.headers["content-type"] == "application/json"  # was text/plain
    assert "headers are over 16 KB" in r.json()["error"]
    # a request that arrives whole is parsed by h11 whatever its size: the app refuses it
    r = httpx.get(live_server + "/healthz", headers={"X-Big": "a" * 100_000}, timeout=10)
    assert r.status_code == 431 and r.json() == {"error": "request headers are over the 16 KB limit"}
    assert r.headers["x-frame-options"] == "DENY"
    assert httpx.get(live_server + "/healthz", headers={"X-Ok": "a" * 8000}, timeout=10).status_code == 200
    assert httpx.get(live_server + "/healthz", timeout=10).status_code == 200  # and it keeps answering
