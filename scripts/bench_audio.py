"""Peak memory and time of reading long and hostile audio files: writes docs/bench-audio.md.

Each read runs in a fresh child process, which reports its own peak resident memory
(``VmHWM``, :mod:`speakerverify.process_memory`) and the read's wall time. Every child runs under a capped address space
(``--cap-gb``), so the old whole-file reader shows as "MemoryError" rather than taking the machine.
The cases:

* 10 minutes of 16 kHz mono FLAC (the corpus's format) and of 48 kHz stereo WAV (resampled);
* 1 hour of 16 kHz mono FLAC: refused from its header at the default limit, and read with
  ``max_audio_s=3600``;
* the same hour streamed (no length in its FLAC header): decoding stops past the limit;
* a 480 KB WAV whose header claims a 1 Hz sample rate.

"new" is :func:`speakerverify.audio.load_audio`; "whole-file" is what it did before issue 10
(``soundfile.read`` of the whole file, then downmix and ``soxr.resample``), for comparison.
``--cli`` adds ``speakerverify verify`` on the 10-minute and 1-hour files (model loading included).

    .venv/bin/python scripts/bench_audio.py [--out docs/bench-audio.md] [--cli]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from speakerverify.audio import DEFAULT_MAX_AUDIO_S  # noqa: E402

CHILD = r"""
import json, sys, time
mode, path, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
import numpy as np, soundfile as sf, soxr
from speakerverify.audio import load_audio, to_mono_16k
from speakerverify.errors import AudioError
from speakerverify.process_memory import peak_rss_mb
base = peak_rss_mb()
t0 = time.perf_counter()
out = {}
try:
    if mode == "new":
        wave = load_audio(path, max_audio_s=limit)
    elif mode == "whole-file":
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        wave = to_mono_16k(data, rate)
    else:
        wave = None
    out["outcome"] = "(nothing read)" if wave is None else f"read {len(wave) / 16000:.0f} s"
except AudioError as exc:
    out["outcome"] = "refused: " + exc.problem
except MemoryError:
    out["outcome"] = "MemoryError"
except Exception as exc:
    out["outcome"] = f"{type(exc).__name__}: {str(exc)[:60]}"
out["seconds"] = time.perf_counter() - t0
out["maxrss_mb"] = peak_rss_mb()
out["imports_mb"] = base
print(json.dumps(out))
"""


def signal_block(n: int, rate: int, start: int, channels: int) -> np.ndarray:
    """Speech-like test signal (harmonics under a syllable-rate envelope, a little noise), so FLAC
    compresses it as it would speech; generated in blocks to keep this script's memory small."""
    t = (start + np.arange(n)) / rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.3 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 6)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)) ** 2
    x = 0.2 * voiced + 0.003 * np.random.default_rng(start).standard_normal(n)
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write_long(path: Path, seconds: int, rate: int, channels: int, fmt: str) -> None:
    with sf.SoundFile(path, "w", rate, channels, format=fmt, subtype="PCM_16") as f:
        for start in range(0, seconds * rate, rate * 30):
            f.write(signal_block(min(rate * 30, seconds * rate - start), rate, start, channels))


def strip_flac_length(path: Path, out: Path) -> None:
    """A copy of ``path`` as ``ffmpeg ... -f flac - | cat`` would write it: STREAMINFO's total-samples
    (36 bits ending at byte 26) and MD5 zeroed, as a writer that cannot seek back leaves them."""
    with open(path, "rb") as src, open(out, "wb") as dst:
        head = bytearray(src.read(42))
        assert head[:4] == b"fLaC" and head[4] & 0x7F == 0
        v = int.from_bytes(head[18:26], "big") & ~((1 << 36) - 1)
        head[18:26] = v.to_bytes(8, "big")
        head[26:42] = bytes(16)
        dst.write(head)
        while chunk := src.read(1 << 24):
            dst.write(chunk)


def fake_rate_wav(path: Path) -> None:
    import struct

    pcm = (np.random.default_rng(0).normal(0, 3000, 240_000)).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
                     + b"data" + struct.pack("<I", len(pcm)) + pcm)


def run_child(args: list[str], cap_gb: float, timeout: float = 900) -> tuple[subprocess.CompletedProcess, float]:
    cap = int(cap_gb * (1 << 30))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])}
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, preexec_fn=limit, env=env,
                       timeout=timeout)
    return r, time.perf_counter() - t0


def read_case(mode: str, path: Path, limit: float, cap_gb: float) -> dict:
    r, _ = run_child(["-c", CHILD, mode, str(path), str(limit)], cap_gb)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        tail = (r.stderr.strip().splitlines() or ["?"])[-1]
        return {"outcome": f"crashed: {tail[:80]}", "seconds": float("nan"), "maxrss_mb": float("nan")}
    return json.loads(lines[-1])


