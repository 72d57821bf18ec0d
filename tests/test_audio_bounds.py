"""Bounded audio input (issue 10, items 1 and 6): the header is checked before decoding, memory is
bounded by the length limit rather than by the file, and streams without a length, pipes,
/dev/stdin and ``-`` are read. One limit (``max_audio_s``) for load_audio, Verifier, SpeakerStore,
the CLI and the service."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audio_helpers import encode, fake_rate_wav, flac_info, noise, run_capped, streamed_flac
from speakerverify.audio import (
    BLOCK_SAMPLES,
    DEFAULT_MAX_AUDIO_S,
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    load_audio,
    pipe_byte_limit,
    probe,
)
from speakerverify.errors import AudioError
from stub_verifier import StubVerifier, tone

GiB = 1 << 30


def one_line_error(stderr: bytes, path: object, problem: str) -> str:
    text = stderr.decode()
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    assert str(path) in lines[0] and problem in lines[0], text
    return lines[0]


# -- a header that lies about its sample rate ---------------------------------------------------

LOAD_IN_CHILD = """
import sys
from speakerverify.audio import load_audio
from speakerverify.errors import AudioError
from speakerverify.process_memory import status_kib
try:
    wave = load_audio(sys.argv[1] if len(sys.argv) > 1 else {path!r})
except AudioError as exc:
    print(exc, file=sys.stderr)
    print(status_kib()["VmHWM"])
    sys.exit(2)
