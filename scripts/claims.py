"""Test the seed notebook's three claims with measurements and plots.

    nice -n 10 .venv/bin/python scripts/claims.py   # repo root; ~25 min cold on 1 CPU thread, ~12 s warm

1. "A Siamese network separates speakers from spectrograms": t-SNE of the 200 ``tes.pkl`` clips and
   same/different score histograms on the 1800 fixed test pairs, for the notebook's model, a
   shared-GRU Siamese model trained on all training speakers, and the shipped default model.
2. "GRU features beat a simple CNN": the seed models on the seed protocol. The numbers come from
   ``docs/results-seed.md`` (3 seeds per model) when it exists; otherwise the seed recipes are
   trained here (``--seeds``).
3. "Pairwise training helps and accuracy grows with more diverse speakers": ``siamese-gru`` trained
   with the ``pairs`` task on 10, 25, 50, 100 and all 140 training speakers (ten consecutive 1-s
   clips of speech per speaker, fewer for the 28 speakers with under 10 s), and, as a control, the
   same network and clips trained as a speaker classifier (softmax cross-entropy, no pairs: the
   pairs task with ``pairs.objective=softmax``).

Training reads only the ``train`` split; validation (epoch and threshold choice) uses the ``dev``
split's speakers, or the last 10 ``trs.pkl`` speakers for the seed recipes; ``tes.pkl`` is read
only to score finished models. Finished runs under ``--runs`` are reused and interrupted ones
resumed, so a re-run only re-scores and re-plots. The 1-s clips are written (WAV) to ``--clips``,
outside the repository. Writes the generated blocks of ``docs/claims.md``, ``docs/claims/*.png`` and
``RUNS/results.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from speakerverify import metrics
from speakerverify.data import load_array_pickle, read_index_pairs
from speakerverify.errors import SpeakerVerifyError
from speakerverify.evaluate import evaluate_seed_pairs, score_seed_protocol
from speakerverify.train.loop import run_training
from speakerverify.verifier import Verifier

DATA = Path("../shared/data")
SEED_DIR = DATA / "seed-protocol"
CORPUS = DATA / "corpora" / "libri-train-clean"
SEED_MODELS = ["siamese-gru-seed", "siamese-gru", "siamese-cnn"]
CLIP = 16000
CLIPS_VERSION = "1"  # bump when the clip cutting below changes
FIG_DPI = 110


# ---------------------------------------------------------------------------------------------
# 1-s clips from libri-train-clean (train and dev splits)
# ---------------------------------------------------------------------------------------------

def trim_silence(wave: np.ndarray, rel_db: float = -40.0, frame: int = 320) -> np.ndarray:
    """Drop leading and trailing 20-ms frames more than ``rel_db`` below the loudest frame."""
    n = len(wave) // frame
    rms = np.sqrt((wave[: n * frame].reshape(n, frame) ** 2).mean(1) + 1e-20)
    loud = np.nonzero(rms >= rms.max() * 10 ** (rel_db / 20))[0]
    return wave[loud[0] * frame:(loud[-1] + 1) * frame]


def _segment_key(path: str) -> tuple[str, int]:
    utt, k = path.rsplit("-s", 1)
    return utt, int(k.split(".")[0])


def build_clips(out: Path, per_speaker: int = 10) -> dict[str, dict]:
    """Per train/dev speaker: its segments joined in order, silence trimmed at both ends, then up
    to ``per_speaker`` consecutive, non-overlapping 1-s windows from the start, written as 16-bit
    WAV under ``out/<speaker>/``. Returns ``{speaker: {"split", "clips": [relative paths]}}``."""
    index = out / "clips.json"
    if index.is_file():
        cached = json.loads(index.read_text())
        if cached.get("version") == CLIPS_VERSION:
            return cached["speakers"]
    segments: dict[str, list[str]] = {}
    split_of: dict[str, str] = {}
    with (CORPUS / "manifest.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            if row["split"] in ("train", "dev"):
                segments.setdefault(row["speaker"], []).append(row["path"])
                split_of[row["speaker"]] = row["split"]
    speakers: dict[str, dict] = {}
    for spk in sorted(segments):
        wave = np.concatenate([sf.read(CORPUS / p, dtype="float32")[0]
                               for p in sorted(segments[spk], key=_segment_key)])
        wave = trim_silence(wave)
        n = min(per_speaker, len(wave) // CLIP)
        (out / spk).mkdir(parents=True, exist_ok=True)
        rels = []
        for k in range(n):
            rel = f"{spk}/{spk}-c{k}.wav"
            sf.write(out / rel, wave[k * CLIP:(k + 1) * CLIP], 16000, subtype="PCM_16")
            rels.append(rel)
        speakers[spk] = {"split": split_of[spk], "clips": rels}
    index.write_text(json.dumps({"version": CLIPS_VERSION, "speakers": speakers}, indent=1))
    return speakers


def train_subset(speakers: dict[str, dict], n: int, seed: int) -> list[str]:
    """``n`` training speakers: a seeded order of those with ten clips (nested: the first 10 are in
    the first 25...); ``n`` = every training speaker takes them all, short ones included."""
    train = sorted(s for s, v in speakers.items() if v["split"] == "train")
    if n >= len(train):
        return train
    full = [s for s in train if len(speakers[s]["clips"]) == 10]
    if n > len(full):
        raise SystemExit(f"only {len(full)} training speakers have ten clips; asked for {n}")
    return list(np.random.default_rng(seed).permutation(full)[:n])


def write_manifest(clips_dir: Path, speakers: dict[str, dict], train: Sequence[str], name: str) -> Path:
    """A manifest of the chosen training speakers plus every dev speaker (split column kept)."""
    path = clips_dir / "manifests" / f"{name}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    dev = sorted(s for s, v in speakers.items() if v["split"] == "dev")
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "speaker", "duration_s", "split"])
        for spk in [*train, *dev]:
            for rel in speakers[spk]["clips"]:
                w.writerow([f"../{rel}", spk, "1.0", speakers[spk]["split"]])
    return path


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------

def finished(run: Path) -> bool:
    return (run / "model" / "model.yaml").is_file()


def train_recipe(recipe: str, run: Path, overrides: list[str]) -> Path:
    if finished(run):
        return run
    resume = (run / "checkpoints" / "last.pt").is_file()
    t0 = time.perf_counter()
    run_training(Path("recipes") / recipe, run, overrides, resume=resume)
    (run / "claims_seconds.txt").write_text(f"{time.perf_counter() - t0:.1f}\n")
    return run


def pairs_overrides(manifest: Path, dev: Sequence[str], seed: int, epochs: int) -> list[str]:
    return [f"data.train={manifest}", "data.splits=[train, dev]", f"data.val_speakers=[{', '.join(dev)}]",
            f"seed={seed}", f"epochs={epochs}"]


def train_classifier(manifest: Path, dev: Sequence[str], seed: int, epochs: int, run: Path, n_clips: int,
                     batch_size: int = 64, min_steps: int = 0) -> Path:
    """The control for "pairwise training helps": the pairs task's network (``siamese-gru``: one
    GRU(128) over the seed |STFT|), clips, batch size, optimiser and dev-split epoch choice, but
    trained as a softmax classifier over the training speakers instead of on same/different pairs
    (the pairs task's ``pairs.objective: softmax``; its head then scores sigmoid(cos), so the
    Verifier scores it like the pairs models). ``min_steps``: at least this many updates."""
    epochs = max(epochs, -(-min_steps // -(-n_clips // batch_size)))
    return train_recipe("seed-siamese-gru.yaml", run,
                        [*pairs_overrides(manifest, dev, seed, epochs), "pairs.objective=softmax",
                         f"batch_size={batch_size}", "export.name=siamese-gru-softmax"])


# ---------------------------------------------------------------------------------------------
# Scoring on the seed protocol's test pairs
# ---------------------------------------------------------------------------------------------

def test_protocol() -> tuple[np.ndarray, np.ndarray]:
    """The test clips' speakers (ten consecutive rows each) and the fixed pairs' labels."""
    n = len(load_array_pickle(SEED_DIR / "tes.pkl"))
    return np.repeat(np.arange(n // 10), 10), np.array(read_index_pairs(SEED_DIR / "test_pairs.txt"))[:, 0]


def score_model(model: str | Path | None) -> dict:
    """Every ``tes.pkl`` row embedded as given (the silent row 131 too, as the notebook kept it)
    and all 1800 fixed pairs scored: ``speakerverify.evaluate.score_seed_protocol``."""
    v = Verifier(model, threads=1)
    seed = score_seed_protocol(v, SEED_DIR / "tes.pkl", SEED_DIR / "test_pairs.txt", batch_size=50)
    scores, labels = seed.scores, seed.labels
    thr = v.backend.threshold(duration_s=1.0)  # every tes.pkl clip is 1 s long
    out = {"model": v.model_ident, "arch": v.bundle.config["arch"], "eer": 100 * metrics.eer(scores, labels)[0],
           "threshold": thr, "acc": 100 * metrics.accuracy(scores, labels, thr), "scores": scores,
           "emb": seed.embeddings}
    if "sigmoid_half" in v.backend.thresholds:
        out["acc_half"] = 100 * metrics.accuracy(scores, labels, 0.5)
    cfg = v.bundle.config.get("training") or {}
    out["best_epoch"] = cfg.get("epoch")
    return out


def crosscheck(model: str | Path | None) -> str:
    """The package's own seed-protocol evaluation, to confirm :func:`score_model`'s numbers."""
    try:
        r = evaluate_seed_pairs(SEED_DIR / "tes.pkl", SEED_DIR / "test_pairs.txt", verifier=Verifier(model, threads=1))
    except SpeakerVerifyError as exc:
        return f"failed ({exc})"
    return f"EER {r['eer_percent']:.1f} %, pair accuracy {100 * r['pair_accuracy']:.1f} % ({r['n_pairs']} pairs)"


def separation(emb: np.ndarray, speakers: np.ndarray) -> dict:
    """Leave-one-out 1-nearest-neighbour speaker accuracy (cosine) and cosine silhouette."""
    from sklearn.metrics import silhouette_score

    e = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
    sim = e @ e.T
    np.fill_diagonal(sim, -np.inf)
    nn_acc = float(np.mean(speakers[sim.argmax(1)] == speakers))
    return {"nn_acc": 100 * nn_acc, "silhouette": float(silhouette_score(e, speakers, metric="cosine"))}


# ---------------------------------------------------------------------------------------------
# docs/results-seed.md (claim 2)
# ---------------------------------------------------------------------------------------------

def read_seed_table(path: Path) -> dict[str, dict] | None:
    """``{model: {"acc_half": (mean, sd), "acc": ..., "eer": ..., "seeds": [(seed, acc_half, eer)]}}``."""
    if not path.is_file():
        return None
    lines = path.read_text().splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("| model |")), None)
    if header is None:
        return None
    cols = [c.strip() for c in lines[header].strip().strip("|").split("|")]
    want = {"acc_half": "test acc @0.5 (%)", "acc": "test acc @val-EER thr (%)", "eer": "test EER (%)"}
    if any(v not in cols for v in want.values()):
        return None
    out: dict[str, dict] = {}
    for line in lines[header + 2:]:
        if not line.startswith("| `"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        model = cells[0].strip("`")
        row = {}
        for key, col in want.items():
            m = re.match(r"([\d.]+) ± ([\d.]+)", cells[cols.index(col)])
            if not m:
                return None
            row[key] = (float(m.group(1)), float(m.group(2)))
        row["seeds"] = []
        out[model] = row
    for line in lines:
        m = re.match(r"- `([^`]+)`: (seed .*)", line)
        if m and m.group(1) in out:
            out[m.group(1)]["seeds"] = [(int(a), float(b), float(c)) for a, b, c in
                                        re.findall(r"seed (\d+): ([\d.]+) / ([\d.]+)", m.group(2))]
    return out if all(m in out for m in SEED_MODELS) else None


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt(ms: tuple[float, float], n: int | None = None) -> str:
    return f"{ms[0]:.1f} ± {ms[1]:.1f}" if (n is None or n > 1) else f"{ms[0]:.1f}"


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------

def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_tsne(panels: list[tuple[str, np.ndarray, dict]], speakers: np.ndarray, out: Path) -> None:
    from sklearn.manifold import TSNE

    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5.0))
    cmap = plt.get_cmap("tab20")
    markers = "os^D"
    for ax, (title, emb, sep) in zip(np.atleast_1d(axes), panels, strict=True):
        e = emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)
        xy = TSNE(n_components=2, perplexity=20, init="pca", random_state=0, metric="cosine").fit_transform(e)
        for s in np.unique(speakers):
            m = speakers == s
            ax.scatter(xy[m, 0], xy[m, 1], s=22, color=cmap(s % 20), marker=markers[s // 20 % 4],
                       edgecolor="black", linewidth=0.3)
            cx, cy = np.median(xy[m], axis=0)
            ax.annotate(str(s), (cx, cy), fontsize=7, ha="center", va="center", alpha=0.8,
                        bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.6})
        ax.set_title(f"{title}\n1-NN speaker acc {sep['nn_acc']:.0f} %, silhouette {sep['silhouette']:.2f}",
                     fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("t-SNE of the 200 tes.pkl clips (20 unseen speakers x 10 one-second clips; "
                 "colour and number = speaker, number at the speaker's median)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=FIG_DPI)
    plt.close(fig)


def plot_scores(panels: list[tuple[str, dict]], labels: np.ndarray, out: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8))
    y = labels.astype(bool)
    for ax, (title, r) in zip(np.atleast_1d(axes), panels, strict=True):
        s = r["scores"]
        bins = np.linspace(s.min(), s.max(), 41)
        ax.hist(s[y], bins=bins, alpha=0.6, color="tab:green", label=f"same speaker ({y.sum()})")
        ax.hist(s[~y], bins=bins, alpha=0.6, color="tab:red", label=f"different ({(~y).sum()})")
        ax.axvline(r["threshold"], color="black", linestyle="--", linewidth=1, label="model's threshold")
        ax.set_title(f"{title}\nEER {r['eer']:.1f} %, pair accuracy {r['acc']:.1f} % at its threshold", fontsize=9)
        ax.set_xlabel("score")
        ax.set_ylabel("pairs")
        ax.legend(fontsize=7)
    fig.suptitle("Scores of the 1800 fixed test pairs (test_pairs.txt)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=FIG_DPI)
    plt.close(fig)


def plot_models(rows: list[dict], out: Path) -> None:
    """Bars: mean test EER / accuracy per model, dots: individual seeds."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(rows))
    for ax, key, label in ((axes[0], "eer", "test EER (%)  (lower is better)"),
                           (axes[1], "acc", "test pair accuracy (%)")):
        means = [r[key][0] for r in rows]
        sds = [r[key][1] for r in rows]
        ax.bar(x, means, yerr=sds, color=[r["color"] for r in rows], alpha=0.7, capsize=4)
        for i, r in enumerate(rows):
            pts = r.get(f"{key}_seeds") or []
            ax.scatter([i] * len(pts), pts, color="black", s=12, zorder=3)
            ax.text(i, (51 if key == "acc" else 0) + 1, f"{means[i]:.1f}", ha="center", fontsize=9, weight="bold")
        ax.set_xticks(x)
        ax.set_xticklabels([r.get("label", r["name"]) for r in rows], fontsize=8)
        ax.set_ylabel(label)
        if key == "acc":
            ax.set_ylim(50, 100)
    axes[0].set_title("seed protocol: 1800 tes.pkl pairs (bar: mean ± sd over seeds, dots: seeds)", fontsize=9)
    axes[1].set_title("accuracy at each model's validation threshold", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=FIG_DPI)
    plt.close(fig)


