"""Load test for ``tether serve``: N non-streamed completions at a fixed concurrency.

Starts the gateway on smollm2-135m, sends the requests with httpx from a
bounded pool of workers, and checks every answer against its own request:
status 200, non-empty content, the request's unique ``user`` echoed in the
``tether`` block, and a unique completion id. Prints p50/p95 latency and
throughput. Exits non-zero if anything failed or went missing.

    python benchmarks/gateway_load.py [--requests 500] [--concurrency 16] [--max-tokens 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from tether.cloud.serving import spawn, stop

def start(tmp: Path, model: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": ""}
    try:
        return spawn([sys.executable, "-m", "tether", "serve", "--port", "0", "--model", model], tmp / "serve.log",
                     env=env, timeout=300)
    except RuntimeError as exc:
        sys.exit(str(exc))


async def run(url: str, n: int, concurrency: int, max_tokens: int) -> tuple[list[float], list[str], float]:
    latencies: list[float] = [0.0] * n
    failures: list[str] = []
    ids: dict[str, int] = {}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(n):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while True:
            try:
                i = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            user = f"load-{i}"
            body = {"model": "auto", "max_tokens": max_tokens, "user": user,
                    "messages": [{"role": "user", "content": f"Request {i}: name a fruit."}]}
            start = time.perf_counter()
            try:
                r = await client.post(url + "/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                failures.append(f"{i}: {type(exc).__name__}: {exc}")
                continue
            latencies[i] = time.perf_counter() - start
            if r.status_code != 200:
                failures.append(f"{i}: HTTP {r.status_code}: {r.text[:200]}")
                continue
            out = r.json()
            if out.get("tether", {}).get("user") != user:
                failures.append(f"{i}: answer belongs to {out.get('tether', {}).get('user')!r}")
            elif not out["choices"][0]["message"]["content"]:
                failures.append(f"{i}: empty content")
            elif out["id"] in ids:
                failures.append(f"{i}: duplicate id (also request {ids[out['id']]})")
            ids[out["id"]] = i

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    return [latencies[i] for i in ids.values()], failures, elapsed


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    pos = (len(s) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=8)
    ap.add_argument("--model", default="smollm2-135m")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="tether-load-") as tmp:
        proc, url = start(Path(tmp), args.model)
        try:
            lat, failures, elapsed = asyncio.run(run(url, args.requests, args.concurrency, args.max_tokens))
        finally:
            stop(proc, timeout=15)
    ok = len(lat)
    print(f"requests={args.requests} concurrency={args.concurrency} max_tokens={args.max_tokens} model={args.model} "
          f"threads={os.environ.get('TETHER_THREADS', 'default')}")
    print(f"ok={ok} failed={len(failures)} lost={args.requests - ok - len(failures)}")
    if lat:
        print(f"latency p50={pct(lat, 50) * 1000:.0f} ms p95={pct(lat, 95) * 1000:.0f} ms "
              f"max={max(lat) * 1000:.0f} ms; throughput={ok / elapsed:.1f} req/s over {elapsed:.1f} s")
    for f in failures[:10]:
        print("FAIL", f)
    assert not failures and ok == args.requests, f"{len(failures)} failed, {args.requests - ok} lost"


if __name__ == "__main__":
    main()
