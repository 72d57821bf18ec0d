#!/usr/bin/env python3
"""Open-set identification on real speech: how often `identify` names the right speaker, says
`unknown` for a stranger, or gets it wrong.

Held-out speakers only (the TEST splits of libri-train-clean, speechocean762 and speech-commands;
libri-test-other and dspspeech20, test-only corpora). The speakers are split into folds; each
fold's speakers are strangers while every other speaker is enrolled (through ``SpeakerStore``, as
users do) from their first clips. Probes: each enrolled speaker's remaining clips, and every clip
of the strangers. Reported per decision rule: correct (right speaker, accepted), false reject
(answered unknown), misidentified (another enrolled speaker accepted), and strangers accepted as
someone.

    .venv/bin/python scripts/bench_identify.py --shared ../shared [--model default] [--out docs/bench-identify.md]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from speakerverify.data import from_manifest
from speakerverify.store import SpeakerStore
from speakerverify.verifier import Verifier

# corpus -> (manifest relative to the data folder, splits to use, clips to enroll from, folds)
CORPORA = {
    "libri-train-clean (test split)": ("corpora/libri-train-clean/manifest.csv", ["test"], 2, 4),
    "libri-test-other": ("corpora/libri-test-other/manifest.csv", None, 3, 5),
    "speechocean762 (test split)": ("corpora/speechocean762/manifest.csv", ["test"], 3, 5),
    "speech-commands (test split)": ("corpora/speech-commands/manifest.csv", ["test"], 3, 5),
    "dspspeech20": ("corpora/dspspeech20/manifest.csv", None, 3, 5),
}
# decision rule -> identify()'s keyword arguments; the first is its default
RULES: dict[str, dict[str, float]] = {
    "default (LLR ≥ ln(N / 0.01))": {},
    "stranger rate 0.1": {"stranger_rate": 0.1},
    "even odds (LLR ≥ ln N)": {"stranger_rate": 1.0},
    "FAR 0.01": {"far": 0.01},
    "FAR 0.001": {"far": 0.001},
}


def embed_once(v: Verifier) -> None:
    """Every rule is asked of ``identify`` itself, with the same probe: remember each recording's
    embedding (keyed by its samples) so that it is computed once, not once per rule and fold."""
    embed, memo = v.embed_waves, {}

    def remembered(waves, **kwargs):
        keys = [hashlib.sha1(np.ascontiguousarray(w).tobytes()).hexdigest() + repr(sorted(kwargs.items()))
                for w in waves]
        todo = [i for i, k in enumerate(keys) if k not in memo]
        if todo:
            for i, e in zip(todo, embed([waves[i] for i in todo], **kwargs), strict=True):
                memo[keys[i]] = e
        return np.stack([memo[k] for k in keys])

    v.embed_waves = remembered  # type: ignore[method-assign]


def speakers_of(data: Path, manifest: str, splits: list[str] | None, n_enroll: int) -> dict[str, list[Path]]:
    by_spk: dict[str, list[Path]] = defaultdict(list)
    for u in from_manifest(data / manifest, splits=splits):
        by_spk[u.speaker].append(u.path)
    return {s: sorted(p) for s, p in sorted(by_spk.items()) if len(p) > n_enroll}


def run_corpus(v: Verifier, clips: dict[str, list[Path]], n_enroll: int, folds: int) -> dict:
    names = sorted(clips)
    counts = {rule: defaultdict(int) for rule in RULES}
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
                    results = {rule: store.identify(probe, top=1, **kw) for rule, kw in RULES.items()}
                    if s in strangers:
                        n_stranger_probes += 1
                    else:
                        n_enrolled_probes += 1
                        top1 += next(iter(results.values())).candidates[0].speaker == s
                    for rule, r in results.items():
                        c = counts[rule]
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
             "LLR is at least ln(N / r), N the number enrolled and r = 0.01 the stranger rate: a calibrated "
             "LLR lets in at most a share r of strangers, and it is Bayes' rule with prior odds r : 1 that the "
             "speaker is enrolled), with another stranger rate (`--stranger-rate`; r = 1 is even odds, LLR at "
             "least ln N, the rule before), or at a fixed per-comparison false-accept operating point of the "
             "model (`--far`). Closed-set top-1 ignores the threshold.", "",
             "| corpus | speakers (folds) | enroll clips | probes: enrolled / strangers | closed-set top-1 "
             "| decision | correct | false reject | misidentified | strangers accepted |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for corpus, r in rows:
        ne, ns = r["enrolled_probes"], r["stranger_probes"]
        for rule in RULES:
            c = r["counts"][rule]
            lines.append(f"| {corpus} | {r['speakers']} ({r['folds']}) | {CORPORA[corpus][2]} | {ne} / {ns} | "
                         f"{100 * r['top1'] / ne:.1f} % | {rule} | {100 * c['correct'] / ne:.1f} % | "
                         f"{100 * c['false_reject'] / ne:.1f} % | {100 * c['misidentified'] / ne:.1f} % | "
                         f"{100 * c['stranger_accepted'] / ns:.1f} % |")
    lines += ["", "Rates of enrolled-speaker probes (correct, false reject, misidentified: they add up to 100 %) "
              "and of stranger probes (accepted as some enrolled speaker). A stranger faces every enrolled "
              "speaker, so its acceptance rate is higher than the per-comparison false-accept rate. A stranger "
              "rate r bounds the share of strangers accepted only as far as the model's calibration (fitted on "
              "the dev lists) holds on a corpus: where more than r get in, the LLRs are overconfident there.", ""]
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
    embed_once(v)
    rows = []
    for corpus, (manifest, splits, n_enroll, folds) in CORPORA.items():
        clips = speakers_of(data, manifest, splits, n_enroll)
        rows.append((corpus, run_corpus(v, clips, n_enroll, folds)))
        print(f"{corpus}: done", file=sys.stderr)
    a.out.write_text(render(rows, v.model_ident, time.perf_counter() - t0))
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
