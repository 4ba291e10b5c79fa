#!/usr/bin/env python
"""Tool-calling benchmark: does the model call the right tool, and only when needed?

Two fixed probe sets against three tools (weather, add_event, convert_currency):
PROBES (24: 12 need exactly one named tool, 12 need none), on which the wording
of the tools prompt was chosen, and HELD_OUT (20: 10 and 10), written afterwards
and never used to tune anything. Quote the held-out figures. For each model,
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

# Written after the prompt wording was chosen on PROBES, and never used to tune it.
HELD_OUT: list[tuple[str, str | None, str | None]] = [
    ("Should I wear a coat in Berlin this evening?", "weather", "Berlin"),
    ("Any chance of sunshine in Madrid today?", "weather", "Madrid"),
    ("How windy is it in Chicago at the moment?", "weather", "Chicago"),
    ("Remind me: put 'pay rent' on my calendar for 2026-12-01.", "add_event", "2026-12-01"),
    ("Create a calendar entry 'flight to Rome' on 2027-02-08.", "add_event", "2027-02-08"),
    ("Block 2026-12-24 in my calendar for Christmas Eve dinner.", "add_event", "2026-12-24"),
    ("What's 99 euros in US dollars?", "convert_currency", "99"),
    ("How many Canadian dollars do I get for 500 USD?", "convert_currency", "500"),
    ("Convert 15 Swiss francs to British pounds.", "convert_currency", "15"),
    ("Change 3000 Indian rupees into euros.", "convert_currency", "3000"),
    ("Write a Python function that reverses a string.", None, None),
    ("What is the square root of 144?", None, None),
    ("Give me a simple recipe for pancakes.", None, None),
    ("Define the word 'ephemeral'.", None, None),
    ("Which is bigger, the Pacific or the Atlantic Ocean?", None, None),
    ("Draft a two-line thank-you note to my neighbour.", None, None),
    ("List three famous paintings by Monet.", None, None),
    ("What year did the Berlin Wall fall?", None, None),
    ("Proofread: their going too the park tomorow.", None, None),
    ("Why is the sky blue? One sentence.", None, None),
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


def score(model: str, choice: str, probes: list, label: str, progress: Progress) -> dict:
    task = progress.add_task(f"{model} {label} tool_choice={choice}", total=len(probes))
    rows = []
    for prompt, expected, value in probes:
        name, arguments, seconds = first_decision(model, prompt, choice)
        args_ok = name == expected and value is not None and value.lower() in json.dumps(arguments).lower()
        rows.append({"prompt": prompt, "expected": expected, "called": name, "arguments": arguments,
                     "correct": name == expected, "args_ok": args_ok, "seconds": round(seconds, 3)})
        progress.advance(task)
    need = [r for r in rows if r["expected"]]
    none = [r for r in rows if not r["expected"]]
    right_tool = [r for r in need if r["correct"]]
    return {
        "model": model, "tool_choice": choice, "set": label,
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
    ap.add_argument("--choices", nargs="+", default=["auto", "required"], choices=["auto", "required"])
    ap.add_argument("--sets", nargs="+", default=["held-out", "tuning"], choices=["held-out", "tuning"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    results = []
    with Progress() as progress:
        for model in args.models:
            for label in args.sets:
                for choice in args.choices:
                    results.append(score(model, choice, HELD_OUT if label == "held-out" else PROBES, label, progress))
    print(f"\n{platform.machine()} · {date.today()} · held-out: {len(HELD_OUT)} probes, tuning: {len(PROBES)}")
    print(f"{'model':14} {'set':9} {'tool_choice':11} {'accuracy':>8} {'false calls':>11} {'misses':>7} {'args ok':>8} "
          f"{'decision p50':>13}")
    for r in results:
        print(f"{r['model']:14} {r['set']:9} {r['tool_choice']:11} {r['accuracy']:8.2f} {r['false_calls']:11.2f} "
              f"{r['misses']:7.2f} {r['argument_accuracy']:8.2f} {r['decision_p50_s']:12.2f}s")
    for model in args.models:
        for label in args.sets:
            pair = {r["tool_choice"]: r for r in results if r["model"] == model and r["set"] == label}
            if {"auto", "required"} <= set(pair):
                print(f"{model} {label}: accuracy auto / always-call baseline = "
                      f"{pair['auto']['accuracy'] / pair['required']['accuracy']:.2f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
