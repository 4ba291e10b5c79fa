"""Embeddings benchmark: the gateway's ``POST /v1/embeddings`` against the library it wraps.

    .venv/bin/python benchmarks/embeddings.py              # prints the markdown table for docs/benchmarks.md
    .venv/bin/python benchmarks/embeddings.py --repeat 3 --json /tmp/embeddings.json

Baseline: ``tether.search.embed.passages(texts)`` called in this process (the library).
Measured: the same texts sent to a real ``tether serve`` (started here on a free loopback
port, on smollm2-135m; its start-up, model load included, is not timed) with the official
``openai`` client, ``client.embeddings.create(model="multilingual-e5-small", input=[...])``.

Texts: the unique sentences of the agentdojo workspace suite that ``benchmarks/search.py``
indexes (real mail, calendar and drive text), shuffled with a fixed seed; every batch size
embeds the same ``--texts`` of them per repeat, in calls of 1, 32 or 256 texts, so texts/s is
comparable across rows. Query latency: the 60 queries of ``benchmarks/data/search_queries.jsonl``
one at a time, as queries (``embed.query`` against ``input_type: "query"``), which is what a RAG
app pays per question.

The main rows ask for ``encoding_format="float"`` explicitly. The SDK's own default (no
``encoding_format``) asks for base64 and decodes it into lists of floats; that variant is
measured on the largest batch, with the bytes on the wire per vector for both.

Library and gateway alternate within each repeat (which goes first alternates too), so the
machine's noise hits both; the figures are medians over ``--repeat`` repeats and the ratio is
gateway / library. The server's own time per request (model + token counting, from its ledger)
splits the gateway's cost into compute and HTTP + JSON + client.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from search import QUERIES, sentences  # noqa: E402  (the search benchmark's corpus and queries)

from tether.cloud.serving import spawn, stop  # noqa: E402
from tether.gateway.embeddings import EMBEDDING_MODEL  # noqa: E402
from tether.search import embed  # noqa: E402


def start(tmp: Path, model: str) -> tuple[Any, str]:
    env = {**os.environ, "TETHER_LEDGER": str(tmp / "ledger.sqlite"), "TETHER_ROUTER_CONFIG": ""}
    try:
        return spawn([sys.executable, "-m", "tether", "serve", "--port", "0", "--model", model,
                      "--max-body", str(64 * 2**20)], tmp / "serve.log", env=env, timeout=300)
    except RuntimeError as exc:
        sys.exit(str(exc))


def server_seconds(ledger: Path) -> list[float]:
    """The server's own time for each embeddings request, in request order (its ledger rows)."""
    con = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        return [r[0] / 1000 for r in con.execute("SELECT latency_ms FROM entries WHERE feature='embeddings' ORDER BY id")]
    finally:
        con.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256], help="texts per call (default: %(default)s)")
    ap.add_argument("--texts", type=int, default=256, help="texts embedded per repeat and batch size (default: %(default)s)")
    ap.add_argument("--repeat", type=int, default=5, help="timed repeats (default: %(default)s)")
    ap.add_argument("--model", default="smollm2-135m", help="the gateway's device chat model (loaded at start-up, not used)")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write all results as JSON to PATH")
    args = ap.parse_args()

    pool = sentences()
    random.Random(0).shuffle(pool)
    texts = pool[:args.texts]
    if len(texts) < max(args.batches):
        sys.exit(f"only {len(texts)} texts; --texts must be at least the largest batch")
    queries = [json.loads(line)["query"] for line in QUERIES.read_text().splitlines() if line.strip()]
    big = max(args.batches)
    tokens = embed.token_counts(texts)
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} vCPU {platform.machine()}", "embedder": embed.MODEL_NAME,
        "load_avg_before": os.getloadavg()[0], "texts": len(texts), "queries": len(queries), "repeat": args.repeat,
        "chars_per_text": statistics.mean(len(t) for t in texts), "tokens_per_text": statistics.mean(tokens),
    }

    from openai import OpenAI

    with tempfile.TemporaryDirectory(prefix="tether-embeddings-bench-") as tmp:
        t0 = time.perf_counter()
        proc, url = start(Path(tmp), args.model)
        out["serve_start_s"] = time.perf_counter() - t0
        labels: list[str] = []  # one per gateway request, in order, to match the server's ledger rows
        try:
            client = OpenAI(base_url=url + "/v1", api_key="local", max_retries=0, timeout=600)

            def lib(batch: list[str], **_: Any) -> np.ndarray:
                return embed.passages(batch)

            def gw(batch: list[str], *, label: str, fmt: str | None = "float") -> np.ndarray:
                labels.append(label)
                kw = {"encoding_format": fmt} if fmt else {}
                r = client.embeddings.create(model=EMBEDDING_MODEL, input=batch, **kw)
                return np.array([d.embedding for d in r.data], np.float32)

            # warm-up (the server loads the embedder on its first request) and a check that both agree
            ref = embed.passages(texts[:big])
            got = gw(texts[:big], label="warm-up")
            got_default = gw(texts[:big], label="warm-up", fmt=None)
            out["max_abs_diff"] = float(max(np.abs(ref - got).max(), np.abs(ref - got_default).max()))
            assert out["max_abs_diff"] < 1e-4, f"gateway vectors differ from the library's by {out['max_abs_diff']}"
            for q in queries[:5]:
                embed.query(q)
                labels.append("warm-up")
                client.embeddings.create(model=EMBEDDING_MODEL, input=q, encoding_format="float",
                                         extra_body={"input_type": "query"})

            # bytes on the wire per vector (whole response body / vectors) for the largest batch
            sizes = {}
            for fmt in ("float", "base64"):
                labels.append("size")
                raw = client.embeddings.with_raw_response.create(model=EMBEDDING_MODEL, input=texts[:big],
                                                                 encoding_format=fmt)  # type: ignore[arg-type]
                body = raw.http_response.content
                one = json.loads(body)["data"][0]["embedding"]
                sizes[fmt] = {"response_bytes": len(body), "bytes_per_vector": len(body) / big,
                              "embedding_field_bytes": len(json.dumps(one, separators=(",", ":")))}
            out["payload"] = {**sizes, "batch": big}

            runs: list[tuple[str, Callable[..., Any], int, str | None]] = []
            for b in args.batches:
                runs += [(f"library/{b}", lib, b, None), (f"gateway/{b}", gw, b, "float")]
            runs.append((f"gateway-sdk-default/{big}", gw, big, None))
            tput: dict[str, list[float]] = {name: [] for name, *_ in runs}
            lat: dict[str, list[float]] = {"library": [], "gateway": []}
            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            with Progress(*columns, transient=False) as progress:
                task = progress.add_task("embedding", total=args.repeat * (len(runs) + 2))
                for rep in range(args.repeat):
                    order = runs if rep % 2 == 0 else runs[::-1]
                    for name, fn, b, fmt in order:
                        progress.update(task, description=f"repeat {rep + 1}/{args.repeat}: {name}")
                        s = time.perf_counter()
                        for i in range(0, len(texts), b):
                            fn(texts[i:i + b], label=name, fmt=fmt)
                        tput[name].append(len(texts) / (time.perf_counter() - s))
                        progress.advance(task)
                    sides = ("library", "gateway") if rep % 2 == 0 else ("gateway", "library")
                    for side in sides:
                        progress.update(task, description=f"repeat {rep + 1}/{args.repeat}: {side} query latency")
                        for q in queries:
                            s = time.perf_counter()
                            if side == "library":
                                embed.query(q)
                            else:
                                labels.append("query")
                                client.embeddings.create(model=EMBEDDING_MODEL, input=q, encoding_format="float",
                                                         extra_body={"input_type": "query"})
                            lat[side].append(time.perf_counter() - s)
                        progress.advance(task)
            out["load_avg_after"] = os.getloadavg()[0]
        finally:
            stop(proc, timeout=15)
        srv = server_seconds(Path(tmp) / "ledger.sqlite")
        if len(srv) != len(labels):
            print(f"note: {len(srv)} ledger rows for {len(labels)} requests; no server-side split", file=sys.stderr)
            srv_by: dict[str, list[float]] = {}
        else:
            srv_by = {}
            for label, sec in zip(labels, srv):
                srv_by.setdefault(label, []).append(sec)

    per_rep = len(texts)
    rows = []
    for b in args.batches:
        lib_m, gw_m = statistics.median(tput[f"library/{b}"]), statistics.median(tput[f"gateway/{b}"])
        # the server's compute per repeat: its per-request seconds summed over one repeat's requests
        n_req = -(-per_rep // b)
        srv_s = srv_by.get(f"gateway/{b}")
        srv_tput = per_rep / (statistics.median(srv_s) * n_req) if srv_s else None
        rows.append({"batch": b, "encoding": "float", "library_texts_s": lib_m, "gateway_texts_s": gw_m,
                     "ratio": gw_m / lib_m, "server_compute_texts_s": srv_tput,
                     "library_runs": tput[f"library/{b}"], "gateway_runs": tput[f"gateway/{b}"]})
    name = f"gateway-sdk-default/{big}"
    lib_m, gw_m = statistics.median(tput[f"library/{big}"]), statistics.median(tput[name])
    srv_s = srv_by.get(name)
    rows.append({"batch": big, "encoding": "base64 (SDK default, decoded by the SDK)", "library_texts_s": lib_m,
                 "gateway_texts_s": gw_m, "ratio": gw_m / lib_m,
                 "server_compute_texts_s": big / statistics.median(srv_s) if srv_s else None,
                 "library_runs": tput[f"library/{big}"], "gateway_runs": tput[name]})
    out["throughput"] = rows
    q_srv = srv_by.get("query")
    out["query_latency_ms"] = {
        "library_p50": 1000 * statistics.median(lat["library"]), "gateway_p50": 1000 * statistics.median(lat["gateway"]),
        "gateway_p95": 1000 * float(np.percentile(lat["gateway"], 95)),
        "library_p95": 1000 * float(np.percentile(lat["library"], 95)),
        "server_compute_p50": 1000 * statistics.median(q_srv) if q_srv else None, "samples": len(lat["gateway"]),
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2) + "\n")
        print(f"results written to {args.json}", file=sys.stderr)
    print(render(out))