print(status_kib()["VmHWM"], len(wave), float(wave.astype('float64').sum()))
"""


def test_fake_sample_rate_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    """480 KB claiming 1 Hz used to be resampled into ~15 GB (MemoryError under a cap); now the header is refused."""
    path = tmp_path / "one-hertz.wav"
    path.write_bytes(fake_rate_wav(rate=1))
    assert path.stat().st_size < 500_000 and sf.info(str(path)).samplerate == 1
    r = run_capped(LOAD_IN_CHILD.format(path=str(path)), 2 * GiB, timeout=60)
    assert r.returncode == 2, r.stderr.decode()[-2000:]
    one_line_error(r.stderr, path, "sample rate 1 Hz is outside")
    assert int(r.stdout.split()[0]) < 400_000  # KiB of peak resident memory: the interpreter and libraries


def test_fake_sample_rate_in_the_cli_is_one_line_exit_2(tmp_path: Path, test_speaker_clips) -> None:
    good = next(iter(test_speaker_clips.values()))[0]
    bad = tmp_path / "one-hertz.wav"
    bad.write_bytes(fake_rate_wav(rate=1))
    r = run_capped("", 3 * GiB, args=["-m", "speakerverify", "verify", str(good), str(bad)], timeout=300)
    assert r.returncode == 2, r.stderr.decode()[-2000:]
    one_line_error(r.stderr, bad, "sample rate 1 Hz")


@pytest.mark.parametrize("rate, ok", [(1, False), (MIN_SAMPLE_RATE - 1, False), (MIN_SAMPLE_RATE, True),
                                      (8000, True), (MAX_SAMPLE_RATE, True), (MAX_SAMPLE_RATE + 1, False)])
def test_sample_rate_range(tmp_path: Path, rate: int, ok: bool) -> None:
    path = tmp_path / f"r{rate}.wav"
    sf.write(path, noise(max(rate // 2, 100)), rate)  # half a second
    if ok:
        wave = load_audio(path)
        assert abs(len(wave) - 8000) <= 2 and wave.dtype == np.float32
    else:
        with pytest.raises(AudioError, match=f"sample rate {rate} Hz is outside the 4000-384000 Hz accepted"):
            load_audio(path)


def test_too_many_channels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.wav"
    sf.write(path, noise(1600, channels=MAX_CHANNELS + 1), 16000)
    with pytest.raises(AudioError) as exc:
        load_audio(path)
    assert str(exc.value) == f"{path}: {MAX_CHANNELS + 1} channels, at most {MAX_CHANNELS} accepted"


# -- length: from the header, and counted while decoding ----------------------------------------


def test_over_long_header_is_refused_without_decoding(tmp_path: Path) -> None:
    """An hour of 8 kHz audio is refused from its header at once (it used to take ~70 s and GBs)."""
    path = tmp_path / "hour.wav"
    with sf.SoundFile(path, "w", 8000, 1, subtype="PCM_U8") as f:  # 28.8 MB
        block = noise(8000 * 60)
        for _ in range(60):
            f.write(block)
    tracemalloc.start()
    try:
        with pytest.raises(AudioError) as exc:
            load_audio(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(exc.value) == f"{path}: too long: 3600 s, at most 600 s per recording"
    assert peak < 1_000_000  # nothing decoded: the samples alone would be 115 MB as float32
    assert probe(path, max_audio_s=4000) == pytest.approx(3600)


def test_long_file_is_decoded_in_blocks(tmp_path: Path) -> None:
    """Five minutes of 48 kHz stereo: memory follows the 16 kHz mono output, not the file (old: 173 MB)."""
    path = tmp_path / "five-minutes.wav"
    minute = noise(48000 * 60, channels=2)
    with sf.SoundFile(path, "w", 48000, 2, subtype="PCM_16") as f:
        for _ in range(5):
            f.write(minute)
    out_bytes = 300 * 16000 * 4  # the waveform returned: 19.2 MB
    tracemalloc.start()
    try:
        wave = load_audio(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert abs(len(wave) - 300 * 16000) <= 2
    # The header gives the length: one output array, written in place, plus a block or two.
    assert peak < 1.5 * out_bytes, f"peak {peak / 1e6:.0f} MB for a {out_bytes / 1e6:.0f} MB waveform"


@pytest.mark.parametrize("rate, channels", [(16000, 1), (44100, 1), (48000, 2), (8000, 3)])
def test_block_decoding_matches_the_whole_file_reader(tmp_path: Path, rate: int, channels: int) -> None:
    """Downmixed and resampled block by block (several blocks here), the samples are those of the
    whole-file reader (soundfile.read, mean over channels, soxr.resample), bit for bit."""
    from speakerverify.audio import to_mono_16k

    path = tmp_path / "clip.flac"
    sf.write(path, noise(rate * 40, channels=channels, seed=rate), rate, subtype="PCM_16")
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    assert len(data) * channels > 2 * BLOCK_SAMPLES
    assert np.array_equal(load_audio(path), to_mono_16k(data, rate))


# -- FLAC streamed without a length --------------------------------------------------------------


@pytest.mark.parametrize("rate, n", [(16000, 24_000), (44100, 3 * 44100), (16000, BLOCK_SAMPLES),
                                     (16000, 2 * BLOCK_SAMPLES + 1), (48000, 48000 * 7)])
def test_streamed_flac_without_length_is_read(tmp_path: Path, rate: int, n: int) -> None:
    wave = noise(n, seed=n)
    normal, streamed = tmp_path / "normal.flac", tmp_path / "piped.flac"
    normal.write_bytes(encode(wave, rate, "FLAC", "PCM_16"))
    streamed.write_bytes(streamed_flac(wave, rate))
    assert flac_info(streamed.read_bytes()) == (rate, 1, 16, 0)
    assert sf.info(str(streamed)).frames >= 2**62  # libsndfile: unknown length (SF_COUNT_MAX)
    expected = load_audio(normal)
    assert np.array_equal(load_audio(streamed), expected)
    assert np.array_equal(load_audio(streamed.read_bytes(), name="upload.flac"), expected)
    assert probe(streamed) is None


def test_streamed_flac_stops_at_the_limit(tmp_path: Path) -> None:
    """No length in the header: decoding stops just past the limit, memory follows the limit."""
    path = tmp_path / "piped.flac"
    path.write_bytes(streamed_flac(noise(16000 * 120), 16000))  # two minutes
    tracemalloc.start()
    try:
        with pytest.raises(AudioError) as exc:
            load_audio(path, max_audio_s=10)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(exc.value) == (f"{path}: too long: over 10 s (its header gives no length), "
                              "at most 10 s per recording")
    assert peak < 3 * 10 * 16000 * 4 + 4 * BLOCK_SAMPLES * 4


# -- pipes, /dev/stdin and - ---------------------------------------------------------------------


def _fifo_with(tmp_path: Path, data: bytes) -> tuple[Path, threading.Thread]:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)

    def feed() -> None:
        try:
            with open(fifo, "wb") as w:
                w.write(data)
        except BrokenPipeError:  # the reader stopped early
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    return fifo, writer


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_reads_from_a_named_pipe(tmp_path: Path, fmt: str) -> None:
    data = encode(tone(300, seconds=1.5), 16000, fmt)
    fifo, writer = _fifo_with(tmp_path, data)
    wave = load_audio(fifo)
    writer.join(5)
    assert np.array_equal(wave, load_audio(data))


def test_pipe_over_its_byte_limit_is_refused(tmp_path: Path) -> None:
    data = encode(noise(16000 * 60), 16000, "WAV", "FLOAT")  # 3.8 MB > the 1.4 MB allowed for 1 s
    fifo, writer = _fifo_with(tmp_path, data)
    with pytest.raises(AudioError) as exc:
        load_audio(fifo, max_audio_s=1)
    writer.join(5)
    assert f"more than {pipe_byte_limit(1) / 1e6:.0f} MB from a pipe" in str(exc.value)
    assert str(exc.value).startswith(f"{fifo}: ")


@pytest.mark.parametrize("arg, label", [("-", "<stdin>"), ("/dev/stdin", "/dev/stdin")])
def test_reads_stdin_from_a_pipe(arg: str, label: str) -> None:
    data = encode(tone(250, seconds=2.0), 16000, "FLAC")
    expected = load_audio(data)
    code = LOAD_IN_CHILD.format(path="")
    r = run_capped(code, 2 * GiB, stdin=data, args=["-c", code, arg])
    assert r.returncode == 0, r.stderr.decode()
    _, n, total = r.stdout.split()
    assert int(n) == len(expected) == 32000
    assert float(total) == pytest.approx(float(expected.astype(np.float64).sum()), abs=1e-9)
    empty = run_capped(code, 2 * GiB, stdin=b"", args=["-c", code, arg])
    assert empty.returncode == 2 and empty.stderr.decode().strip() == f"{label}: file is empty"


def test_cut_header_on_stdin_is_one_line() -> None:
    """A cut AIFF makes libsndfile seek before the start of in-memory bytes; soundfile used to let the
    ValueError escape its callback, printed to stderr as an "Exception ignored ... Traceback"."""
    data = encode(noise(12800), 32000, "AIFF", "PCM_24")[:30]
    code = LOAD_IN_CHILD.format(path="")
    r = run_capped(code, 2 * GiB, stdin=data, args=["-c", code, "-"])
    assert r.returncode == 2
    one_line_error(r.stderr, "<stdin>", "not a readable audio file")


def test_cli_reads_stdin(test_speaker_clips) -> None:
    clips = next(iter(test_speaker_clips.values()))
    args = ["-m", "speakerverify", "verify", str(clips[0])]
    from_file = run_capped("", 3 * GiB, args=[*args, str(clips[1]), "--json"], timeout=300)
    from_pipe = run_capped("", 3 * GiB, args=[*args, "-", "--json"], stdin=clips[1].read_bytes(), timeout=300)
    assert from_file.returncode == 0 and from_pipe.returncode == 0, from_pipe.stderr.decode()
    assert json.loads(from_pipe.stdout) == json.loads(from_file.stdout)


# -- one limit for the Python API, the store, the CLI and the service -----------------------------


def test_one_length_rule_for_api_and_store(tmp_path: Path) -> None:
    from speakerverify.store import SpeakerStore

    long, ok = tmp_path / "long.wav", tmp_path / "ok.wav"
    sf.write(long, tone(300, seconds=6), 16000)
    sf.write(ok, tone(300, seconds=2), 16000)
    message = f"{long}: too long: 6 s, at most 5 s per recording"
    with pytest.raises(AudioError) as exc:
        load_audio(long, max_audio_s=5)
    assert str(exc.value) == message
    v = StubVerifier()
    assert v.max_audio_s == DEFAULT_MAX_AUDIO_S == 600
    assert len(v.load(long)) == 6 * 16000
    with pytest.raises(AudioError, match="too long: 6 s, at most 5 s"):
        v.load(long, max_audio_s=5)
    with pytest.raises(AudioError, match="<array>: too long: 6 s, at most 5 s"):
        v.load(tone(300, seconds=6), max_audio_s=5)
    store = SpeakerStore(tmp_path / "s.db", verifier=v, max_audio_s=5)
    result = store.enroll("alice", [long, ok])
    assert result.enrolled == [str(ok)]
    assert result.rejected == [{"file": str(long), "reason": "too long: 6 s, at most 5 s per recording"}]
    with pytest.raises(AudioError) as exc:
        store.identify(long)
    assert str(exc.value) == message
    with pytest.raises(ValueError, match="positive"):
        load_audio(ok, max_audio_s=0)


def test_default_limit_in_the_cli(tmp_path: Path, test_speaker_clips) -> None:
    """601 s (4 kHz, 8-bit: 2.4 MB) is over the CLI's default; --max-audio-s sets another limit."""
    good = next(iter(test_speaker_clips.values()))[0]
    long = tmp_path / "ten-minutes-and-one.wav"
    sf.write(long, noise(4000 * 601), 4000, subtype="PCM_U8")
    args = ["-m", "speakerverify", "verify", str(good), str(long)]
    r = run_capped("", 3 * GiB, args=args, timeout=300)
    assert r.returncode == 2
    one_line_error(r.stderr, long, "too long: 601 s, at most 600 s per recording")
    r = run_capped("", 3 * GiB, args=[*args, "--max-audio-s", "5", "--json"], timeout=300)
    assert r.returncode == 2
    one_line_error(r.stderr, long, "too long: 601 s, at most 5 s per recording")
    assert len(load_audio(long, max_audio_s=700)) == 601 * 16000  # a higher limit reads it (API)


