"""Soak test of the REST service on localhost: a few thousand mixed requests, errors, p50/p99 and
the server's memory growth. Writes docs/bench-soak.md.

Starts ``speakerverify serve`` on 127.0.0.1 at a free port with a temporary store (the server of
``scripts/loadtest.py``), enrolls a few TEST-split speakers of libri-train-clean, then sends
``--requests`` requests from ``--clients`` concurrent async clients, drawn at random (seeded) from:
verify (two real clips), identify, embed, enroll-then-remove (admin), a wrong key (sent as from
one other client address, through ``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1, so the
failed-authentication limit lets 20 a minute through and answers the rest 429) and bad audio (truncated, garbage, a
forged sample rate). It stops after ``--requests`` or ``--max-seconds``. An error is an answer
that is not the expected one for its kind (a 5xx, a dropped connection, a timeout, a non-JSON
body, a 4xx on a good request). The server's resident memory is read from /proc before the soak
(after warm-up) and after it.

    .venv/bin/python scripts/soak.py [--requests 3000] [--clients 24] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import struct
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadtest import REPO, pick_clips, start_server  # noqa: E402

from speakerverify.process_memory import status_kib  # noqa: E402
from speakerverify.store import SpeakerStore  # noqa: E402
from speakerverify.store.keys import create_key  # noqa: E402

#: Request kinds, their share of the mix, and the statuses that count as right.
MIX = {"verify": (15, {200}), "identify": (20, {200}), "embed": (15, {200}), "enroll+remove": (10, {201, 200}),
       "wrong key": (20, {401, 429}), "bad audio": (20, {422})}
OTHER_CLIENT = "203.0.113.7"  # a documentation address: the wrong keys' sender


def bad_audio(clip: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return clip[: rng.randrange(1, 200)]
    if kind == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(50, 3000)))
    # a WAV whose header claims 1 Hz: refused from the header (issue 10, item 1)
    samples = bytes(rng.randrange(256) for _ in range(4000))
    fmt = struct.pack("<HHIIHH", 1, 1, 1, 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(samples)) + samples)


async def soak(url: str, admin: str, clips: dict[str, list[Path]], args: argparse.Namespace,
               pid: int) -> dict:
    auth = {"Authorization": f"Bearer {admin}"}
    data = {s: [(p.name, p.read_bytes()) for p in c] for s, c in clips.items()}
    speakers = list(data)
    queries = [data[s][-1] for s in speakers]
    limits = httpx.Limits(max_connections=args.clients + 4, max_keepalive_connections=args.clients + 4)
    rng = random.Random(args.seed)
    kinds = rng.choices(list(MIX), weights=[w for w, _ in MIX.values()], k=args.requests)
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter] = defaultdict(Counter)
    errors: Counter = Counter()
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=args.timeout, limits=limits) as client:
        for s in speakers:
            (await client.post("/v1/speakers", data={"name": s}, files=[("files", f) for f in data[s][:2]])
             ).raise_for_status()
        for q in queries:  # warm-up
            (await client.post("/v1/identify", files={"file": q})).raise_for_status()
        before = status_kib(pid)
        t_end = time.perf_counter() + args.max_seconds
        next_i = 0

        async def one(i: int, kind: str) -> list[httpx.Response]:
            q = queries[i % len(queries)]
            if kind == "verify":
                a = data[speakers[i % len(speakers)]][0]
                return [await client.post("/v1/verify", files={"a": a, "b": q})]
            if kind == "identify":
                return [await client.post("/v1/identify", files={"file": q}, data={"top": "3"})]
            if kind == "embed":
                return [await client.post("/v1/embed", files={"file": q})]
            if kind == "enroll+remove":
                name = f"soak-{i}"
                r1 = await client.post("/v1/speakers", data={"name": name}, files=[("files", q)])
                return [r1, await client.delete(f"/v1/speakers/{name}")]
            if kind == "wrong key":
                return [await client.get("/v1/speakers", headers={"Authorization": f"Bearer svk_wrong{i}",
                                                                  "X-Forwarded-For": OTHER_CLIENT})]
            return [await client.post("/v1/embed", files={"file": ("bad.wav", bad_audio(q[1], random.Random(i)))})]

        async def worker() -> None:
            nonlocal next_i
            while next_i < len(kinds) and time.perf_counter() < t_end:
                i, next_i = next_i, next_i + 1
                kind = kinds[i]
                t = time.perf_counter()
                try:
                    answers = await one(i, kind)
                except httpx.HTTPError as exc:
                    errors[f"{kind}: {type(exc).__name__}"] += 1
                    continue
                latencies[kind].append(time.perf_counter() - t)
                for r in answers:
                    statuses[kind][r.status_code] += 1
                    try:
                        body = r.json()
                        json_ok = isinstance(body, dict) and (r.status_code < 400 or set(body) == {"error"})
                    except ValueError:
                        json_ok = False
                    if r.status_code not in MIX[kind][1] or not json_ok:
                        errors[f"{kind}: {r.status_code}{'' if json_ok else ' (not JSON)'}"] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(args.clients)))
        wall = time.perf_counter() - t0
        after = status_kib(pid)
        health = (await client.get("/healthz")).status_code
    return {"latencies": latencies, "statuses": statuses, "errors": errors, "wall": wall, "sent": next_i,
            "before": before, "after": after, "health": health}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--clients", type=int, default=24)
    ap.add_argument("--max-seconds", type=float, default=900.0)
    ap.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    ap.add_argument("--workers", type=int, default=2, help="server inference threads")
    ap.add_argument("--threads", type=int, default=None, help="server torch threads")
    ap.add_argument("--speakers", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "bench-soak.md")
    args = ap.parse_args()

    clips = pick_clips(args.data, args.speakers)
    # The per-key limit is off (one admin key sends everything); the failed-authentication limit
    # and the access log stay as `serve` sets them by default (the log goes to the server's log file).
    extra = ("--rate-limit", "0")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "soak.db"
        with SpeakerStore(db) as store:
            key = create_key(store, "soak", admin=True)
        log = Path(tmp) / "server.log"
        with start_server(db, args, log, extra=extra) as server:
            model = httpx.get(f"{server.url}/healthz").json()["model"]
            load_before = os.getloadavg()
            res = asyncio.run(soak(server.url, key, clips, args, server.pid))
            load_after = os.getloadavg()
            log_lines = sum(1 for line in log.read_text().splitlines() if line.startswith("{"))

    threads = args.threads or max(1, (os.cpu_count() or 1) // args.workers)
    all_ms = np.concatenate([np.array(v) * 1000 for v in res["latencies"].values()])
    n_answers = sum(sum(c.values()) for c in res["statuses"].values())
    growth = (res["after"]["VmRSS"] - res["before"]["VmRSS"]) / 1024
    lines = [
        "# REST service soak test",
        "",
        f"`scripts/soak.py --requests {args.requests} --clients {args.clients} --workers {args.workers}` "
        f"(seed {args.seed}): `speakerverify serve` on 127.0.0.1, model {model}, {args.workers} inference worker "
        f"thread(s) x {threads} torch thread(s), per-key rate limit off (`--rate-limit 0`: one admin key sends "
        f"everything), failed-authentication limit and JSON access log as `serve` sets them by default. "
        f"{len(clips)} enrolled TEST-split speakers of libri-train-clean (2 clips each); uploads are real ~3.5-s "
        f"FLAC clips. Each request is drawn at random from the mix below; `enroll+remove` is two HTTP requests "
        f"(enroll a new name, remove it). Wrong keys come as from one other address (`X-Forwarded-For`), so the "
        f"failed-authentication limit lets 20 through per 60-s window and answers the rest 429, while the "
        f"other requests go on. "
        f"Latency is per request kind, as the client saw it.",
        "",
        f"Machine: {os.cpu_count()} CPU cores visible, **shared with other work** (load average "
        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after); Python {platform.python_version()}. "
        f"{res['sent']} of {args.requests} requests sent in {res['wall']:.0f} s "
        f"({n_answers} HTTP answers); the server's access log has {log_lines} lines.",
        "",
        "| kind | share | requests | statuses | errors | p50 ms | p99 ms |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for kind, (weight, _) in MIX.items():
        ms = np.array(res["latencies"].get(kind, [float("nan")])) * 1000
        st = ", ".join(f"{code}: {n}" for code, n in sorted(res["statuses"][kind].items()))
        errs = sum(n for k, n in res["errors"].items() if k.startswith(kind + ":"))
        lines.append(f"| {kind} | {weight} % | {len(res['latencies'].get(kind, []))} | {st} | {errs} | "
                     f"{np.percentile(ms, 50):.0f} | {np.percentile(ms, 99):.0f} |")
    lines += [f"| **all** | | {len(all_ms)} | | **{sum(res['errors'].values())}** | "
              f"{np.percentile(all_ms, 50):.0f} | {np.percentile(all_ms, 99):.0f} |", ""]
    lines += [
        "| server memory | MB |",
        "|---|---:|",
        f"| resident before the soak (after warm-up) | {res['before']['VmRSS'] / 1024:.0f} |",
        f"| resident after | {res['after']['VmRSS'] / 1024:.0f} |",
        f"| growth | {growth:+.0f} |",
        f"| peak resident (VmHWM) | {res['after']['VmHWM'] / 1024:.0f} |",
        "",
        f"Errors: {dict(res['errors']) or 'none'}. `/healthz` after the soak: {res['health']}.",
        "",
        "One run of this length cannot tell a leak from warm-up (allocator arenas of the worker threads, caches "
        "filling): a longer run, or several, would show whether the growth levels off.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
