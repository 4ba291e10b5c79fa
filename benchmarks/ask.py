"""Answers from the user's files: is what ``tether ask`` says right? Measured on real personal data.

    .venv/bin/python benchmarks/ask.py                 # prints the markdown table for docs/benchmarks.md
    .venv/bin/python benchmarks/ask.py --limit 10 --show-wrong

Data: the agentdojo workspace suite in ``inspect-evals`` (inbox, calendar, cloud drive),
written out as files exactly as ``benchmarks/search.py`` does and indexed with ``Index.add``,
plus the demo's own sample files (``tether.data/personal``) in an index of their own.
Questions: ``benchmarks/data/ask_questions.jsonl``, each with the item ids that answer it and
the facts a right answer holds (groups of alternatives: "09:15" or "9:15 am"; every group must
be matched, case-insensitively).

Each question is searched as ``tether ask`` searches it (hybrid, top 4) and answered on the
device (``qwen2.5-0.5b``, no cloud configured; ``--model qwen2.5-1.5b`` for the private cloud's
model) through ``tether.search.ask.ask``. The runs,
in one process on the same hits:

- *as shipped*: ``ask`` on the top 4 hits, of which it keeps those ``focused`` keeps (within
  ``FOCUS`` of the best hit's cosine with the question and, after the first, sharing a content
  word with it);
- *top 4 unfocused*: all four (``focus=None``; the design before 2026-12-05);
- *top 1*: the best hit alone (what the excerpts cost when retrieval is right);
- *oracle*: the relevant items' chunks alone, unfocused (the ceiling of the answer model);
- *focus=0.03* (any number): the top 4 hits with that margin instead of ``FOCUS`` (and the
  shared-word rule).

Reported: right answers, "could not find" answers, whether an answering item was among the
excerpts, and median seconds per answer.

``--cascade``: where the answer is made, with ``qwen2.5-1.5b`` as the private cloud (a local
tier, reached through the router and the privacy guard as a real node is: the excerpts leave
pseudonymized). The runs, in one process on the same hits, all focused as shipped:

- *device*: the 0.5B alone;
- *cascade, learned*: the device first, escalated when the learned escalation model doubts
  the answer (``cascade_escalate_fraction``, 35%; what ``ask`` did before its check);
- *cascade, check (as shipped)*: escalated when ``tether.search.answer_check`` finds the
  answer lacks what was asked;
- *cloud*: the 1.5B for every question.

Reported as well: the share of answers made off the device.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

from rich.progress import track

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import item_of, write_files  # noqa: E402  (the same files the search benchmark indexes)

from tether.routing.config import RouterConfig  # noqa: E402
from tether.routing.router import RouteRequest, Router  # noqa: E402
from tether.routing.state import DeviceState  # noqa: E402
from tether.routing.tiers import DeviceTier  # noqa: E402
from tether.search import Index  # noqa: E402
from tether.search.ask import FOCUS, ask  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent / "data" / "ask_questions.jsonl"
MODEL = "qwen2.5-0.5b"
K = 4  # excerpts per answer, as tether ask and tether chat use
_NOT_FOUND = re.compile(r"could(?: not|n't) find|no (?:information|mention|excerpt)|not (?:mentioned|found|provided)|"
                        r"do(?:es)? not (?:contain|mention|say|include)", re.IGNORECASE)


def _norm(text: str) -> str:
    return " ".join(text.replace("\u2019", "'").replace("\u202f", " ").split()).lower()


def right(answer: str, groups: list[list[str]]) -> bool:
    """Every group of alternatives has one in the answer."""
    said = _norm(answer)
    return all(any(_norm(alt) in said for alt in group) for group in groups)


def sample_index(tmp: Path) -> Index:
    idx = Index.open(tmp / "sample.sqlite")
    with resources.as_file(resources.files("tether.data").joinpath("personal")) as folder:
        idx.add([folder])
    return idx


def agentdojo_index(tmp: Path) -> Index:
    root = tmp / "agentdojo"
    root.mkdir()
    write_files(root)
    idx = Index.open(tmp / "agentdojo.sqlite")
    idx.add([root])
    return idx


def oracle_hits(idx: Index, question: str, relevant: list[str]) -> list:
    """The chunks of the relevant items, best first (ranked among themselves)."""
    hits = [h for h in idx.search(question, 100) if item_of(h.path) in relevant]
    return hits[:K]


def record(row: dict, a, seconds: float) -> dict:  # type: ignore[no-untyped-def]
    """One answer as the report and ``--json`` keep it."""
    given = {item_of(h.path) for h in a.sources}
    return {"question": row["question"], "answer": a.answer, "right": right(a.answer, row["answer"]),
            "not_found": bool(_NOT_FOUND.search(a.answer)), "retrieved": bool(given & set(row["relevant"])),
            "seconds": seconds, "excerpts": len(a.sources), "expected": row["answer"], "sources": sorted(given)}


CLOUD = "qwen2.5-1.5b"
CASCADE = ["device", "cascade, learned", "cascade, check (as shipped)", "cloud"]


class LearnedOnly(Router):
    """The router as it was for ``ask`` before its check: the learned escalation model decides."""

    def respond(self, req: RouteRequest, decision=None):  # type: ignore[no-untyped-def]
        return super().respond(replace(req, check=None), decision)


def run_cascade(rows: list[dict], indexes: dict[str, Index], device: str) -> dict[str, list[dict]]:
    tiers = dict(device=DeviceTier(device), private_cloud=DeviceTier(CLOUD), state=DeviceState())
    config = RouterConfig(cascade=["ask"])
    routers = {"cascade, learned": LearnedOnly(config, **tiers), "cascade, check (as shipped)": Router(config, **tiers)}
    shipped = routers["cascade, check (as shipped)"]
    ask("warm-up?", [], router=shipped, tier="private_cloud", max_tokens=4)
    out: dict[str, list[dict]] = {v: [] for v in CASCADE}
    for i, row in enumerate(track(rows, description="questions")):
        top = indexes[row.get("corpus", "agentdojo")].search(row["question"], K)
        # Each run goes first as often as the others: the one after the device's finds the same
        # prompt already in llama.cpp's cache.
        for v in CASCADE[i % len(CASCADE):] + CASCADE[:i % len(CASCADE)]:
            tier = {"device": "device", "cloud": "private_cloud"}.get(v, "auto")
            t = time.perf_counter()
            a = ask(row["question"], top, router=routers.get(v, shipped), tier=tier)
            out[v].append(record(row, a, time.perf_counter() - t) | {"off_device": a.tier != "device",
                                                                      "route": a.route, "notes": a.notes})
    return out


def run(rows: list[dict], indexes: dict[str, Index], router: Router, variants: list[str]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {v: [] for v in variants}
    for row in track(rows, description="questions"):
        idx = indexes[row.get("corpus", "agentdojo")]
        top = idx.search(row["question"], K)
        for v in variants:
            focus = FOCUS if v == "as shipped" else float(v[6:]) if v.startswith("focus=") else None
            hits = {"top 1": top[:1], "oracle": oracle_hits(idx, row["question"], row["relevant"])}.get(v, top)
            t = time.perf_counter()
            a = ask(row["question"], hits, router=router, tier="device", focus=focus)
            out[v].append(record(row, a, time.perf_counter() - t))
    return out


def render(results: dict[str, list[dict]], n: int, when: str, model: str) -> str:
    lines = [f"{n} questions, {model}, {when}, {platform.machine()} "
             f"({platform.processor() or 'cpu'}), python {platform.python_version()}", "",
             "| run | right | said it could not find | an answering item among them | excerpts given (mean) "
             "| made off the device | median s | mean s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v, rs in results.items():
        ok = sum(r["right"] for r in rs)
        nf = sum(r["not_found"] for r in rs)
        got = sum(r["retrieved"] for r in rs)
        off = sum(r.get("off_device", False) for r in rs)
        lines.append(f"| {v} | {ok}/{n} ({ok / n:.1%}) | {nf} | {got}/{n} | "
                     f"{statistics.mean(r['excerpts'] for r in rs):.2f} | {off}/{n} ({off / n:.0%}) | "
                     f"{statistics.median(r['seconds'] for r in rs):.2f} | "
                     f"{statistics.mean(r['seconds'] for r in rs):.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--questions", type=Path, default=QUESTIONS)
    ap.add_argument("--limit", type=int, default=0, help="the first N questions only")
    ap.add_argument("--variants", default="as shipped,top 4 unfocused,top 1,oracle")
    ap.add_argument("--model", default=MODEL, help="the answering model (qwen2.5-1.5b: what a private cloud adds)")
    ap.add_argument("--show-wrong", action="store_true", help="print each wrong answer of the first variant")
    ap.add_argument("--json", type=Path, default=None, help="write every answer here")
    ap.add_argument("--cascade", action="store_true",
                    help=f"device, cascade (learned / check) and cloud ({CLOUD}) instead of the excerpt variants")
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.questions.read_text().splitlines() if line.strip()]
    rows = rows[: args.limit or None]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    router = Router(RouterConfig(cascade=[]), device=DeviceTier(args.model))
    with tempfile.TemporaryDirectory() as tmp:
        indexes = {"agentdojo": agentdojo_index(Path(tmp)), "sample": sample_index(Path(tmp))}
        for idx in indexes.values():
            idx.search("warm-up", 1)  # the embedder loads outside the timings
        ask("warm-up?", [], router=router, tier="device", max_tokens=4)  # and the model
        if args.cascade:
            variants = CASCADE
            results = run_cascade(rows, indexes, args.model)
        else:
            results = run(rows, indexes, router, variants)
        for idx in indexes.values():
            idx.close()
    if args.show_wrong:
        for r in results[variants[0]]:
            if not r["right"]:
                print(f"✗ {r['question']}\n    said: {r['answer']!r}\n    wanted: {r['expected']}  "
                      f"(excerpts: {', '.join(r['sources'])})", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(render(results, len(rows), when, args.model))


if __name__ == "__main__":
    main()