def plot_curve(curve: dict[str, dict[int, list[dict]]], default: dict, ref: dict | None, out: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.8))
    styles = {"pairs": ("tab:blue", "o", "siamese-gru, pairs task (BCE on same/different pairs)"),
              "softmax": ("tab:orange", "s", "same network and clips, softmax speaker classifier")}
    for ax, key, label in ((axes[0], "eer", "test EER (%)"), (axes[1], "acc", "test pair accuracy (%)")):
        for kind, by_n in curve.items():
            color, marker, name = styles[kind]
            ns = sorted(by_n)
            means = [statistics.mean(r[key] for r in by_n[n]) for n in ns]
            ax.plot(ns, means, color=color, marker=marker, label=name + " (mean; dots: seeds)")
            for n in ns:
                ax.scatter([n] * len(by_n[n]), [r[key] for r in by_n[n]], color=color, s=10, alpha=0.6)
        ax.axhline(default[key], color="tab:green", linestyle="--",
                   label=f"shipped default model ({default['arch']}; docs/model-card.md)")
        if ref is not None:
            ax.errorbar([40], [ref[key][0]], yerr=[ref[key][1]], color="gray", marker="x", capsize=3, linestyle="none",
                        label="siamese-gru on trs.pkl (results-seed.md)")
        ax.set_xscale("log")
        ns = sorted({n for by_n in curve.values() for n in by_n})
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.minorticks_off()
        ax.set_xlabel("training speakers (10 one-second clips each)")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle("Learning curve on the seed protocol's 1800 test pairs (epoch and threshold chosen on "
                 "the 20 dev-split speakers)", fontsize=9)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(out, dpi=FIG_DPI)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# The document
