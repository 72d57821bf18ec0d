"""speakerverify's Python API: enroll speakers, identify and verify recordings.

    .venv/bin/python docs/api-example.py [--data ../shared/data] [--model MODEL]

Runs against a throw-away store in a temporary folder (a real one would be, say,
``SpeakerStore("speakers.db")``, or the default ``$SPEAKERVERIFY_STORE``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from speakerverify import SpeakerStore, Verifier

ap = argparse.ArgumentParser()
ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
ap.add_argument("--model", default=None, help="model name or directory [default: the shipped default]")
args = ap.parse_args()
corpus = args.data / "corpora" / "libri-train-clean"
alice = sorted((corpus / "1235").glob("*.flac"))  # two TEST-split speakers of the corpus
bob = sorted((corpus / "1502").glob("*.flac"))

verifier = Verifier(args.model)  # loads the model once; share it between stores and calls

# 1:1 verification of two recordings (paths, file bytes or 16 kHz float arrays)
result = verifier.verify(alice[0], bob[0])
print(f"alice vs bob: same_speaker={result.same_speaker} score={result.score:.3f}")  # result.to_dict(): the JSON

with tempfile.TemporaryDirectory() as tmp:
    store = SpeakerStore(Path(tmp) / "speakers.db", verifier=verifier)

    # enroll: several clips per speaker are averaged; unusable or odd clips are reported
    for name, clips in (("alice", alice[:2]), ("bob", bob[:2])):
        enrolled = store.enroll(name, clips)
        print(f"enrolled {name}: {enrolled.n_clips} clips, rejected {enrolled.rejected}")
    print("speakers:", [s["name"] for s in store.speakers()])

    # identify: ranked candidates; "unknown" when nobody passes the model's threshold
    who = store.identify(alice[-1], top=2)
    print(f"{alice[-1].name} is {who.speaker}:", ", ".join(f"{c.speaker} {c.score:.3f}" for c in who.candidates))

    # verify against an enrolled speaker
    check = store.verify("bob", bob[-1])
    print(f"{bob[-1].name} is bob: {check.same_speaker} (score {check.score:.3f}, threshold {check.threshold:.3f})")

    store.remove("bob")
    print("after removing bob:", [s["name"] for s in store.speakers()])
    store.close()
