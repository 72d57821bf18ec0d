#!/usr/bin/env python3
"""`make demo`: speaker verification on real clips from ../shared/data with the shipped model.

Runs the `speakerverify` CLI as a user would: same-speaker and different-speaker pairs from
held-out (test-split) speakers, one narrowband short-digit pair, then a whole trial list.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from speakerverify.data import from_manifest


def run(args: list[str]) -> dict:
    print(f"$ {shlex.join(['speakerverify', *args])}", flush=True)
    proc = subprocess.run([sys.executable, "-m", "speakerverify", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"demo failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default="../shared")
    a = ap.parse_args()
    data = Path(a.shared) / "data"
    if not data.is_dir():
        sys.exit(f"error: {data}: shared speech data not found (it must sit beside the repository)")
    libri = from_manifest(data / "corpora/libri-test-other/manifest.csv")
    by_spk: dict[str, list[Path]] = {}
    for u in libri:
        by_spk.setdefault(u.speaker, []).append(u.path)
    s1, s2 = sorted(by_spk)[:2]
    fsdd = data / "corpora/fsdd"
    pairs = [
        ("same speaker, two recordings", by_spk[s1][0], by_spk[s1][5], True),
        ("same speaker, two recordings", by_spk[s2][1], by_spk[s2][7], True),
        ("different speakers", by_spk[s1][0], by_spk[s2][1], False),
        ("same speaker, 0.4-s narrowband digits", fsdd / "george/0_george_0.flac", fsdd / "george/7_george_3.flac",
         True),
        ("different speakers, narrowband digits", fsdd / "george/0_george_0.flac", fsdd / "jackson/0_jackson_0.flac",
         False),
    ]
    correct = 0
    for label, x, y, truth in pairs:
        r = run(["verify", str(x), str(y), "--json"])
        ok = r["same_speaker"] == truth
        correct += ok
        prob = f", P(same)={r['probability']:.3f}" if "probability" in r else ""
        print(f"  {label}: score {r['score']:.3f} (threshold {r['threshold']:.3f}{prob}) -> "
              f"{'SAME' if r['same_speaker'] else 'DIFFERENT'} [{'correct' if ok else 'WRONG'}]\n")
    print(f"{correct}/{len(pairs)} demo decisions correct (model: {r['model']})\n")
    trials = data / "trials/libri-test-other-test.txt"
    r = run(["eval", str(trials), "--root", str(data), "--json"])
    keys = ("eer_percent", "min_dcf_p01", "min_dcf_p05", "cllr", "min_cllr", "n_trials", "seconds")
    print("  " + ", ".join(f"{k} {r[k]}" for k in keys if k in r))


if __name__ == "__main__":
    main()
