#!/usr/bin/env python3
"""The speaker store on SQLite vs PostgreSQL, and two service replicas over one PostgreSQL:
writes docs/bench-store.md.

    .venv/bin/python scripts/bench_store.py [--speakers 200] [--queries 200] [--requests 120]

1. **Store throughput and latency** (``SpeakerStore`` in this process), once per engine, the same
   operations in the same order: enroll ``--speakers`` new speakers (2 clips of 3 s each, audio
   kept), ``identify`` ``--queries`` clips against the full gallery (the first after the last
   enrollment reloads the gallery), the same from 4 threads at once, ``verify`` against a named
   speaker, and remove every speaker. The network is replaced by a deterministic 192-dimensional
   vector per clip (a seeded random projection of its spectrum), so the figures are the store's
   own cost: the model adds its real-time factor times the clip's length on top
   (docs/benchmarks.md).
2. **Two replicas**: two ``speakerverify serve`` processes on 127.0.0.1 over one PostgreSQL
   database, the shipped default model; three test-split speakers enrolled through the first,
   then ``--requests`` ``/v1/identify`` requests with real clips from ``--clients`` concurrent
   clients spread over both (bounded in requests and seconds).

PostgreSQL runs as a throwaway cluster started here (tests/pg_helpers.py, Unix socket only)
with its crash-safe defaults (fsync on), as SQLite runs with ``synchronous=FULL``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))  # the throwaway PostgreSQL cluster the tests use

from loadtest import pick_clips, run_level  # noqa: E402

from pg_helpers import start_cluster  # noqa: E402
from speakerverify.scoring import Backend, l2_normalize  # noqa: E402
from speakerverify.service.local_server import start_local_server  # noqa: E402
from speakerverify.store import SpeakerStore  # noqa: E402
from speakerverify.store.keys import create_key  # noqa: E402
from speakerverify.verifier import Verifier  # noqa: E402

DIM = 192


class ProjectionVerifier(Verifier):
    """The Verifier's own loading and scoring; the embedding is a fixed random projection of the
    clip's magnitude spectrum (cheap, deterministic, different clips far apart)."""

    def __init__(self) -> None:
        from types import SimpleNamespace

        self.bundle = SimpleNamespace(two_branch=False, min_duration_s=0.5, network=None, name="projection",
                                      ident="projection@1")
        self.backend = Backend({"thresholds": {"eer": 0.5}})
        self.projection = np.random.default_rng(0).standard_normal((4001, DIM)).astype(np.float32)

    def embed_waves(self, waves, second=False, batch_size=1):
        out = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w[:8000], n=8000)).astype(np.float32)
            out.append(l2_normalize(np.log1p(spec) @ self.projection))
        return np.stack(out).astype(np.float32)