def test_cli_limit_defaults_are_the_library_default() -> None:
    import typer.main

    from speakerverify.cli import app

    cmd = typer.main.get_command(app)
    for name in ("verify", "embed", "eval", "enroll", "verify-speaker", "identify"):
        opts = {p.name: p for p in cmd.commands[name].params}  # type: ignore[attr-defined]
        assert opts["max_audio_s"].default == DEFAULT_MAX_AUDIO_S, name


def test_service_reads_streamed_flac_and_applies_its_limit(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from speakerverify.service.app import ServiceConfig, create_app
    from speakerverify.store import SpeakerStore
    from speakerverify.store.keys import create_key

    store = SpeakerStore(tmp_path / "s.db", verifier=StubVerifier())
    auth = {"Authorization": f"Bearer {create_key(store, 'u')}"}
    client = TestClient(create_app(ServiceConfig(store=tmp_path / "s.db", verifier=StubVerifier(), max_audio_s=5)))
    r = client.post("/v1/embed", headers=auth, files={"file": ("piped.flac", streamed_flac(tone(300, 3), 16000))})
    assert r.status_code == 200 and r.json()["duration_s"] == 3.0, r.text
    for path, files in (("/v1/embed", {"file": ("long.flac", streamed_flac(tone(300, 6), 16000))}),
                        ("/v1/verify", {"a": ("a.wav", encode(tone(300), 16000)),
                                        "b": ("long.flac", streamed_flac(tone(300, 6), 16000))}),
                        ("/v1/identify", {"file": ("long.flac", streamed_flac(tone(300, 6), 16000))})):
        r = client.post(path, headers=auth, files=files)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"] == ("long.flac: too long: over 5 s (its header gives no length), "
                                     "at most 5 s per recording")
    r = client.post("/v1/embed", headers=auth, files={"file": ("one-hertz.wav", fake_rate_wav(rate=1))})
    assert r.status_code == 422 and r.json()["error"].startswith("one-hertz.wav: sample rate 1 Hz is outside")