def render(o: dict[str, Any]) -> str:
    lq, p = o["query_latency_ms"], o["payload"]
    lines = [f"Measured {o['date']} on {o['machine']} (load average {o['load_avg_before']:.1f} before, "
             f"{o['load_avg_after']:.1f} after); embedder {o['embedder']}; {o['texts']} agentdojo sentences per repeat "
             f"(mean {o['chars_per_text']:.0f} characters, {o['tokens_per_text']:.1f} tokens); median of {o['repeat']} repeats.",
             "",
             "| texts per call | encoding | library, texts/s (baseline) | gateway + openai client, texts/s | gateway / library | server compute, texts/s |",
             "|---|---|---|---|---|---|"]
    for r in o["throughput"]:
        srv = f"{r['server_compute_texts_s']:.0f}" if r["server_compute_texts_s"] else "–"
        lines.append(f"| {r['batch']} | {r['encoding']} | {r['library_texts_s']:.0f} | {r['gateway_texts_s']:.0f} | "
                     f"**{r['ratio']:.2f}x** | {srv} |")
    srv_q = f"; the server's own compute {lq['server_compute_p50']:.1f} ms" if lq["server_compute_p50"] else ""
    f, b = p["float"], p["base64"]
    lines += ["",
              f"- One query ({o['queries']} search queries x {o['repeat']}, `input_type: \"query\"`): p50 "
              f"**{lq['gateway_p50']:.1f} ms** through the gateway vs {lq['library_p50']:.1f} ms in-process "
              f"(+{lq['gateway_p50'] - lq['library_p50']:.1f} ms, {lq['gateway_p50'] / lq['library_p50']:.2f}x){srv_q}; "
              f"p95 {lq['gateway_p95']:.1f} vs {lq['library_p95']:.1f} ms.",
              f"- Bytes per vector on the wire (response body / vectors, batch of {p['batch']}): "
              f"float {f['bytes_per_vector']:,.0f}, base64 {b['bytes_per_vector']:,.0f} "
              f"({f['bytes_per_vector'] / b['bytes_per_vector']:.1f}x smaller); the embedding field alone "
              f"{f['embedding_field_bytes']:,} vs {b['embedding_field_bytes']:,} bytes.",
              f"- Gateway vectors equal the library's to {o['max_abs_diff']:.1e} (max absolute difference); "
              f"`tether serve` start-up (not timed above) took {o['serve_start_s']:.1f} s."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