# ---------------------------------------------------------------------------------------------

BLOCKS = ["run", "claim1", "claim2", "claim3"]


def write_blocks(doc: Path, blocks: dict[str, str]) -> None:
    text = doc.read_text() if doc.is_file() else "# The seed notebook's claims, tested\n\n" + "".join(
        f"<!-- claims-{b}:start -->\n<!-- claims-{b}:end -->\n\n" for b in BLOCKS)
    for name, body in blocks.items():
        start, end = f"<!-- claims-{name}:start -->", f"<!-- claims-{name}:end -->"
        if start in text and end in text:
            head, rest = text.split(start, 1)
            text = head + f"{start}\n{body.strip()}\n{end}" + rest.split(end, 1)[1]
        else:
            text = text.rstrip() + f"\n\n{start}\n{body.strip()}\n{end}\n"
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)


def md_table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def run_seconds(run: Path) -> float:
    f = run / "claims_seconds.txt"
    return float(f.read_text()) if f.is_file() else float("nan")


# ---------------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("runs/claims"))
    parser.add_argument("--clips", type=Path, default=Path("~/.cache/speakerverify/claims-clips").expanduser())
    parser.add_argument("--doc", type=Path, default=Path("docs/claims.md"))
    parser.add_argument("--figs", type=Path, default=Path("docs/claims"))
    parser.add_argument("--seed-table", type=Path, default=Path("docs/results-seed.md"))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="learning-curve seeds")
    parser.add_argument("--speakers", nargs="+", type=int, default=[10, 25, 50, 100, 140])
    parser.add_argument("--epochs-small", type=int, default=30, help="pairs epochs for <= 50 speakers")
    parser.add_argument("--epochs-large", type=int, default=15, help="pairs epochs for > 50 speakers")
    parser.add_argument("--softmax-epochs", type=int, default=60)
    parser.add_argument("--softmax-min-steps", type=int, default=600,
                        help="more softmax epochs where an epoch has few batches (few speakers)")
    parser.add_argument("--seed-epochs", type=int, default=30, help="epochs of the seed recipes")
    parser.add_argument("--model", default=None, help="embedding model to compare (default: the shipped one)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    args.runs.mkdir(parents=True, exist_ok=True)
    args.figs.mkdir(parents=True, exist_ok=True)
    test_speakers, labels = test_protocol()

    # ---- training -------------------------------------------------------------------------
    seed_run = train_recipe("seed-siamese-gru-seed.yaml", args.runs / "seed-siamese-gru-seed-s0",
                            ["seed=0", f"epochs={args.seed_epochs}"])
    seed_table = read_seed_table(args.seed_table)
    own_seed_runs: dict[str, list[Path]] = {}
    if seed_table is None:  # no shared table: train the seed recipes here
        for m in SEED_MODELS:
            own_seed_runs[m] = [train_recipe(f"seed-{m}.yaml", args.runs / f"seed-{m}-s{s}",
                                             [f"seed={s}", f"epochs={args.seed_epochs}"]) for s in args.seeds]

    t_clips = time.perf_counter()
    speakers = build_clips(args.clips)
    clips_s = time.perf_counter() - t_clips
    dev = sorted(s for s, v in speakers.items() if v["split"] == "dev")
    n_all = sum(v["split"] == "train" for v in speakers.values())
    curve_runs: dict[str, dict[int, list[Path]]] = {"pairs": {}, "softmax": {}}
    subsets: dict[tuple[int, int], list[str]] = {}
    for seed in args.seeds:
        for n in args.speakers:
            n = min(n, n_all)
            train = train_subset(speakers, n, seed)
            subsets[(n, seed)] = train
            manifest = write_manifest(args.clips, speakers, train, f"n{n}-s{seed}")
            epochs = args.epochs_small if n <= 50 else args.epochs_large
            curve_runs["pairs"].setdefault(n, []).append(
                train_recipe("seed-siamese-gru.yaml", args.runs / f"curve-pairs-n{n}-s{seed}",
                             pairs_overrides(manifest, dev, seed, epochs)))
            curve_runs["softmax"].setdefault(n, []).append(
                train_classifier(manifest, dev, seed, args.softmax_epochs, args.runs / f"curve-softmax-n{n}-s{seed}",
                                 sum(len(speakers[s]["clips"]) for s in train), min_steps=args.softmax_min_steps))
    t_trained = time.perf_counter()

    # ---- scoring --------------------------------------------------------------------------
    default = score_model(args.model)
    seed_res = score_model(seed_run)
    curve: dict[str, dict[int, list[dict]]] = {k: {} for k in curve_runs}
    for kind, by_n in curve_runs.items():
        for n, runs in by_n.items():
            for run in runs:
                r = score_model(run)
                r["run"], r["seconds"] = str(run), run_seconds(run)
                curve[kind].setdefault(n, []).append(r)
    n_max = max(curve["pairs"])
    big = curve["pairs"][n_max][0]
    panels = [("notebook model: siamese-gru-seed, trs.pkl (40 speakers), seed 0", seed_res),
              (f"siamese-gru, pairs task, all {n_max} training speakers, seed {args.seeds[0]}", big),
              (f"shipped default: {default['model']}", default)]
    seps = [separation(r["emb"], test_speakers) for _, r in panels]
    checks = [crosscheck(m) for m in (seed_run, Path(big["run"]), args.model)]
    plot_tsne([(t, r["emb"], s) for (t, r), s in zip(panels, seps, strict=True)], test_speakers,
              args.figs / "claim1-tsne.png")
    plot_scores(panels, labels, args.figs / "claim1-scores.png")

    # claim 2 rows
    model_rows: list[dict] = []
    colors = {"siamese-gru-seed": "tab:purple", "siamese-gru": "tab:blue", "siamese-cnn": "tab:red"}
    if seed_table is not None:
        for m in SEED_MODELS:
            t = seed_table[m]
            model_rows.append({"name": m, "label": f"{m}\ntrs.pkl", "color": colors[m], "eer": t["eer"],
                               "acc": t["acc"],
                               "acc_half": t["acc_half"], "n": len(t["seeds"]) or 3,
                               "eer_seeds": [s[2] for s in t["seeds"]], "acc_seeds": None,
                               "acc_half_seeds": [s[1] for s in t["seeds"]], "source": "docs/results-seed.md"})
    else:
        for m in SEED_MODELS:
            rs = [score_model(r) for r in own_seed_runs[m]]
            model_rows.append({"name": m, "label": f"{m}\ntrs.pkl", "color": colors[m], "n": len(rs),
                               "source": "this script",
                               **{k: mean_sd([r[k] for r in rs]) for k in ("eer", "acc", "acc_half")},
                               **{f"{k}_seeds": [r[k] for r in rs] for k in ("eer", "acc", "acc_half")}})
    pairs_big = curve["pairs"][n_max]
    model_rows.append({"name": f"siamese-gru\n{n_max} speakers", "label": f"siamese-gru\n{n_max} libri speakers",
                       "color": "tab:cyan", "n": len(pairs_big),
                       "source": "this script (claim 3)",
                       **{k: mean_sd([r[k] for r in pairs_big]) for k in ("eer", "acc", "acc_half")},
                       **{f"{k}_seeds": [r[k] for r in pairs_big] for k in ("eer", "acc", "acc_half")}})
    model_rows.append({"name": f"default\n({default['arch']})", "label": f"default model\n({default['arch']})",
                       "color": "tab:green", "n": 1, "source": "this script",
                       "eer": (default["eer"], 0.0), "acc": (default["acc"], 0.0), "acc_half": None,
                       "eer_seeds": [], "acc_seeds": []})
    plot_models(model_rows, args.figs / "claim2-models.png")
    ref = seed_table["siamese-gru"] if seed_table is not None else None
    plot_curve(curve, default, ref, args.figs / "claim3-curve.png")

    # ---- numbers and document -------------------------------------------------------------
    total_s = time.perf_counter() - t_start
    all_runs = [seed_run, *(x for by_n in curve_runs.values() for rs in by_n.values() for x in rs),
                *(x for rs in own_seed_runs.values() for x in rs)]
    train_s = sum(run_seconds(r) for r in all_runs)
    strip = lambda r: {k: v for k, v in r.items() if k not in ("scores", "emb")}  # noqa: E731
    results = {"default": strip(default), "seed_model": strip(seed_res),
               "separation": {t: s for (t, _), s in zip(panels, seps, strict=True)},
               "evaluate_seed_pairs": {t: c for (t, _), c in zip(panels, checks, strict=True)},
               "curve": {k: {str(n): [strip(r) for r in rs] for n, rs in v.items()} for k, v in curve.items()},
               "subsets": {f"n{n}-s{s}": sp for (n, s), sp in subsets.items()},
               "seed_table": {r["name"]: {k: r[k] for k in ("eer", "acc", "acc_half", "source")} for r in model_rows},
               "seconds": {"total_this_invocation": total_s, "training_recorded": train_s, "clips": clips_s,
                           "scoring_and_plots": time.perf_counter() - t_trained}}
    (args.runs / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")

    command = " ".join(["nice -n 10 .venv/bin/python scripts/claims.py", *sys.argv[1:]])
    n_clips = {n: len([c for s in subsets[(n, args.seeds[0])] for c in speakers[s]["clips"]]) for n in curve["pairs"]}
    blocks = {}
    blocks["run"] = (
        f"Reproduce: `{command}` (from the repository root; one CPU thread). Training time recorded for the "
        f"runs this page uses: {train_s / 60:.0f} min; this invocation took {total_s / 60:.1f} min "
        f"(finished runs under `{args.runs}` are reused, so a re-run only re-scores and re-plots, "
        f"{results['seconds']['scoring_and_plots']:.0f} s). Numbers: `{args.runs}/results.json`. "
        f"Default model scored: `{default['model']}`.")
    rows = []
    for (title, r), s in zip(panels, seps, strict=True):
        half = f"{r['acc_half']:.1f}" if "acc_half" in r else "n/a"
        rows.append([title, f"{r['eer']:.1f}", f"{r['acc']:.1f}", half, f"{s['nn_acc']:.0f}", f"{s['silhouette']:.2f}"])
    blocks["claim1"] = (
        md_table(["model", "test EER (%)", "pair acc at model threshold (%)", "pair acc at 0.5 (%)",
                  "1-NN speaker acc, 200 clips (%)", "silhouette (cosine)"], rows)
        + "\n\nCross-check with `speakerverify.evaluate.evaluate_seed_pairs` (same pairs, the package's own "
        "evaluation): " + "; ".join(f"{t.split(',')[0]}: {c}" for (t, _), c in zip(panels, checks, strict=True))
        + ".\n\n![t-SNE of the test clips](claims/claim1-tsne.png)\n\n![score histograms](claims/claim1-scores.png)")
    rows = []
    for r in model_rows:
        name = r["name"].replace("\n", " ")
        half = fmt(r["acc_half"], r["n"]) if r.get("acc_half") else "n/a"
        rows.append([f"`{name}`" if "\n" not in r["name"] else name, str(r["n"]), fmt(r["eer"], r["n"]),
                     fmt(r["acc"], r["n"]), half, r["source"]])
    blocks["claim2"] = (
        md_table(["model", "seeds", "test EER (%)", "pair acc at val threshold (%)", "pair acc at 0.5 (%)", "source"],
                 rows) + "\n\n![models on the seed protocol](claims/claim2-models.png)")
    rows = []
    for n in sorted(curve["pairs"]):
        p, c = curve["pairs"][n], curve["softmax"][n]
        rows.append([f"{n}" + (" (all)" if n == n_all else ""), str(n_clips[n]),
                     fmt(mean_sd([r["eer"] for r in p]), len(p)), fmt(mean_sd([r["acc"] for r in p]), len(p)),
                     "/".join(str(r["best_epoch"]) for r in p),
                     fmt(mean_sd([r["eer"] for r in c]), len(c)), fmt(mean_sd([r["acc"] for r in c]), len(c)),
                     "/".join(str(r["best_epoch"]) for r in c)])
    rows.append(["default model", "its own (docs/model-card.md)", f"{default['eer']:.1f}", f"{default['acc']:.1f}",
                 "", "", "", ""])
    seeds_txt = ", ".join(str(s) for s in args.seeds)
    blocks["claim3"] = (
        f"Seeds {seeds_txt} (each seed draws its own speaker subset, initial weights and pairs); mean ± sd. "
        f"Pairs runs: {args.epochs_small} epochs up to 50 speakers, {args.epochs_large} above; softmax runs: "
        f"{args.softmax_epochs} epochs, more where that is under {args.softmax_min_steps} updates; "
        "the epoch with the lowest dev-pair EER is kept in both.\n\n"
        + md_table(["training speakers", "clips (seed " + str(args.seeds[0]) + ")", "pairs: EER (%)",
                    "pairs: acc (%)", "pairs: best epochs", "softmax: EER (%)", "softmax: acc (%)",
                    "softmax: best epochs"], rows)
        + "\n\n![learning curve](claims/claim3-curve.png)")
    write_blocks(args.doc, blocks)
    print(json.dumps({k: results[k] for k in ("seed_table", "seconds")}, indent=1, default=str))
    print(f"done in {total_s / 60:.1f} min; wrote {args.doc}, {args.figs}/*.png, {args.runs}/results.json")


if __name__ == "__main__":
    main()
