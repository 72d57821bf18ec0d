"""Train the three seed models with several seeds and tabulate them on the seed protocol's test pairs.

    .venv/bin/python scripts/seed_table.py            # ~30-40 minutes on one CPU thread

For each recipe and seed: train (``run_training``; finished runs are reused, interrupted ones
resumed), then score ``tes.pkl`` + ``test_pairs.txt`` with the exported model (epoch and threshold
chosen on the 10 held-out training speakers) and, as the notebook would have it, with the weights
of the final epoch. Writes the table between markers in ``docs/results-seed.md`` (text around the
markers is kept) and every number to ``RUNS/results.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
from pathlib import Path

import torch
import yaml

from speakerverify import metrics
from speakerverify.evaluate import score_seed_protocol
from speakerverify.train.loop import run_training
from speakerverify.verifier import Verifier

MODELS = ["siamese-gru-seed", "siamese-gru", "siamese-cnn"]
SEED_DIR = Path("../shared/data/seed-protocol")
START, END = "<!-- seed-table:start -->", "<!-- seed-table:end -->"


def train_run(model: str, seed: int, epochs: int, runs: Path) -> Path:
    run = runs / f"{model}-s{seed}"
    if (run / "model" / "model.yaml").is_file():
        return run
    resume = (run / "checkpoints" / "last.pt").is_file()
    return run_training(Path("recipes") / f"seed-{model}.yaml", run, [f"seed={seed}", f"epochs={epochs}"],
                        resume=resume)


def final_epoch_model(run: Path) -> Path:
    """The exported model directory with the last epoch's weights instead of the best epoch's."""
    dest = run / "model-final-epoch"
    shutil.copytree(run / "model", dest, dirs_exist_ok=True)
    state = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["model"]
    torch.save({k.removeprefix("net."): v for k, v in state.items()}, dest / "model.pt")
    return dest


def score_seed_pairs(model_dir: Path, pkl: Path, pairs_path: Path) -> dict:
    """Every row of the pickle embedded as it is, every pair scored
    (``speakerverify.evaluate.score_seed_protocol``), at the exported threshold and at 0.5."""
    v = Verifier(model_dir, threads=1)
    seed = score_seed_protocol(v, pkl, pairs_path, batch_size=200)
    scores, labels = seed.scores, seed.labels
    return {"pair_accuracy": metrics.accuracy(scores, labels, v.backend.thresholds.get("eer", 0.5)),
            "pair_accuracy_at_0_5": metrics.accuracy(scores, labels, 0.5),
            "eer_percent": 100 * metrics.eer(scores, labels)[0], "n_pairs": len(labels)}


def evaluate_run(run: Path) -> dict:
    pkl, pairs = SEED_DIR / "tes.pkl", SEED_DIR / "test_pairs.txt"
    best = score_seed_pairs(run / "model", pkl, pairs)
    final = score_seed_pairs(final_epoch_model(run), pkl, pairs)
    config = yaml.safe_load((run / "model" / "model.yaml").read_text())
    backend = json.loads((run / "model" / "backend.json").read_text())
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {
        "run": str(run), "best_epoch": config["training"]["epoch"], "epochs": len(history),
        "test_acc_half": 100 * best["pair_accuracy_at_0_5"], "test_acc_eer_thr": 100 * best["pair_accuracy"],
        "test_eer": best["eer_percent"], "train_acc": 100 * config["training"]["train_pair_accuracy"],
        "val_eer": backend["validation"]["eer_percent"], "eer_threshold": backend["thresholds"]["eer"],
        "final_train_acc": 100 * history[-1]["train_acc"], "final_test_acc_half": 100 * final["pair_accuracy_at_0_5"],
        "final_test_eer": final["eer_percent"], "n_pairs": best["n_pairs"],
    }


def mean_std(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {sd:.1f}"


def table(results: dict[str, list[dict]]) -> str:
    cols = [("best epoch", "best_epoch"), ("test acc @0.5 (%)", "test_acc_half"),
            ("test acc @val-EER thr (%)", "test_acc_eer_thr"), ("test EER (%)", "test_eer"),
            ("train pair acc (%)", "train_acc"), ("val EER (%)", "val_eer"),
            ("final epoch: train acc (%)", "final_train_acc"),
            ("final epoch: test acc @0.5 (%)", "final_test_acc_half"), ("final epoch: test EER (%)", "final_test_eer")]
    lines = ["| model | " + " | ".join(c for c, _ in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for model, rows in results.items():
        lines.append(f"| `{model}` | " + " | ".join(mean_std([r[k] for r in rows]) for _, k in cols) + " |")
    lines += ["", "Per seed (test acc @0.5 / test EER, selected model):", ""]
    for model, rows in results.items():
        per_seed = ", ".join(f"seed {r['seed']}: {r['test_acc_half']:.1f} / {r['test_eer']:.1f}" for r in rows)
        lines.append(f"- `{model}`: {per_seed}")
    return "\n".join(lines)


def write_doc(doc: Path, body: str, command: str) -> None:
    block = f"{START}\nReproduce with `{command}` (from the repository root).\n\n{body}\n{END}"
    text = doc.read_text() if doc.is_file() else f"# Seed protocol results\n\n{START}\n{END}\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--runs", type=Path, default=Path("runs/seed-table"))
    parser.add_argument("--doc", type=Path, default=Path("docs/results-seed.md"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict[str, list[dict]] = {}
    for model in args.models:
        for seed in args.seeds:
            run = train_run(model, seed, args.epochs, args.runs)
            row = {"model": model, "seed": seed, **evaluate_run(run)}
            print(json.dumps(row), flush=True)
            results.setdefault(model, []).append(row)
    args.runs.mkdir(parents=True, exist_ok=True)
    (args.runs / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_doc(args.doc, table(results), " ".join([".venv/bin/python", "scripts/seed_table.py", *sys.argv[1:]]))
    print(table(results))


if __name__ == "__main__":
    main()
