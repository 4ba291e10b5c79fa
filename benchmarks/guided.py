#!/usr/bin/env python
"""Guided generation: the lazy grammar check against matching the whole vocabulary at every step.

Baseline: llama-cpp-python's sampler chain with the grammar in it (``engine.lazy_grammar =
False``), which matches every vocabulary token against the grammar at every step. Tether's
default (``tether.models.lazy_grammar``) samples first and asks the grammar about that token only.

Workloads are the guided calls the product makes, with their real prompts and schemas:
smart replies (three fields), an emoji plan (nested object, enum, bounded list), a tool
decision (the assistant's ``{"tool", "arguments"}`` step) and a contact extraction (strings
with patterns and an integer). Each call is greedy, evaluates its whole prompt (no cached
prefix: ``isolate_requests``), and runs in both modes back to back, alternating which goes first.
The script prints medians, their ratio, how often the lazy check had to match the whole
vocabulary, and whether both modes wrote the same text (greedy: they must).

    .venv/bin/python benchmarks/guided.py [--model qwen2.5-0.5b] [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

import tether.models.engine as engine_module
from tether import Sampling, Session, tool
from tether.features import prompts
from tether.features.genmoji import _Plan
from tether.features.replies import _ReplySchema
from tether.models.engine import load
from pydantic import BaseModel, Field

MESSAGES = [
    "Hey, are you free for lunch Thursday? I found a new ramen place near the office.",
    "The quarterly report is due Friday. Can you send me your section by Wednesday evening?",
    "Thanks for the birthday flowers! They made my whole week.",
]
EMOJI = ["a cat wearing sunglasses", "a sleepy sloth holding a coffee cup", "a rocket made of pizza"]
CONTACTS = [
    "Hi, I'm Maria Lopez from Acme Corp, you can reach me on +1 415 555 0132, I'm 34.",
    "This is Dr. Kenji Watanabe at Osaka General, phone 06-6123-4567; 52 years in practice? No, 25.",
    "Signed, Olu Adeyemi (Lagos office), tel +234 803 555 0199, age 41",
]
QUESTIONS = ["Do I need an umbrella in Paris today?", "What's the weather in Tokyo?", "Is it windy in Chicago right now?"]


class Contact(BaseModel):
    name: str = Field(max_length=60)
    organisation: str = Field(max_length=60)
    phone: str = Field(pattern=r"^\+?[0-9 ()-]{6,20}$")
    age: int = Field(ge=0, le=120)


@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return f"{city}: 14°C, light rain, wind 20 km/h"


def workloads(model: str) -> list[tuple[str, str, Any]]:
    """(workload, input, call) where call(engine) returns the raw text of one guided answer."""
    out: list[tuple[str, str, Any]] = []
    for m in MESSAGES:
        out.append(("smart replies", m, lambda e, m=m: Session(instructions=prompts.REPLIER, engine=e).respond(
            prompts.SMART_REPLIES.format(message=m), _ReplySchema, sampling=Sampling.greedy(160)).text))
    for d in EMOJI:
        out.append(("emoji plan", d, lambda e, d=d: Session(instructions=prompts.EMOJI_DESIGNER, engine=e).respond(
            prompts.EMOJI.format(description=d), _Plan, sampling=Sampling.greedy(120)).text))
    for q in QUESTIONS:
        out.append(("tool decision", q, lambda e, q=q: json.dumps(
            [c.arguments for c in Session(engine=e, tools=[weather], sampling=Sampling.greedy(1)).respond(
                q, tool_choice="required").tool_calls])))
    for c in CONTACTS:
        out.append(("extraction", c, lambda e, c=c: Session(engine=e).respond(
            f"Extract the contact from: {c}", Contact, sampling=Sampling.greedy(120)).text))
    return out


class Counting(engine_module.LazyGrammarSampler):
    made: list["Counting"] = []

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        Counting.made.append(self)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-0.5b")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ.setdefault("TQDM_DISABLE", "1")
    engine = load(args.model)
    engine.isolate_requests = True
    engine_module.LazyGrammarSampler = Counting  # type: ignore[misc]  # the real class, counted
    jobs = workloads(args.model)
    times: dict[tuple[str, bool], list[float]] = {}
    same, texts = 0, 0
    steps = full = 0
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task(f"guided calls on {args.model}", total=args.rounds * len(jobs) * 2)
        for r in range(args.rounds):
            for i, (name, _, call) in enumerate(jobs):
                got = {}
                for lazy in ((True, False) if (i + r) % 2 == 0 else (False, True)):
                    engine.lazy_grammar = lazy
                    Counting.made.clear()
                    t = time.perf_counter()
                    got[lazy] = call(engine)
                    times.setdefault((name, lazy), []).append(time.perf_counter() - t)
                    if lazy:
                        steps += sum(s.steps for s in Counting.made)
                        full += sum(s.full_matches for s in Counting.made)
                    bar.advance(task)
                texts += 1
                same += got[True] == got[False]
    table = Table(title=f"guided generation on {args.model}: lazy grammar check vs whole vocabulary (median s)")
    for col in ("workload", "lazy", "whole vocabulary", "speed-up"):
        table.add_column(col, justify="left" if col == "workload" else "right")
    rows = {}
    for name in dict.fromkeys(n for n, _, _ in jobs):
        lazy_s, full_s = statistics.median(times[(name, True)]), statistics.median(times[(name, False)])
        rows[name] = {"lazy_s": lazy_s, "full_s": full_s, "ratio": full_s / lazy_s}
        table.add_row(name, f"{lazy_s:.2f}", f"{full_s:.2f}", f"{full_s / lazy_s:.2f}x")
    all_lazy = statistics.median(v for (n, lz), vs in times.items() if lz for v in vs)
    all_full = statistics.median(v for (n, lz), vs in times.items() if not lz for v in vs)
    table.add_row("all calls", f"{all_lazy:.2f}", f"{all_full:.2f}", f"{all_full / all_lazy:.2f}x")
    Console().print(table)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"# {when}, {os.cpu_count()} vCPU {platform.machine()}, python {platform.python_version()}, "
          f"{args.rounds} rounds x {len(jobs)} calls per mode")
    print(f"steps that matched the whole vocabulary: {full} of {steps} ({full / max(steps, 1):.1%}); "
          f"same text in both modes: {same} of {texts}")
    if args.json:
        args.json.write_text(json.dumps({"when": when, "model": args.model, "rows": rows, "all_lazy_s": all_lazy,
                                         "all_full_s": all_full, "steps": steps, "full_matches": full,
                                         "same": same, "texts": texts}, indent=2))
    return 0 if same == texts else 1


if __name__ == "__main__":
    sys.exit(main())
