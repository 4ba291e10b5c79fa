#!/usr/bin/env python
"""Private-cloud overhead: client → relay → envelope → node, against the same model called in-process.

One run starts a transparency log, one node and a relay as real processes on
loopback, and loads the same GGUF in this process with the same thread count.
For each prompt (each runs to exactly ``--tokens`` tokens, greedy), rounds
alternate which side goes first, and only one side generates at a time:

* direct: ``LlamaEngine.complete`` (what the node itself runs per request);
* cloud:  ``CloudClient.chat`` (seal with HPKE → relay → node opens, generates,
  seals → relay → device opens), plus ``CloudClient.stream`` for time to first token.

The figure that matters is the median ratio cloud / direct end-to-end latency.
It also reports the envelope's own CPU cost and throughput with 4 concurrent
requests.

    .venv/bin/python benchmarks/cloud.py --model qwen2.5-0.5b --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether.cloud.client import CloudClient
from tether.cloud.serving import spawn, stop
from tether.cloud.envelope import KeyPair, ReplayGuard, open_request, seal_request
from tether.models import catalog
from tether.models import engine as tether_engine
from tether.models.engine import Message, Sampling

PROMPTS = [
    "Explain in detail how the printing press changed Europe between 1450 and 1600.",
    "Describe, step by step, how to bake a loaf of sourdough bread from scratch.",
    "Write a long story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a modern CPU executes instructions, from fetch to retirement.",
    "Write a detailed essay about the history of the bicycle.",
]
TOKEN = "bench-admin"
console = Console(stderr=True)


def start(args: list[str], root: Path, name: str, env: dict[str, str]) -> tuple[subprocess.Popen, str, str]:
    log = root / f"{name}.out"
    try:
        proc, url = spawn([sys.executable, "-m", "tether", *args], log, env=env, cwd=root, timeout=600)
    except RuntimeError as exc:
        sys.exit(str(exc))
    return proc, url, log.read_text(errors="replace")


def envelope_cost(frames: int, repeats: int = 200) -> dict[str, float]:
    """CPU time of the crypto alone, per request: seal, open, seal+open ``frames`` response frames."""
    keys, body = KeyPair(), {"messages": [{"role": "user", "content": PROMPTS[0]}], "max_tokens": 100}
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        sealed, openers = seal_request(body, [("n", keys.public_bytes)])
        _, sealer = open_request(sealed.for_node("n"), "n", keys, ReplayGuard())
        data = b"".join(sealer.seal({"choices": [{"delta": {"content": " word"}}]}, final=i == frames - 1)
                        for i in range(frames))
        list(openers["n"].feed(data))
        times.append(time.perf_counter() - t)
    return {"median_ms": statistics.median(times) * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=tether_engine.default_threads())
    ap.add_argument("--json", dest="json_out", default=None)
    args = ap.parse_args()

    root = Path(tempfile.mkdtemp(prefix="tether-bench-cloud-"))
    env = {**os.environ, "TETHER_THREADS": str(args.threads), "TETHER_CACHE_DIR": str(catalog.cache_dir())}
    procs = []
    try:
        log, log_url, log_out = start(["log", "serve", "--port", "0", "--db", str(root / "log.sqlite"), "--key",
                                       str(root / "log.key"), "--admin-token", TOKEN], root, "log", env)
        procs.append(log)
        subprocess.run([sys.executable, "-m", "tether", "log", "release", "--log", log_url, "--model", args.model,
                        "--token", TOKEN], check=True, capture_output=True, env=env)
        node, _, _ = start(["node", "serve", "-m", args.model, "--port", "0", "--log", log_url], root, "node", env)
        procs.append(node)
        relay, relay_url, _ = start(["relay", "serve", "--port", "0", "--log", log_url], root, "relay", env)
        procs.append(relay)
        log_key = re.search(r"log key: (\S+)", log_out).group(1)
        client = CloudClient(log_url, relay_url, log_key=log_key, state_path=root / "state.json", k=1,
                             read_timeout=300, deadline=None)
        direct = tether_engine.load(args.model, n_threads=args.threads)
        direct.isolate_requests = True  # as on the node: every prompt evaluated in full, no prefix reuse
        sampling = Sampling.greedy(args.tokens)

        def run_direct(prompt: str) -> tuple[float, int]:
            t = time.perf_counter()
            done = direct.complete([Message("user", prompt)], sampling)
            return time.perf_counter() - t, done.completion_tokens

        def body(prompt: str) -> dict:
            return {"messages": [{"role": "user", "content": prompt}], "max_tokens": args.tokens, "temperature": 0}

        def run_cloud(prompt: str) -> tuple[float, int]:
            t = time.perf_counter()
            out = client.chat(body(prompt))
            return time.perf_counter() - t, out["usage"]["completion_tokens"]

        def ttft_cloud(prompt: str) -> float:
            t = time.perf_counter()
            for chunk in client.stream(body(prompt)):
                if chunk.get("choices") and chunk["choices"][0]["delta"].get("content"):
                    return time.perf_counter() - t
            return float("nan")

        def ttft_direct(prompt: str) -> float:
            t = time.perf_counter()
            for delta in direct.stream([Message("user", prompt)], sampling):
                if delta.text:
                    return time.perf_counter() - t
            return float("nan")

        run_direct(PROMPTS[0]), run_cloud(PROMPTS[0])  # warm-up both
        rows = []
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as bar:
            task = bar.add_task("latency", total=args.rounds * len(PROMPTS))
            for r in range(args.rounds):
                for i, prompt in enumerate(PROMPTS):
                    order = [("direct", run_direct), ("cloud", run_cloud)]
                    if (r + i) % 2:
                        order.reverse()
                    res = {name: fn(prompt) for name, fn in order}
                    tt = {"direct": ttft_direct(prompt), "cloud": ttft_cloud(prompt)}
                    rows.append({"prompt": i, "round": r, "direct_s": res["direct"][0], "cloud_s": res["cloud"][0],
                                 "direct_tokens": res["direct"][1], "cloud_tokens": res["cloud"][1],
                                 "direct_ttft_s": tt["direct"], "cloud_ttft_s": tt["cloud"]})
                    bar.advance(task)

        # Throughput: 8 requests, 4 at a time through the cloud, against 8 in a row in-process.
        batch = [PROMPTS[i % len(PROMPTS)] for i in range(8)]
        t = time.perf_counter()
        direct_tokens = sum(run_direct(p)[1] for p in batch)
        direct_tps = direct_tokens / (time.perf_counter() - t)
        t = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            cloud_tokens = sum(n for _, n in pool.map(run_cloud, batch))
        cloud_tps = cloud_tokens / (time.perf_counter() - t)
        crypto = envelope_cost(args.tokens)
    finally:
        for p in procs:
            stop(p)

    ratios = [row["cloud_s"] / row["direct_s"] for row in rows]
    summary = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "model": args.model, "tokens": args.tokens, "threads": args.threads, "rounds": args.rounds,
        "direct_median_s": statistics.median(r["direct_s"] for r in rows),
        "cloud_median_s": statistics.median(r["cloud_s"] for r in rows),
        "ratio_median": statistics.median(ratios),
        "overhead_ms_median": statistics.median(r["cloud_s"] - r["direct_s"] for r in rows) * 1000,
        "direct_ttft_median_s": statistics.median(r["direct_ttft_s"] for r in rows),
        "cloud_ttft_median_s": statistics.median(r["cloud_ttft_s"] for r in rows),
        "tokens_all_equal": all(r["direct_tokens"] == r["cloud_tokens"] == args.tokens for r in rows),
        "throughput_direct_tok_s": direct_tps, "throughput_cloud_tok_s": cloud_tps,
        "envelope_cpu_ms_per_request": crypto["median_ms"],
    }
    table = Table(title=f"private cloud vs in-process, {args.model}, {args.tokens}-token answers")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    Console().print(table)
    print(f"cloud/direct end-to-end latency ratio: {summary['ratio_median']:.3f} "
          f"(overhead {100 * (summary['ratio_median'] - 1):+.1f}%, target <= +5%)")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
