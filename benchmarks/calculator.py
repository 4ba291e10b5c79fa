"""The assistant's calculator against the device model on sums asked in words.

    .venv/bin/python benchmarks/calculator.py     # prints the markdown table for docs/benchmarks.md

Questions: ``benchmarks/data/arithmetic_questions.jsonl``, 40 sums in the forms people type
("What is 17 times 23?", "15% of 80", "the square root of 2", "$12.50 * 3"), each with the
expression that is its truth, evaluated here by Python. In one run: ``features.calculator``
(no model), and the device model answering the same question as ``tether chat`` would
without the calculator (qwen2.5-0.5b, the router's default device model, greedy, up to 512
tokens, chat's default), scored by the last number of its answer (within 0.01, or 0.1% of the truth).
"""

from __future__ import annotations

import json
import platform
import re
import statistics
import time
from pathlib import Path

from rich.progress import track

from tether.features.calculator import calculate

QUESTIONS = Path(__file__).resolve().parent / "data" / "arithmetic_questions.jsonl"
MODEL = "qwen2.5-0.5b"
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")


def close(value: float | None, truth: float) -> bool:
    return value is not None and abs(value - truth) <= max(0.01, abs(truth) * 1e-3)


def last_number(text: str) -> float | None:
    found = _NUMBER.findall(text.replace("$", "").replace("€", ""))
    if not found:
        return None
    try:
        return float(found[-1].replace(",", ""))
    except ValueError:
        return None


def main() -> None:
    from tether import Session
    from tether.models.engine import Sampling

    rows = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line.strip()]
    session_kwargs = dict(model=MODEL)
    Session(**session_kwargs).prewarm()
    results = []
    for row in track(rows, description="questions"):
        truth = float(eval(row["expression"], {"__builtins__": {}}))  # noqa: S307 - the benchmark's own data
        t = time.perf_counter()
        calc = calculate(row["question"])
        calc_s = time.perf_counter() - t
        t = time.perf_counter()
        answer = Session(**session_kwargs).respond(row["question"], sampling=Sampling(max_tokens=512)).content
        model_s = time.perf_counter() - t
        results.append({"question": row["question"], "truth": truth, "calc": calc.value if calc else None,
                        "calc_recognized": calc is not None, "calc_s": calc_s, "model": last_number(answer),
                        "model_answer": answer, "model_s": model_s})
    print(render(results))


def render(results: list[dict]) -> str:
    n = len(results)
    recognized = sum(r["calc_recognized"] for r in results)
    calc_right = sum(close(r["calc"], r["truth"]) for r in results)
    model_right = sum(close(r["model"], r["truth"]) for r in results)
    calc_ms = statistics.median(r["calc_s"] for r in results) * 1000
    model_s = statistics.median(r["model_s"] for r in results)
    lines = [f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, {n} sums asked in words.",
             "", "| answered by | recognized | right | median time |", "|---|---|---|---|",
             f"| {MODEL} (device model, as chat answered before) | – | {model_right}/{n} ({model_right / n:.0%}) | {model_s:.2f} s |",
             f"| features.calculator (ours, no model) | {recognized}/{n} | {calc_right}/{n} ({calc_right / n:.0%}) | "
             f"{calc_ms:.2f} ms |", "",
             f"Speed-up on a sum: {model_s / (calc_ms / 1000):,.0f}x."]
    wrong = [f"{r['question']} → {r['model_answer'][:80]!r} (truth {r['truth']:g})" for r in results
             if not close(r["model"], r["truth"])]
    missed = [r["question"] for r in results if not close(r["calc"], r["truth"])]
    lines += ["", f"Calculator misses: {missed or 'none'}", "Model misses:"] + [f"- {w}" for w in wrong]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
