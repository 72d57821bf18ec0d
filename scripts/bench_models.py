#!/usr/bin/env python3
"""`make bench` (models): accuracy, calibration, speed and memory of our models and the peers.

Every system embeds every file of every trial list in ../shared/data/trials, and the seed
protocol's 1-s test clips, once, in its own process (so peak memory is its own), on the same
machine in the same run. Scores are cosine similarities (plus AS-norm where a model's back end says
so). Calibration for peers is a plain logistic one fitted on the dev list (libri-train-clean-dev);
ours is the model's own, fitted on the same dev speakers (clean and 1-s telephone-band crops) and
duration-aware. The first section checks the default model against issue 4's targets. Speed:
real-time factor (compute seconds per audio second, model + front end) on 1 s, 3 s and 10 s clips
with 2 threads, the median of ``--speed-rounds`` rounds that each time every system in turn (so a
slow spell of a shared machine falls on all of them), every system under the same protocol.

Each system's embeddings of the benchmark files are kept under ``$SPEAKERVERIFY_CACHE/bench``
(default ~/.cache/speakerverify/bench), keyed by the system's weights (ours) or its runner script
(peers) and the exact file list, so a rerun after adding a model embeds only that model; speed,
load time and memory are measured afresh in every run.

    python scripts/bench_models.py --shared ../shared --out docs/benchmarks.md [--model DIR ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from speakerverify import metrics, process_memory
from speakerverify.audio import check_waveform, to_mono_16k
from speakerverify.data import DEV_LISTS, TEST_LISTS, Trial, from_seed_pickle, read_index_pairs, read_trials
from speakerverify.evaluate import score_trial_embeddings, trial_durations, trial_files
from speakerverify.scoring import Calibration, cosine

LISTS = DEV_LISTS + TEST_LISTS  # every list in ../shared/data/trials
#: One thread and OpenMP setting for every system, ours and the peers alike (an OpenMP wait policy
#: alone moves CAM++'s RTF by half): 2 intra-op threads, the libraries' default wait policy.
THREADS = 2
BENCH_ENV = {"OMP_NUM_THREADS": str(THREADS), "MKL_NUM_THREADS": str(THREADS)}
SEED = "seed-protocol"  # tes.pkl's 1-s clips, written out as WAV, and the fixed test pairs
LIBRI_TESTS = ["libri-train-clean-test", "libri-test-other-test"]
PEERS = {"ecapa": "ECAPA (SpeechBrain)", "campplus": "CAM++ (3D-Speaker)", "resemblyzer": "Resemblyzer"}
CACHE = Path(os.path.expanduser(os.environ.get("SPEAKERVERIFY_CACHE", "~/.cache/speakerverify"))) / "bench"
DATA = Path("../shared/data").resolve()  # set from --shared in main()
PEER_PARAMS = {"ecapa": 20.8, "campplus": 6.9, "resemblyzer": 1.4}  # millions, from ../shared/peers/README.md


def speed_clips(shared: Path, tmp: Path) -> dict[str, list[str]]:
    """Ten clips each of 1, 3 and 10 s cut from libri-test-other recordings (speed only)."""
    src = sorted((shared / "data/corpora/libri-test-other").rglob("*.flac"))
    out: dict[str, list[str]] = {}
    for secs in (1, 3, 10):
        out[str(secs)] = []
        for i, path in enumerate(src[:10]):
            x, sr = sf.read(path, dtype="float32")
            clip = np.resize(x, secs * sr)
            f = tmp / f"speed-{secs}s-{i}.wav"
            sf.write(f, clip, sr)
            out[str(secs)].append(str(f))
    return out


def seed_trials(shared: Path, tmp: Path) -> list[Trial]:
    """The seed protocol as a trial list over WAV copies of tes.pkl's rows (absolute paths)."""
    folder = tmp / "seed"
    folder.mkdir()
    rows = []
    for i, utt in enumerate(from_seed_pickle(shared / "data/seed-protocol/tes.pkl")):
        rows.append(folder / f"tes-{i:03d}.wav")
        sf.write(rows[-1], utt.wave, 16000)
    return [Trial(label, str(rows[i]), str(rows[j]))
            for label, i, j in read_index_pairs(shared / "data/seed-protocol/test_pairs.txt")]