def clip(seed: int, seconds: float = 3.0) -> np.ndarray:
    """A 3-s clip of noise shaped by a seeded spectrum (one 'speaker' per seed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    freqs = rng.uniform(100, 3000, 4)
    wave = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in freqs) + 0.05 * rng.standard_normal(t.size)
    return (0.2 * wave / np.abs(wave).max()).astype(np.float32)


def timed(fn, items) -> np.ndarray:
    out = []
    for x in items:
        t0 = time.perf_counter()
        fn(x)
        out.append(time.perf_counter() - t0)
    return np.array(out)


def row(label: str, engine: str, seconds: np.ndarray, wall: float | None = None) -> dict:
    wall = float(seconds.sum()) if wall is None else wall
    ms = seconds * 1000
    return {"op": label, "engine": engine, "n": len(seconds), "rate": len(seconds) / wall,
            "p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def bench_engine(engine: str, location: str, n_speakers: int, n_queries: int) -> list[dict]:
    store = SpeakerStore(location, verifier=ProjectionVerifier(), keep_audio=True)
    names = [f"spk{i:04d}" for i in range(n_speakers)]
    rows = [row("enroll (2 clips, audio kept)", engine,
                timed(lambda i: store.enroll(names[i], [clip(i), clip(i)]), range(n_speakers)))]
    queries = [clip(i % n_speakers) for i in range(n_queries)]
    first = timed(lambda q: store.identify(q), queries[:1])
    rows.append(row(f"first identify after a change (gallery {n_speakers})", engine, first))
    rows.append(row(f"identify (gallery {n_speakers})", engine, timed(lambda q: store.identify(q), queries)))

    def one(q: np.ndarray) -> float:
        t0 = time.perf_counter()
        store.identify(q)
        return time.perf_counter() - t0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        lat = np.array(list(pool.map(one, queries)))
    rows.append(row("identify, 4 threads", engine, lat, time.perf_counter() - t0))
    rows.append(row("verify against a named speaker", engine,
                    timed(lambda i: store.verify(names[i % n_speakers], queries[i]), range(n_queries))))
    rows.append(row("remove (erasure on)", engine, timed(store.remove, names)))
    assert len(store) == 0
    store.close()
    return rows


def bench_replicas(url: str, data: Path, tmp: Path, n_requests: int, n_clients: int,
                   max_seconds: float) -> dict:
    import io

    import soundfile as sf

    with SpeakerStore(url) as store:
        key = create_key(store, "bench", admin=True)
    extra = ("--no-access-log", "--rate-limit", "0")
    clips = pick_clips(data, 3)

    def cut(path: Path) -> bytes:
        wave, rate = sf.read(path, dtype="float32")
        buf = io.BytesIO()
        sf.write(buf, wave[: 3 * rate], rate, format="WAV")
        return buf.getvalue()

    with (start_local_server(url, tmp / "replica0.log", threads=1, extra=extra) as a,
          start_local_server(url, tmp / "replica1.log", threads=1, extra=extra) as b):
        auth = {"Authorization": f"Bearer {key}"}
        for spk, paths in clips.items():
            files = [("files", (f"{spk}-{i}.wav", cut(p), "audio/wav")) for i, p in enumerate(paths[:2])]
            httpx.post(f"{a.url}/v1/speakers", data={"name": spk}, files=files, headers=auth,
                       timeout=120).raise_for_status()
        probes = [cut(paths[2]) for paths in clips.values()]
        model = httpx.get(f"{a.url}/healthz").json()["model"]

        async def drive() -> dict:
            limits = httpx.Limits(max_connections=n_clients + 2)
            async with httpx.AsyncClient(headers=auth, timeout=300, limits=limits) as client:
                async def identify(c: httpx.AsyncClient, i: int) -> httpx.Response:
                    base = (a.url, b.url)[i % 2]
                    return await c.post(f"{base}/v1/identify",
                                        files={"file": ("p.wav", probes[i % len(probes)], "audio/wav")})

                for i in range(2):
                    await identify(client, i)  # warm-up, one per replica
                return await run_level(client, identify, n_clients, n_requests, max_seconds)

        result = asyncio.run(drive())
    result["model"] = model
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--speakers", type=int, default=200)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--requests", type=int, default=120)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--max-seconds", type=float, default=300.0)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench-store.md")
    args = ap.parse_args()

    cluster = start_cluster(durable=True)
    if isinstance(cluster, str):
        print(f"PostgreSQL unavailable ({cluster}): measuring SQLite only")
        cluster = None
    rows: list[dict] = []
    replicas = None
    load_before = os.getloadavg()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rows += bench_engine("SQLite", str(Path(tmp) / "bench.db"), args.speakers, args.queries)
            if cluster is not None:
                rows += bench_engine("PostgreSQL", cluster.new_database(), args.speakers, args.queries)
                replicas = bench_replicas(cluster.new_database(), args.shared / "data", Path(tmp), args.requests,
                                          args.clients, args.max_seconds)
    finally:
        if cluster is not None:
            cluster.stop()
    load_after = os.getloadavg()

    lines = [
        "# Speaker store: SQLite vs PostgreSQL, and two replicas",
        "",
        f"`scripts/bench_store.py --speakers {args.speakers} --queries {args.queries} --requests {args.requests} "
        f"--clients {args.clients}`. Machine: {os.cpu_count()} CPU cores visible, shared with other work (load "
        f"average {load_before[0]:.1f} before, {load_after[0]:.1f} after); Python {platform.python_version()}. "
        "SQLite: one file, WAL, `synchronous=FULL`. PostgreSQL: a local throwaway cluster over a Unix socket "
        "with its crash-safe defaults (fsync on); every change is one transaction on both.",
        "",
        "## Store operations",
        "",
        "In-process `SpeakerStore`; the network is replaced by a fixed random projection (192 dimensions), so "
        "these are the store's own costs (audio checks, FLAC encoding of kept audio, transactions, gallery "
        "loads, search); a real model adds its embedding time (docs/benchmarks.md: RTF times the clip length). "
        "Each enrollment is 2 clips of 3 s.",
        "",
        "| operation | engine | count | per second | p50 ms | p99 ms |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['op']} | {r['engine']} | {r['n']} | {r['rate']:.1f} | {r['p50']:.1f} | {r['p99']:.1f} |")
    lines += ["", "## Two replicas over one PostgreSQL", ""]
    if replicas is None:
        lines.append("Not measured: PostgreSQL is not installed here (make postgres).")
    else:
        lines += [
            f"Two `speakerverify serve` processes (1 inference worker x 1 torch thread each, model "
            f"{replicas['model']}) on 127.0.0.1 over one database; 3 TEST-split libri-train-clean speakers "
            "enrolled through the first; `/v1/identify` with real 3-s clips alternating between the replicas.",
            "",
            "| requests | clients | errors | requests/s | p50 ms | p99 ms |",
            "|---:|---:|---:|---:|---:|---:|",
            f"| {replicas['requests']} | {args.clients} | {replicas['errors']} | {replicas['rps']:.2f} | "
            f"{replicas['p50']:.0f} | {replicas['p99']:.0f} |",
            "",
            "Throughput here is the model's CPU time on a 2-core machine: both replicas share its cores. "
            "What the replicas add is agreement, not speed, on one machine (tests/test_replicas.py).",
        ]
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
