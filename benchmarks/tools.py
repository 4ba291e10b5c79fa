#!/usr/bin/env python
"""Tool-calling benchmark: does the model call the right tool, and only when needed?

A fixed probe set of 24 requests against three tools (weather, add_event,
convert_currency): 12 need exactly one named tool, 12 need none. For each model,
the first step of ``Session.respond(..., tool_choice="auto")`` is scored:

* selection accuracy: the first call names the expected tool, or no call when none is needed;
* false calls: a tool called for a request that needs none (the costly error: an action taken unasked);
* misses: no call, or the wrong tool, when one was needed;
* argument accuracy: for correct calls, the key argument contains the expected value;
* decision latency: the median time of the guided decision step.

In the same run, the baseline is the same model with ``tool_choice="required"``
(it must call something), which shows what the "none" option is worth.

    .venv/bin/python benchmarks/tools.py --json /tmp/tools.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from datetime import date

from rich.progress import Progress

from tether import Sampling, Session, tool

PROBES: list[tuple[str, str | None, str | None]] = [  # request, expected tool, a value its arguments must hold
    ("Do I need an umbrella in Paris today?", "weather", "Paris"),
    ("What's the weather like in Oslo right now?", "weather", "Oslo"),
    ("Is it warm enough in Lisbon for a walk this afternoon?", "weather", "Lisbon"),
    ("Will it snow in Denver today?", "weather", "Denver"),
    ("Put lunch with Sam on 2026-12-03 in my calendar.", "add_event", "2026-12-03"),
    ("Schedule a dentist appointment on 2027-01-15.", "add_event", "2027-01-15"),
    ("Add 'team retro' to my calendar for 2026-12-10.", "add_event", "2026-12-10"),
    ("Book a call with Priya on 2026-11-30 in my calendar.", "add_event", "2026-11-30"),
    ("How much is 250 US dollars in euros?", "convert_currency", "250"),
    ("Convert 80 GBP to USD.", "convert_currency", "80"),
    ("What are 1200 yen in dollars?", "convert_currency", "1200"),
    ("I have 40 euros; how many Swiss francs is that?", "convert_currency", "40"),
    ("Write a haiku about autumn.", None, None),
    ("What is the capital of Italy?", None, None),
    ("What is 12 times 7?", None, None),
    ("Suggest a name for a grey kitten.", None, None),
    ("Rewrite this more politely: send me the file now.", None, None),
    ("Explain what a transparency log is in one sentence.", None, None),
    ("Give me three tips for sleeping better.", None, None),
    ("Translate 'good morning' into Spanish.", None, None),
    ("Who wrote Pride and Prejudice?", None, None),
    ("Summarize: the meeting moved to Thursday and Ana will bring the slides.", None, None),
    ("Tell me a short joke about programmers.", None, None),
    ("What does HTTP stand for?", None, None),
]


@tool
def weather(city: str) -> str:
    """Current weather for a city."""
    return "12°C, cloudy"


@tool
def add_event(title: str, day: str) -> str:
    """Add an event to the user's calendar. day is YYYY-MM-DD."""
    return f"added {title} on {day}"


@tool
def convert_currency(amount: float, source: str, target: str) -> str:
    """Convert an amount of money from one currency to another (ISO codes like USD, EUR)."""
    return f"{amount} {source} = {amount * 0.9:.2f} {target}"


TOOLS = [weather, add_event, convert_currency]


def first_decision(model: str, prompt: str, choice: str) -> tuple[str | None, dict, float]:
    """The first step only: the session's decision loop stops after one call."""
    s = Session(model=model, tools=TOOLS, sampling=Sampling.greedy(1), max_tool_calls=1)
    t = time.perf_counter()
    calls = s._call_tools(prompt, choice)
    seconds = time.perf_counter() - t
    return (calls[0].name, calls[0].arguments, seconds) if calls else (None, {}, seconds)


def score(model: str, choice: str, progress: Progress) -> dict:
    task = progress.add_task(f"{model} tool_choice={choice}", total=len(PROBES))
    rows = []
    for prompt, expected, value in PROBES:
        name, arguments, seconds = first_decision(model, prompt, choice)
        args_ok = name == expected and value is not None and value.lower() in json.dumps(arguments).lower()
        rows.append({"prompt": prompt, "expected": expected, "called": name, "arguments": arguments,
                     "correct": name == expected, "args_ok": args_ok, "seconds": round(seconds, 3)})
        progress.advance(task)
    need = [r for r in rows if r["expected"]]
    none = [r for r in rows if not r["expected"]]
    right_tool = [r for r in need if r["correct"]]
    return {
        "model": model, "tool_choice": choice,
        "accuracy": sum(r["correct"] for r in rows) / len(rows),
        "false_calls": sum(r["called"] is not None for r in none) / len(none),
        "misses": sum(not r["correct"] for r in need) / len(need),
        "argument_accuracy": sum(r["args_ok"] for r in right_tool) / max(1, len(right_tool)),
        "decision_p50_s": statistics.median(r["seconds"] for r in rows),
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("--models", nargs="+", default=["qwen2.5-0.5b", "qwen2.5-1.5b"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    results = []
    with Progress() as progress:
        for model in args.models:
            for choice in ("auto", "required"):
                results.append(score(model, choice, progress))
    print(f"\n{platform.machine()} · {date.today()} · {len(PROBES)} probes (12 need a tool, 12 need none)")
    print(f"{'model':14} {'tool_choice':11} {'accuracy':>8} {'false calls':>11} {'misses':>7} {'args ok':>8} {'decision p50':>13}")
    for r in results:
        print(f"{r['model']:14} {r['tool_choice']:11} {r['accuracy']:8.2f} {r['false_calls']:11.2f} {r['misses']:7.2f} "
              f"{r['argument_accuracy']:8.2f} {r['decision_p50_s']:12.2f}s")
    for model in args.models:
        auto, req = (next(r for r in results if r["model"] == model and r["tool_choice"] == c) for c in ("auto", "required"))
        print(f"{model}: accuracy auto / always-call baseline = {auto['accuracy'] / req['accuracy']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