def worker(args: argparse.Namespace) -> None:
    """Embed a file list with one of our models; report embeddings, rtf, load time, peak memory."""
    import torch

    from speakerverify.verifier import Verifier

    torch.set_num_threads(THREADS)
    spec = json.loads(Path(args.job).read_text())
    t0 = time.perf_counter()
    v = Verifier(spec["model"], engine=spec.get("engine", "torch"), threads=THREADS)
    load_s = time.perf_counter() - t0
    result: dict = {"load_s": load_s, "name": v.model_name,
                    "params_m": sum(p.numel() for p in v.bundle.network.parameters()) / 1e6}
    embs = []
    second = []
    for f in spec["files"]:
        # Every file is scored, silent or not: the seed protocol has a near-silent clip (tes.pkl row
        # 131) that the notebook scored too, and the peers are not asked to reject it either.
        data, rate = sf.read(f, dtype="float32")
        w = v.speech(check_waveform(to_mono_16k(data, rate, f), f, v.bundle.min_duration_s, reject_silence=False),
                     f, strict=False)
        embs.append(v.embed_waves([w])[0])
        if v.bundle.two_branch:
            second.append(v.embed_waves([w], second=True)[0])
    rtf = {}
    for secs, files in spec["speed"].items():
        waves = [v.load(f) for f in files]
        v.embed_waves(waves[:2])  # warm-up: the same two clips the peers get (PEER_SPEED)
        v.embedder.compute_s = 0.0
        for w in waves:
            v.embed_waves([w])
        rtf[secs] = v.embedder.compute_s / (len(waves) * int(secs))
    result["rtf"] = rtf
    result["maxrss_mb"] = process_memory.peak_rss_mb()
    np.savez(spec["out"], embeddings=np.stack(embs) if embs else np.zeros(0),
             second=np.stack(second) if second else np.zeros(0))
    Path(spec["out"] + ".json").write_text(json.dumps(result))


def _clean_env() -> dict[str, str]:
    """The environment without OpenMP/BLAS tuning variables, so no system gets settings another lacks."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "KMP_"))}


def _cache_file(*parts: str | bytes) -> Path:
    """Where a system's embeddings of a file list are kept between runs: keyed by the system's
    weights (or code) and the exact file list, so a rerun embeds only what changed. Speed is
    always measured in the run itself."""
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return CACHE / f"{h.hexdigest()[:24]}.npz"


def canonical(files: list[str]) -> list[str]:
    """Run-independent names of benchmark files: relative to the data folder, ``seed/tes-NNN`` for
    the seed protocol's rows (the names scripts/embed_lists.py gives them, so a cache serves both)."""
    out = []
    for f in files:
        p = Path(f)
        out.append(f"seed/{p.stem}" if p.parent.name == "seed" else str(p.relative_to(DATA)) if p.is_relative_to(DATA)
                   else str(p))
    return out


def _save_cache(path: Path, files: list[str], emb: dict, emb2: dict | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, files=np.array(canonical(files)), embeddings=np.stack([emb[f] for f in files]),
             second=np.stack([emb2[f] for f in files]) if emb2 else np.zeros(0))
    tmp.replace(path)


def _load_cache(path: Path, files: list[str]) -> tuple[dict, dict | None] | None:
    if not path.is_file():
        return None
    z = np.load(path)
    if [str(f) for f in z["files"]] != canonical(files):
        return None
    emb = dict(zip(files, z["embeddings"], strict=True))
    return emb, (dict(zip(files, z["second"], strict=True)) if z["second"].size else None)


def _worker_job(model: str, files: list[str], speed: dict, tmp: Path, engine: str) -> tuple[dict, str]:
    """Run one worker process of ours: embed ``files``, time the ``speed`` clips."""
    tag = Path(model).name + "-" + engine
    job = tmp / f"job-{tag}.json"
    out = str(tmp / f"emb-{tag}.npz")
    job.write_text(json.dumps({"model": model, "files": files, "speed": speed, "out": out, "engine": engine}))
    subprocess.run([sys.executable, __file__, "worker", "--job", str(job)], check=True,
                   env={**_clean_env(), **BENCH_ENV})
    return json.loads(Path(out + ".json").read_text()), out