def cli_case(good: Path, path: Path, extra: list[str], cap_gb: float) -> dict:
    args = ["-m", "speakerverify", "verify", str(good), str(path), "--json", *extra]
    code = ("import runpy, sys; sys.argv = ['speakerverify', *sys.argv[1:]]\n"
            "from speakerverify.process_memory import peak_rss_mb\n"
            "try:\n    runpy.run_module('speakerverify', run_name='__main__')\n"
            "finally:\n    print('MAXRSS', peak_rss_mb(), file=sys.stderr)")
    r, wall = run_child(["-c", code, *args[2:]], cap_gb)
    rss = [float(x.split()[1]) for x in r.stderr.splitlines() if x.startswith("MAXRSS")]
    err = [x for x in r.stderr.splitlines() if not x.startswith("MAXRSS")]
    last = (err or ["?"])[-1].replace(f"{path}: ", "")  # the temporary path says nothing
    outcome = "verified" if r.returncode == 0 else f"exit {r.returncode}: {last}"
    return {"outcome": outcome, "seconds": wall, "maxrss_mb": rss[0] if rss else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench-audio.md")
    ap.add_argument("--cap-gb", type=float, default=8.0, help="Address-space cap of every child process.")
    ap.add_argument("--cli", action="store_true", help="Also time `speakerverify verify` on the long files.")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--skip-whole-file", action="store_true", help="Only the new reader.")
    args = ap.parse_args()
    default = DEFAULT_MAX_AUDIO_S
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as tmp:
        d = Path(tmp)
        print("writing test files...", file=sys.stderr)
        ten, ten48, hour = d / "10min-16k-mono.flac", d / "10min-48k-stereo.wav", d / "1h-16k-mono.flac"
        write_long(ten, 600, 16000, 1, "FLAC")
        write_long(ten48, 600, 48000, 2, "WAV")
        write_long(hour, 3600, 16000, 1, "FLAC")
        streamed = d / "1h-16k-mono-streamed.flac"
        strip_flac_length(hour, streamed)
        fake = d / "480KB-claims-1Hz.wav"
        fake_rate_wav(fake)
        cases = [
            ("imports only (baseline)", None, "", default),
            ("10 min, 16 kHz mono FLAC", ten, "", default),
            ("10 min, 48 kHz stereo WAV", ten48, "", default),
            ("1 h, 16 kHz mono FLAC", hour, "", default),
            ("1 h, 16 kHz mono FLAC", hour, "max_audio_s=3600", 3600.0),
            ("1 h FLAC streamed (no length in header)", streamed, "", default),
            ("480 KB WAV claiming 1 Hz", fake, "", default),
        ]
        rows = []
        for label, path, note, limit in cases:
            size = f"{path.stat().st_size / 1e6:.1f} MB" if path else ""
            modes = ["none"] if path is None else ["new"] + ([] if args.skip_whole_file else ["whole-file"])
            for mode in modes:
                print(f"{label} [{mode}]...", file=sys.stderr)
                res = read_case(mode, path or ten, limit, args.cap_gb)
                rows.append((label + (f" ({note})" if note else ""), size, mode if path else "", res))
                print(f"  {res}", file=sys.stderr)
        cli_rows = []
        if args.cli:
            good = next(iter(sorted((args.shared / "data" / "corpora" / "libri-train-clean").glob("*/*.flac"))),
                        None)
            if good is None:
                print("no shared data: skipping the CLI rows", file=sys.stderr)
            else:
                for label, path, extra in [("10 min, 16 kHz mono FLAC", ten, []),
                                           ("1 h, 16 kHz mono FLAC", hour, []),
                                           ("1 h FLAC streamed (no length in header)", streamed, []),
                                           ("480 KB WAV claiming 1 Hz", fake, [])]:
                    print(f"CLI {label}...", file=sys.stderr)
                    res = cli_case(good, path, extra, args.cap_gb)
                    cli_rows.append((label, res))
                    print(f"  {res}", file=sys.stderr)
    write_report(args, rows, cli_rows)


def write_report(args: argparse.Namespace, rows: list, cli_rows: list) -> None:
    lines = [
        "# Reading long and hostile audio: peak memory and time",
        "",
        "Generated by `.venv/bin/python scripts/bench_audio.py" + (" --cli" if args.cli else "") + "` "
        f"(part of `make bench`) on {platform.machine()}, {os.cpu_count()} CPU cores, Python "
        f"{platform.python_version()}, {time.strftime('%Y-%m-%d')}.",
        "",
        "Each read runs in a fresh process; *peak RSS* is that process's own high-water mark (`VmHWM`; the interpreter",
        "and libraries included: see the baseline row), *time* the read alone. Every process runs under",
        f"a {args.cap_gb:g} GB address-space cap, so a runaway allocation shows as `MemoryError`.",
        "*new* is `speakerverify.audio.load_audio` (header checked first, then decoded in blocks and",
        "resampled with soxr's streaming resampler, stopping past the limit); *whole-file* is the reader",
        "before issue 10 (`soundfile.read` of the whole file, then downmix and `soxr.resample`).",
        f"The default limit is {DEFAULT_MAX_AUDIO_S:g} s (`--max-audio-s`, `max_audio_s=`).",
        "",
        "| file | size | reader | outcome | peak RSS (MB) | time (s) |",
        "|---|---:|---|---|---:|---:|",
    ]
    for label, size, mode, res in rows:
        lines.append(f"| {label} | {size} | {mode} | {res['outcome']} | {res['maxrss_mb']:.0f} | "
                     f"{res['seconds']:.2f} |")
    if cli_rows:
        lines += ["", "`speakerverify verify CLIP FILE --json` (whole process: model loading and embedding included):",
                  "", "| file | outcome | peak RSS (MB) | wall time (s) |", "|---|---|---:|---:|"]
        tail = ["", "The refused rows are the command's baseline (Python, torch and the model loaded); above it, "
                "a 10-minute recording costs its 16 kHz waveform (38 MB) plus the model's features and activations."]
        for label, res in cli_rows:
            lines.append(f"| {label} | {res['outcome']} | {res['maxrss_mb']:.0f} | {res['seconds']:.1f} |")
        lines += tail
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
