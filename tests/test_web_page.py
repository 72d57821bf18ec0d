"""The web page end to end in headless Chromium (python playwright, Debian's /usr/bin/chromium).

A real server (``speakerverify serve``) runs on 127.0.0.1 at a free port with a temporary store.
The page enrolls speakers from real clips, identifies and verifies uploads, and records from a
fake microphone (Chromium plays a real clip into getUserMedia) -- then we read the page's text.
Set SPEAKERVERIFY_SCREENSHOT=path.png to keep a screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
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

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing: run make browser")
    pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
    try:
        resolve_model_dir(model_override())
    except ModelError as exc:
        pytest.skip(f"no shipped default model to serve ({exc})")
    tmp = tmp_path_factory.mktemp("web")
    db = tmp / "speakers.db"
    with SpeakerStore(db) as store:
        admin = create_key(store, "web-admin", admin=True)
        user = create_key(store, "web-user")
    with start_local_server(db, tmp / "server.log", threads=1, model=model_override()) as server:
        yield {"url": server.url, "admin": admin, "user": user, "tmp": tmp}


@pytest.fixture(scope="module")
def clips(test_speaker_clips: dict[str, list[Path]]) -> list[tuple[str, list[Path]]]:
    return pick_speakers(test_speaker_clips, 4)


def _browser(pw, fake_mic: Path):
    args = CHROMIUM_ARGS + ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                            f"--use-file-for-fake-audio-capture={fake_mic}"]
    return pw.chromium.launch(executable_path=str(CHROMIUM), args=args)


# The page's Content-Security-Policy forbids eval: waits are written as functions ("() => ..."),
# which playwright runs through the debugger protocol instead of eval'ing a string in the page.
def _sign_in(page, url: str, key: str) -> None:
    page.goto(url + "/")
    page.fill("#api-key", key)
    page.click("#save-key")
    page.wait_for_function("() => document.querySelector('#key-status').textContent.length > 0")


def test_page_enroll_identify_verify_record(server: dict, clips: list[tuple[str, list[Path]]]) -> None:
    from playwright.sync_api import sync_playwright

    (spk_a, clips_a), (spk_b, clips_b), _, (_, clips_d) = clips
    # The fake microphone plays a held-out clip of speaker A (Chromium wants 16-bit WAV).
    fake_mic = server["tmp"] / "mic.wav"
    wave, rate = sf.read(clips_a[-1], dtype="float32")
    sf.write(fake_mic, wave, rate, subtype="PCM_16")

    with sync_playwright() as pw:
        browser = _browser(pw, fake_mic)
        page = browser.new_page(viewport={"width": 1100, "height": 1250})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))

        _sign_in(page, server["url"], server["admin"])
        assert "Signed in as web-admin (admin)" in page.inner_text("#key-status")
        assert page.is_visible("#enroll-section")

        # nobody enrolled yet: unknown
        page.set_input_files("#file-input", str(clips_b[-1]))
        page.click("#identify-btn")
        page.wait_for_selector("#identify-result .verdict")
        text = page.inner_text("#identify-result")
        assert "Unknown speaker" in text and "No speakers are enrolled" in text

        for name, files in ((spk_a, clips_a[:2]), (spk_b, clips_b[:2])):
            page.fill("#enroll-name", name)
            page.set_input_files("#enroll-files", [str(p) for p in files])
            page.click("#enroll-btn")
            page.wait_for_function(
                f"() => document.querySelector('#enroll-result').textContent.includes('Enrolled {name}')")
        page.wait_for_function(f"() => document.querySelector('#speakers-list').textContent.includes('{spk_b}')")

        # uploads: the page shows what the API answers for the same file
        auth = {"Authorization": f"Bearer {server['user']}"}
        for clip in (clips_b[-1], clips_d[-1]):
            api = httpx.post(server["url"] + "/v1/identify", headers=auth,
                             files={"file": (clip.name, clip.read_bytes())}, timeout=60).json()
            page.set_input_files("#file-input", str(clip))
            page.click("#identify-btn")
            page.wait_for_function("() => document.querySelector('#identify-result .verdict') && "
                                   "!document.querySelector('#identify-result').textContent.includes('Identifying')")
            text = page.inner_text("#identify-result")
            expect = "Unknown speaker" if api["speaker"] == "unknown" else f"Identified: {api['speaker']}"
            assert expect in text, (clip.name, text)
            assert api["candidates"][0]["speaker"] in text
        top_b = httpx.post(server["url"] + "/v1/identify", headers=auth, timeout=60,
                           files={"file": (clips_b[-1].name, clips_b[-1].read_bytes())}).json()
        assert top_b["candidates"][0]["speaker"] == spk_b

        # verify against a chosen speaker
        page.set_input_files("#file-input", str(clips_b[-1]))
        page.select_option("#speaker-select", spk_b)
        page.click("#verify-btn")
        page.wait_for_selector("#verify-result .verdict")
        verdict = f"Same speaker: {spk_b}" if top_b["candidates"][0]["same_speaker"] else f"Not {spk_b}"
        assert verdict in page.inner_text("#verify-result")
        assert "threshold" in page.inner_text("#verify-result")

        # record ~3 s from the (fake) microphone, then identify: speaker A
        page.click("#record-btn")
        page.wait_for_timeout(3000)
        page.click("#record-btn")
        page.wait_for_function("() => document.querySelector('#clip-info').textContent.includes('recording-1.wav')")
        page.click("#identify-btn")
        page.wait_for_selector("#identify-result .verdict")
        page.wait_for_function("() => !document.querySelector('#identify-result').textContent.includes('Identifying')")
        assert f"Identified: {spk_a}" in page.inner_text("#identify-result"), page.inner_text("#identify-result")

        shot = os.environ.get("SPEAKERVERIFY_SCREENSHOT")
        page.screenshot(path=str(server["tmp"] / "page.png"), full_page=True)
        if shot:
            shutil.copy(server["tmp"] / "page.png", shot)
        assert not errors, errors
        browser.close()


def test_page_user_key_and_bad_key(server: dict) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page()
        _sign_in(page, server["url"], "svk_not-a-key")
        assert "Key refused: invalid API key" in page.inner_text("#key-status")
        _sign_in(page, server["url"], server["user"])
        assert "(user)" in page.inner_text("#key-status")
        assert not page.is_visible("#enroll-section")
        # the key is remembered across reloads
        page.reload()
        page.wait_for_function("() => document.querySelector('#key-status').textContent.includes('web-user')")
        browser.close()


def test_page_fits_a_phone_and_clears_the_last_verdict(server: dict, clips: list[tuple[str, list[Path]]]) -> None:
    from playwright.sync_api import sync_playwright

    (_, clips_a), (_, clips_b), _, _ = clips
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 390, "height": 844})
        console: list[str] = []
        page.on("console", lambda m: console.append(m.text))
        _sign_in(page, server["url"], server["user"])
        page.set_input_files("#file-input", str(clips_a[-1]))
        page.click("#identify-btn")
        page.wait_for_function("() => document.querySelector('#identify-result .verdict') && "
                               "!document.querySelector('#identify-result').textContent.includes('Identifying')")
        assert page.inner_text("#identify-result").strip()
        # no sideways scrolling on a 390-px phone, with the results table on screen
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.evaluate("document.body.scrollWidth") <= 390
        # a new file: the verdict about the last one is gone
        page.set_input_files("#file-input", str(clips_b[-1]))
        shown = f"() => document.querySelector('#clip-info').textContent.includes({clips_b[-1].name!r})"
        page.wait_for_function(shown)
        assert page.inner_text("#identify-result").strip() == ""
        assert page.inner_text("#verify-result").strip() == ""
        assert not [m for m in console if "Content Security Policy" in m], console
        browser.close()


def test_serve_writes_the_access_log(server: dict) -> None:
    """``serve`` logs every request as one JSON line to stderr by default (here: the server log)."""
    httpx.get(server["url"] + "/v1/whoami", headers={"Authorization": f"Bearer {server['user']}"}, timeout=10)
    text = (server["tmp"] / "server.log").read_text()
    lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
    whoami = [x for x in lines if x["path"] == "/v1/whoami" and x["status"] == 200]
    assert whoami and whoami[-1]["key"] == "web-user" and whoami[-1]["method"] == "GET"
    assert server["user"] not in text and server["admin"] not in text