def run_ours(model: str, files: list[str], tmp: Path, engine: str = "torch") -> dict:
    """Embed ``files`` with a model of ours (from the cache where it has them); load time, memory."""
    from speakerverify.embedding import resolve_model_dir

    directory = resolve_model_dir(model)
    cache = _cache_file("ours", engine, (directory / "model.pt").read_bytes(), (directory / "model.yaml").read_bytes(),
                        "\n".join(canonical(files)))
    hit = _load_cache(cache, files)
    # From the cache, the worker still loads the model and embeds the first file, as a peer's does,
    # so that load time and peak memory are measured the same way for every system.
    res, out = _worker_job(model, files[:1] if hit else files, {}, tmp, engine)
    if hit:
        print(f"  embeddings of {len(files)} files from {cache}", file=sys.stderr)
        res["emb"], emb2 = hit
    else:
        got = np.load(out)
        res["emb"] = dict(zip(files, got["embeddings"], strict=True))
        emb2 = dict(zip(files, got["second"], strict=True)) if got["second"].size else None
        _save_cache(cache, files, res["emb"], emb2)
    if emb2:
        res["emb2"] = emb2
    return res


def time_ours(model: str, speed: dict, tmp: Path, engine: str = "torch") -> dict[str, float]:
    """RTF of a model of ours on each length of speed clips, in a fresh process."""
    return _worker_job(model, [], speed, tmp, engine)[0]["rtf"]


#: Runs the peers' runner (argv[2:]) and reports its process's peak memory with our
#: speakerverify.process_memory, loaded by path (argv[1]): the peers' interpreter lacks our package.
PEER_WRAPPER = """
import json, runpy, sys
memory = runpy.run_path(sys.argv[1])
sys.argv = sys.argv[2:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    print(json.dumps({"maxrss_mb": memory["peak_rss_mb"]()}), file=sys.stderr)
"""


