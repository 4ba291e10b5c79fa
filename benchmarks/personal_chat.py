"""Which chat turns the assistant answers from the user's files, measured on real personal data.

    .venv/bin/python benchmarks/personal_chat.py     # prints the markdown table for docs/benchmarks.md

Data: the agentdojo workspace suite in ``inspect-evals`` (inbox, calendar, cloud drive),
written out as files exactly as ``benchmarks/search.py`` does and indexed with ``Index.add``.
Questions: ``benchmarks/data/chat_questions.jsonl``, 32 about the user's own things (with the
item ids that answer them) and 30 general ones, half of those in the first person ("How do I
make pancakes?"), written before the first run; the gate's thresholds were then set on it.
``--questions benchmarks/data/chat_questions_fresh.jsonl``: 32 + 30 more, written after that
and run once, unseen, to measure the gate blind.

``tether.search.ask.personal_hits`` (the gate) is compared in the same run with the two plain
designs: *never* (chat without the index, as before) and *always* (the top excerpts added to
every turn, naive retrieval-augmented chat). For each: how many personal questions get
excerpts (recall), how many general ones are spared them (a general answer bent by unrelated
files), and, for personal questions, whether an answering item is among the 4 excerpts.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.progress import track

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import write_files  # noqa: E402  (the same files the search benchmark indexes)

from tether.search import Index  # noqa: E402
from tether.search.ask import personal_hits  # noqa: E402

QUESTIONS = Path(__file__).resolve().parent / "data" / "chat_questions.jsonl"
K = 4  # excerpts per answer, as tether ask and tether chat use


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=Path, default=QUESTIONS,
                        help="a JSONL set (default: the tuning set; data/chat_questions_fresh.jsonl is held out)")
    rows = [json.loads(line) for line in parser.parse_args().questions.read_text().splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        root.mkdir()
        items = write_files(root)
        idx = Index.open(Path(tmp) / "index.sqlite")
        idx.add([root])
        idx.search("warm-up", 1)  # load the embedder outside the timings
        results = []
        for row in track(rows, description="questions"):
            t = time.perf_counter()
            gated = personal_hits(idx, row["question"], K)
            gate_ms = 1000 * (time.perf_counter() - t)
            top = idx.search(row["question"], K)  # what "always" would add
            results.append({**row, "gate": bool(gated), "gate_ms": gate_ms,
                            "gate_items": [Path(h.path).stem for h in gated],
                            "top_items": [Path(h.path).stem for h in top]})
        idx.close()
    print(render(results, items))


def _designs(results: list[dict]) -> dict[str, dict]:
    personal = [r for r in results if r["personal"]]
    general = [r for r in results if not r["personal"]]
    found = lambda r, items: bool(set(r["relevant"]) & set(items))  # noqa: E731
    out = {}
    for name, chosen, items in (("never (plain chat)", lambda r: False, lambda r: []),
                                ("always (excerpts on every turn)", lambda r: True, lambda r: r["top_items"]),
                                ("personal_hits (ours)", lambda r: r["gate"], lambda r: r["gate_items"])):
        tp = sum(chosen(r) for r in personal)
        fp = sum(chosen(r) for r in general)
        out[name] = {"personal_with_excerpts": tp, "personal": len(personal), "general_spared": len(general) - fp,
                     "general": len(general),
                     "answer_in_excerpts": sum(chosen(r) and found(r, items(r)) for r in personal),
                     "accuracy": (tp + len(general) - fp) / len(results)}
    return out


def render(results: list[dict], items: int) -> str:
    designs = _designs(results)
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
             f"{len(results)} questions over {items} agentdojo items, {K} excerpts per answer.", "",
             "| design | personal questions given excerpts | answering item among them | general questions "
             "left plain | turns routed right |", "|---|---|---|---|---|"]
    for name, d in designs.items():
        lines.append(f"| {name} | {d['personal_with_excerpts']}/{d['personal']} | {d['answer_in_excerpts']}/{d['personal']} "
                     f"| {d['general_spared']}/{d['general']} | {d['accuracy']:.1%} |")
    ours = designs["personal_hits (ours)"]
    always = designs["always (excerpts on every turn)"]
    lines += ["", f"Ours against always: {ours['general_spared']} vs {always['general_spared']} general turns kept "
              f"plain, {ours['answer_in_excerpts']} vs {always['answer_in_excerpts']} personal ones with their answer "
              f"at hand. Gate time, median: {statistics.median(r['gate_ms'] for r in results):.1f} ms "
              f"(a general turn: {statistics.median(r['gate_ms'] for r in results if not r['gate']):.1f} ms; "
              f"a personal one, with the hybrid search: {statistics.median(r['gate_ms'] for r in results if r['gate']):.1f} ms)."]
    missed = [r["question"] for r in results if r["personal"] and not r["gate"]]
    wrong = [r["question"] for r in results if not r["personal"] and r["gate"]]
    lost = [r["question"] for r in results if r["personal"] and r["gate"] and not set(r["relevant"]) & set(r["gate_items"])]
    lines += ["", f"Personal, answered without the files: {missed or 'none'}",
              f"General, given excerpts: {wrong or 'none'}",
              f"Personal, given excerpts without the answering item: {lost or 'none'}"]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
