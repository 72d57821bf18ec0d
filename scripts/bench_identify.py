#!/usr/bin/env python3
"""Open-set identification on real speech: how often `identify` names the right speaker, says
`unknown` for a stranger, or gets it wrong.

Held-out speakers only (TEST split of libri-train-clean; libri-test-other, a test-only corpus). The
speakers are split into folds; each fold's speakers are strangers while every other speaker is
enrolled (through ``SpeakerStore``, as users do) from their first clips. Probes: each enrolled
speaker's remaining clips, and every clip of the strangers. Reported per operating point:
correct (right speaker, accepted), false reject (answered unknown), misidentified (another
enrolled speaker accepted), and strangers accepted as someone.

    .venv/bin/python scripts/bench_identify.py --shared ../shared [--model default] [--out docs/bench-identify.md]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from speakerverify.data import from_manifest
from speakerverify.store import SpeakerStore
from speakerverify.verifier import Verifier

# corpus -> (manifest relative to the data folder, splits to use, clips to enroll from, folds)
CORPORA = {
    "libri-train-clean (test split)": ("corpora/libri-train-clean/manifest.csv", ["test"], 2, 4),
    "libri-test-other": ("corpora/libri-test-other/manifest.csv", None, 3, 5),
}
POINTS: list[float | None] = [None, 0.01, 0.001]  # None: identify's default rule


def speakers_of(data: Path, manifest: str, splits: list[str] | None, n_enroll: int) -> dict[str, list[Path]]:
    by_spk: dict[str, list[Path]] = defaultdict(list)
    for u in from_manifest(data / manifest, splits=splits):
        by_spk[u.speaker].append(u.path)
    return {s: sorted(p) for s, p in sorted(by_spk.items()) if len(p) > n_enroll}


def run_corpus(v: Verifier, clips: dict[str, list[Path]], n_enroll: int, folds: int) -> dict:
    names = sorted(clips)
    counts = {far: defaultdict(int) for far in POINTS}
    top1 = n_enrolled_probes = n_stranger_probes = 0
    for fold in range(folds):
        strangers = set(names[fold::folds])
        with tempfile.TemporaryDirectory() as tmp:
            store = SpeakerStore(Path(tmp) / "speakers.db", v)
            for s in names:
                if s not in strangers:
                    store.enroll(s, clips[s][:n_enroll])
            for s in names:
                probes = clips[s] if s in strangers else clips[s][n_enroll:]
                for probe in probes:
                    results = {far: store.identify(probe, top=1, far=far) for far in POINTS}
                    if s in strangers:
                        n_stranger_probes += 1
                    else:
                        n_enrolled_probes += 1
                        top1 += results[None].candidates[0].speaker == s
                    for far, r in results.items():
                        c = counts[far]
                        if s in strangers:
                            c["stranger_accepted"] += r.speaker != "unknown"
                        elif r.speaker == s:
                            c["correct"] += 1
                        elif r.speaker == "unknown":
                            c["false_reject"] += 1
                        else:
                            c["misidentified"] += 1
    return {"speakers": len(names), "folds": folds, "enrolled_probes": n_enrolled_probes,
            "stranger_probes": n_stranger_probes, "top1": top1, "counts": counts}


def render(rows: list[tuple[str, dict]], model: str, seconds: float) -> str:
    lines = ["# Open-set identification", "",
             f"`scripts/bench_identify.py` with model `{model}`, {time.strftime('%Y-%m-%d')}, {seconds:.0f} s. "
             "Held-out speakers only; per fold a share of the speakers are strangers and the rest are enrolled "
             "from their first clips; probes are the enrolled speakers' other clips and every stranger clip. "
             "`identify` answers by its default rule (a calibrated model accepts the best candidate when its "
             "LLR is at least ln N, N the number enrolled: Bayes' rule with even odds that the speaker is "
             "enrolled), or at a fixed false-accept operating point of the model. Closed-set top-1 ignores "
             "the threshold.", "",
             "| corpus | speakers (folds) | enroll clips | probes: enrolled / strangers | closed-set top-1 "
             "| decision | correct | false reject | misidentified | strangers accepted |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for corpus, r in rows:
        ne, ns = r["enrolled_probes"], r["stranger_probes"]
        for far in POINTS:
            c = r["counts"][far]
            point = "default (LLR ≥ ln N)" if far is None else f"FAR {far:g}"
            lines.append(f"| {corpus} | {r['speakers']} ({r['folds']}) | {CORPORA[corpus][2]} | {ne} / {ns} | "
                         f"{100 * r['top1'] / ne:.1f} % | {point} | {100 * c['correct'] / ne:.1f} % | "
                         f"{100 * c['false_reject'] / ne:.1f} % | {100 * c['misidentified'] / ne:.1f} % | "
                         f"{100 * c['stranger_accepted'] / ns:.1f} % |")
    lines += ["", "Rates of enrolled-speaker probes (correct, false reject, misidentified: they add up to 100 %) "
              "and of stranger probes (accepted as some enrolled speaker). A stranger faces every enrolled "
              "speaker, so its acceptance rate is higher than the per-comparison false-accept rate.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=Path("../shared"))
    ap.add_argument("--model", default=None, help="model name or directory (default: the shipped model)")
    ap.add_argument("--out", type=Path, default=Path("docs/bench-identify.md"))
    a = ap.parse_args()
    data = a.shared / "data"
    if not data.is_dir():
        sys.exit(f"error: {data}: no shared data folder")
    t0 = time.perf_counter()
    v = Verifier(a.model)
    rows = []
    for corpus, (manifest, splits, n_enroll, folds) in CORPORA.items():
        clips = speakers_of(data, manifest, splits, n_enroll)
        rows.append((corpus, run_corpus(v, clips, n_enroll, folds)))
        print(f"{corpus}: done", file=sys.stderr)
    a.out.write_text(render(rows, v.model_ident, time.perf_counter() - t0))
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