def _run_peer_python(python: Path, code: str, args: list[str], what: str) -> subprocess.CompletedProcess:
    """``code`` run by the peers' interpreter with ``args``, under the bench's thread settings."""
    proc = subprocess.run([str(python), "-c", code, *args], capture_output=True, text=True,
                          env={**_clean_env(), **BENCH_ENV})
    if proc.returncode:
        raise RuntimeError(f"{what} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return proc


def _peer_embed(python: Path, peers_py: Path, model: str, listing: list[str], tag: str, tmp: Path
                ) -> tuple[dict, dict]:
    """One run of the peers' own runner on ``listing``: its summary (rtf, load_s, maxrss_mb), embeddings."""
    lst = tmp / f"{model}-{tag}.txt"
    lst.write_text("".join(f + "\n" for f in listing))
    out = tmp / f"{model}-{tag}.npz"
    args = [str(peers_py), "embed", "--model", model, "--root", "/", "--list", str(lst), "--out", str(out),
            "--threads", str(THREADS)]
    proc = _run_peer_python(python, PEER_WRAPPER, [process_memory.__file__, *args], f"peer {model}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary.update(json.loads(proc.stderr.strip().splitlines()[-1]))
    got = np.load(out)
    return summary, dict(zip([str(f) for f in got["files"]], got["embeddings"], strict=True))


def run_peer(python: Path, peers_py: Path, model: str, files: list[str], tmp: Path) -> dict:
    """Embed ``files`` with a peer (from the cache where it has them); load time, memory."""
    cache = _cache_file("peer", model, peers_py.read_bytes(), "\n".join(canonical(files)))
    hit = _load_cache(cache, files)
    if hit:
        print(f"  embeddings of {len(files)} files from {cache}", file=sys.stderr)
        emb = hit[0]
        summary, _ = _peer_embed(python, peers_py, model, files[:1], "load", tmp)  # load time and memory
    else:
        summary, emb = _peer_embed(python, peers_py, model, [str(Path(f).resolve()) for f in files], "all", tmp)
        emb = {f: emb[str(Path(f).resolve())] for f in files}
        _save_cache(cache, files, emb, None)
    return {"name": PEERS[model], "load_s": summary["load_s"], "maxrss_mb": summary["maxrss_mb"],
            "params_m": PEER_PARAMS[model], "emb": emb}


#: A peer's speed, measured with its own runner's model classes and ``embed_files`` (imported, its
#: ``main`` not run) under the protocol ours get: per clip length, the first two clips once as a
#: warm-up, then every clip timed, all lengths in one process.
PEER_SPEED = """
import json, runpy, sys, torch
runner = runpy.run_path(sys.argv[1])
torch.set_num_threads(int(sys.argv[3]))
model = runner["MODELS"][sys.argv[2]]()
rtf = {}
for secs, clips in json.loads(sys.argv[4]).items():
    runner["embed_files"](model, "/", clips[:2])
    rtf[secs] = runner["embed_files"](model, "/", clips)[1]
print(json.dumps(rtf))
"""


def time_peer(python: Path, peers_py: Path, model: str, speed: dict) -> dict[str, float]:
    """A peer's RTF on each length of speed clips (see PEER_SPEED), in a fresh process."""
    proc = _run_peer_python(python, PEER_SPEED, [str(peers_py), model, str(THREADS), json.dumps(speed)],
                            f"peer {model} speed run")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def trial_scores(system: dict, trials, root: Path, score_fn) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of a trial list from a system's embeddings (keyed by absolute path)."""
    files = trial_files(trials)
    emb = {f: system["emb"][str(root / f)] for f in files}
    emb2 = {f: system.get("emb2", system["emb"])[str(root / f)] for f in files}
    return score_trial_embeddings(trials, emb, score_fn, emb2)


def durations_of(trials, root: Path) -> np.ndarray:
    """The shorter side of each trial in seconds, from the files' headers."""
    return trial_durations(trials, {f: sf.info(str(root / f)).duration for f in trial_files(trials)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    w = sub.add_parser("worker")
    w.add_argument("--job", required=True)
    ap.add_argument("--shared", default="../shared")
    ap.add_argument("--out", default="docs/benchmarks.md")
    ap.add_argument("--model", action="append", default=[], help="extra model dirs / run dirs of ours")
    ap.add_argument("--peers-venv", default=os.environ.get(
        "SPEAKERVERIFY_PEERS_VENV", os.path.expanduser("~/.cache/speakerverify-peers/venv")))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-onnx", action="store_true", help="skip the onnx engine row (its first export takes minutes)")
    ap.add_argument("--speed-rounds", type=int, default=3, help="speed is the median over this many rounds")
    a = ap.parse_args()
    if a.cmd == "worker":
        return worker(a)
    shared = Path(a.shared).resolve()
    data = shared / "data"
    global DATA
    DATA = data
    out = Path(a.out)
    plots = out.parent / "det"
    plots.mkdir(parents=True, exist_ok=True)
    trials = {name: read_trials(data / "trials" / f"{name}.txt") for name in LISTS}
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        trials[SEED] = seed_trials(shared, tmp)
        files = sorted({str(data / p) for ts in trials.values() for t in ts for p in (t.enroll, t.test)})
        print(f"{len(files)} files over {len(trials)} trial lists", file=sys.stderr)
        durations = {lst: durations_of(ts, data) for lst, ts in trials.items()}
        speed = speed_clips(shared, tmp)
        systems: dict[str, dict] = {}
        from speakerverify.embedding import shipped_models
        from speakerverify.verifier import Verifier

        scorers = {}
        timers: dict[str, Callable[[], dict]] = {}  # system -> a run that times the speed clips
        fast = ["fast"] if "fast" in shipped_models() else []
        for model in ["default", *fast, *a.model]:
            print(f"benchmarking {model}", file=sys.stderr)
            res = run_ours(model, files, tmp)
            timers[res["name"]] = lambda m=model: time_ours(m, speed, tmp)
            v = Verifier(model)
            scorers[res["name"]] = v.score_embeddings
            res["calibration"] = v.backend.calibration
            res["backend"] = v.backend
            systems[res["name"]] = res
        onnx = None
        if not a.no_onnx:  # the onnx engine as users get it: the graph exported once into their cache
            from speakerverify.embedding import cached_onnx, load_model

            print("benchmarking default on the onnx engine", file=sys.stderr)
            cached_onnx(load_model("default"))  # export (first run only) before load time is measured
            onnx = run_ours("default", files[:1], tmp, engine="onnx")
        python = Path(a.peers_venv) / "bin/python"
        if not a.no_peers and python.exists():
            for peer in PEERS:
                print(f"benchmarking peer {peer}", file=sys.stderr)
                res = run_peer(python, shared / "peers/peers.py", peer, files, tmp)
                systems[res["name"]] = res
                scorers[res["name"]] = cosine
                timers[res["name"]] = lambda p=peer: time_peer(python, shared / "peers/peers.py", p, speed)
        elif not a.no_peers:
            print(f"peers skipped: {python} missing (bash {shared}/peers/setup.sh)", file=sys.stderr)
        if onnx:
            timers["onnx"] = lambda: time_ours("default", speed, tmp, engine="onnx")
        rtf = timed_rounds(timers, a.speed_rounds)
        for name, res in systems.items():
            res["rtf"] = rtf[name]
        if onnx:
            onnx["rtf"] = rtf["onnx"]
    rows = []
    det: dict[str, dict] = {name: {} for name in trials}
    for name, sysres in systems.items():
        cal = sysres.get("calibration")
        if cal is None:  # peers: plain logistic calibration fitted on the dev lists pooled
            dev = [trial_scores(sysres, trials[d], data, scorers[name]) for d in DEV_LISTS]
            cal = Calibration.fit(np.concatenate([s for s, _ in dev]), np.concatenate([y for _, y in dev]))
        row = {"system": name}
        for lst in trials:
            s, y = trial_scores(sysres, trials[lst], data, scorers[name])
            det[lst][name] = (s, y)
            row[lst] = {"eer": 100 * metrics.eer(s, y)[0], "dcf": metrics.min_dcf(s, y, 0.01)[0],
                        "cllr": metrics.cllr(cal.llr(s, durations[lst]), y), "min_cllr": metrics.min_cllr(s, y)}
            if "backend" in sysres:
                thr = sysres["backend"].thresholds_for(durations[lst])
                row[lst]["accuracy"] = 100 * metrics.accuracy(s, y, thr)
        row.update({k: sysres[k] for k in ("rtf", "load_s", "maxrss_mb", "params_m")})
        rows.append(row)
    for lst in trials:
        metrics.plot_det(det[lst], plots / f"{lst}.png", title=lst)
    out.write_text(render(rows, onnx, a))
    print(f"wrote {out} and {plots}/", file=sys.stderr)


def timed_rounds(timers: dict[str, Callable[[], dict]], rounds: int) -> dict[str, dict[str, float]]:
    """Median RTF per system and clip length over ``rounds`` rounds; each round times every system
    once, in turn, so a slow spell of this shared machine falls on all systems rather than on one."""
    seen: dict[str, list[dict]] = {name: [] for name in timers}
    for r in range(rounds):
        print(f"speed round {r + 1}/{rounds}", file=sys.stderr)
        for name, timer in timers.items():
            seen[name].append(timer())
    return {name: {secs: float(np.median([run[secs] for run in runs])) for secs in runs[0]}
            for name, runs in seen.items()}


def targets(rows: list[dict], onnx: dict | None = None) -> list[str]:
    """Issue 9's targets for the shipped models, each met or missed by how much (from this run)."""
    ours = rows[0]
    fast = next((r for r in rows if r["system"] == "fast"), None)
    peers = {r["system"]: r for r in rows if r["system"] in PEERS.values()}
    if not peers:
        return ["(peers not run: no target comparison)", ""]
    lines = ["## Targets for the shipped models", "",
             "| target | measured | met? |", "|---|---|---|"]

    def add(target: str, measured: str, ok: bool) -> None:
        lines.append(f"| {target} | {measured} | {'yes' if ok else '**no**'} |")

    for lst in [*TEST_LISTS, SEED]:
        best = min(peers.values(), key=lambda r: r[lst]["eer"])
        e, b = ours[lst]["eer"], best[lst]["eer"]
        add(f"default EER at or below the best peer on {lst}", f"{e:.2f} vs {b:.2f} {best['system']} "
            f"({e - b:+.2f} pt)", e <= b + 1e-9)
    acc = ours[SEED].get("accuracy")
    if acc is not None:
        add("seed protocol pair accuracy at least 95 %", f"{acc:.1f} % (at the default operating point)", acc >= 95)
    cam = peers.get(PEERS["campplus"])
    if cam is not None:
        for secs in ("1", "3", "10"):
            ratio = ours["rtf"][secs] / cam["rtf"][secs]
            add(f"default RTF at or below CAM++'s ({secs} s clips)", f"{ratio:.2f} of CAM++'s", ratio <= 1.0)
            if onnx is not None:
                ratio = onnx["rtf"][secs] / cam["rtf"][secs]
                add(f"default on the onnx engine, RTF at or below CAM++'s ({secs} s clips)",
                    f"{ratio:.2f} of CAM++'s", ratio <= 1.0)
            if fast is not None:
                ratio = fast["rtf"][secs] / cam["rtf"][secs]
                add(f"fast RTF at most 1/5 of CAM++'s ({secs} s clips)", f"{ratio:.3f} of CAM++'s", ratio <= 0.2)
    if fast is None:
        add("fast model shipped (EER within 1.5x of default's on the LibriSpeech lists)", "not shipped", False)
    else:
        for lst in LIBRI_TESTS:
            f, d = fast[lst]["eer"], ours[lst]["eer"]
            add(f"fast EER within 1.5x of default's on {lst}", f"{f:.2f} vs {d:.2f}", f <= 1.5 * d + 1e-9)
    for lst in [*TEST_LISTS, SEED]:
        c, m = ours[lst]["cllr"], ours[lst]["min_cllr"]
        add(f"Cllr within 0.1 of min Cllr on {lst}", f"{c:.3f} vs {m:.3f} ({c - m:+.3f})", c - m <= 0.1)
    if any(line.endswith("**no** |") for line in lines):
        lines += ["", "Where targets are missed, docs/model-card.md says why (limits of the training data and "
                  "of the CPU time the training had, the calibration's duration range)."]
    return [*lines, ""]


def render(rows: list[dict], onnx: dict | None, a: argparse.Namespace) -> str:
    cpu = os.cpu_count()
    lines = ["# Benchmarks", "",
             f"Generated by `make bench` (`python scripts/bench_models.py --shared {a.shared}`) on "
             f"{time.strftime('%Y-%m-%d')}, {cpu} CPU cores, all systems in the same run on the same machine. "
             "EER and minDCF(p=0.01) from cosine scores (AS-norm where a model's back end uses it); Cllr of "
             "calibrated LLRs (ours: the model's own duration-aware calibration; peers: plain logistic "
             "calibration fitted on "
             f"the dev lists pooled ({', '.join(DEV_LISTS)}), which ours are fitted on too), min Cllr after ideal "
             "(PAV) calibration. Dev lists' Cllr is optimistic (fitted on them). Every system runs in its own "
             f"process with {THREADS} threads and the same OpenMP settings ({BENCH_ENV}, no wait-policy "
             f"override). Load average at the end of the run: {os.getloadavg()[0]:.1f} on {cpu} cores (above "
             f"{cpu} the CPU was shared with other work and RTF figures are noisy).", ""]
    lines += targets(rows, onnx)
    for lst in [*LISTS, SEED]:
        lines += [f"## {lst}", ""]
        if lst == SEED:
            lines += ["The seed notebook's protocol: 1800 fixed pairs of 1-s clips of 20 test speakers "
                      "(`tes.pkl`, `test_pairs.txt`), written out as WAV for every system.", ""]
        lines += ["| system | EER % | minDCF 0.01 | Cllr | min Cllr |", "|---|---|---|---|---|"]
        for r in rows:
            m = r[lst]
            lines.append(f"| {r['system']} | {m['eer']:.2f} | {m['dcf']:.3f} | {m['cllr']:.3f} | {m['min_cllr']:.3f} |")
        lines += ["", f"![DET {lst}](det/{lst}.png)", ""]
    lines += [f"## Speed and size ({THREADS} threads)", "",
              "| system | RTF 1 s | RTF 3 s | RTF 10 s | load s | peak RSS MB | params M |",
              "|---|---|---|---|---|---|---|"]
    for r in rows:
        rtf = r["rtf"]
        lines.append(f"| {r['system']} | {rtf['1']:.4f} | {rtf['3']:.4f} | {rtf['10']:.4f} | {r['load_s']:.2f} | "
                     f"{r['maxrss_mb']:.0f} | {r['params_m']:.1f} |")
    if onnx:
        rtf = onnx["rtf"]
        lines.append(f"| {onnx['name']} (onnxruntime) | {rtf['1']:.4f} | {rtf['3']:.4f} | {rtf['10']:.4f} | "
                     f"{onnx['load_s']:.2f} | {onnx['maxrss_mb']:.0f} | {onnx['params_m']:.1f} |")
    lines += ["", "RTF = compute seconds per audio second, front end + network, batch of one: the median of "
              f"{a.speed_rounds} rounds, each of which times every system in turn on the same clips, in a fresh "
              "process, after the same two-clip warm-up (the peers through their own runner's models and "
              "embed_files). "
              "The onnxruntime row is the same default model on `--engine onnx` (its graph exported once into the "
              "user's cache, checked against torch at export); every accuracy figure above is from the torch engine. "
              "Peak RSS is the system's own process at its peak (VmHWM: Python, libraries, model), after embedding "
              "every benchmark file, or only the first where its embeddings came from the cache. "
              "Peer parameter counts are from ../shared/peers/README.md.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
