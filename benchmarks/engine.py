#!/usr/bin/env python
"""Engine benchmark: tether's runtime against raw llama-cpp-python, plus notification latency.

Part 1 (streaming chat, greedy). The same GGUF file is loaded twice in this
process: once by ``tether`` (the shared ``LlamaEngine`` behind ``Session``) and
once as a separate, plain ``llama_cpp.Llama`` with the same ``n_ctx``,
``n_threads``, ``n_threads_batch`` and ``n_batch``. Every prompt is run through

* ``Session(engine=...).stream(prompt, sampling=Sampling.greedy(max_tokens=N))``
* ``Llama.create_chat_completion(messages, stream=True, temperature=0, max_tokens=N)``

Both are timed from the call to the last chunk, outside the libraries:

* TTFT = time to the first chunk that carries text (templating + tokenizing +
  prefill + first sample + first detokenize);
* decode tok/s = (completion_tokens - 1) / (total - TTFT).

Each engine keeps its own KV cache, and llama.cpp reuses the longest common
prefix of the previous sequence. Both engines therefore see exactly the same
sequence of prompts (one warm-up, then the same order each round), so prefix
reuse is identical on both sides. Within a round, which side goes first
alternates from prompt to prompt, so background noise hits both.

Part 2 (notifications). ``summarize_stack`` on DIFFERENT 10-notification
stacks: consecutive calls share only the system-prompt prefix of the KV cache
(llama.cpp keeps one sequence, so cycling through the stacks never re-hits a
whole stack). Latency includes the faithfulness retry when it happens.

    TETHER_CACHE_DIR=... .venv/bin/python benchmarks/engine.py --rounds 3 --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import llama_cpp
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tether import Message, Sampling, Session
from tether.features import prompts as feature_prompts
from tether.features.notifications import Notification, format_stack, summarize_stack
from tether.models import catalog
from tether.models import engine as tether_engine
from tether.models.engine import quiet_stderr

# Five prompts that each ask for a long answer (they all run to max_tokens).
PROMPTS: list[tuple[str, str]] = [
    ("history", "Explain in detail how the printing press changed Europe between 1450 and 1600. Cover religion, science, literacy and politics."),
    ("howto", "Write a step-by-step guide for a beginner who wants to bake sourdough bread at home, from making the starter to the first loaf."),
    ("science", "Describe how vaccines train the immune system. Explain antigens, B cells, T cells, memory cells and why booster shots exist."),
    ("code", "Explain, with a short Python example, how a hash map works internally: hashing, buckets, collisions and resizing."),
    ("essay", "Write a thoughtful essay about the benefits and the downsides of remote work for teams, managers and cities."),
]
WARMUP_PROMPT = "List ten facts about the planet Mars, one per line, each with a short explanation."


# ----------------------------------------------------------------- helpers


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def percentile(xs: list[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), q in [0, 100]."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    pos = (len(s) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


CONTENDED = 0.25  # cores used by other processes during a run above which the run is flagged


class CpuMeter:
    """CPU time used by OTHER processes while a block runs, in cores (Linux /proc/stat).

    llama.cpp's threads spin at barriers, so on a 2-core machine any other busy
    process slows decoding far more than its share; flagged runs explain outliers.
    """

    def __init__(self) -> None:
        self.other_cores: float | None = None

    @staticmethod
    def _snap() -> tuple[float, float] | None:
        try:
            with open("/proc/stat") as f:
                vals = [int(v) for v in f.readline().split()[1:9]]
        except (OSError, ValueError):
            return None
        t = os.times()
        busy = (sum(vals) - vals[3] - vals[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        return busy, t.user + t.system

    def __enter__(self) -> "CpuMeter":
        self._start, self._t0 = self._snap(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        end, wall = self._snap(), time.perf_counter() - self._t0
        if self._start and end and wall > 0:
            self.other_cores = max(0.0, ((end[0] - self._start[0]) - (end[1] - self._start[1])) / wall)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class Run:
    side: str  # "tether" | "raw"
    prompt: str
    round: int
    ttft_s: float
    total_s: float
    completion_tokens: int
    finish: str
    text: str
    other_cores: float | None = None  # CPU used by other processes during the run

    @property
    def decode_tps(self) -> float:
        decode = self.total_s - self.ttft_s
        return (self.completion_tokens - 1) / decode if self.completion_tokens > 1 and decode > 0 else 0.0


# ----------------------------------------------------------------- part 1: engine


def run_tether(engine: tether_engine.LlamaEngine, prompt: str, max_tokens: int, label: str, rnd: int) -> Run:
    session = Session(engine=engine)  # no instructions: the chat template's default system prompt, as raw
    sampling = Sampling.greedy(max_tokens=max_tokens)
    ttft = None
    parts: list[str] = []
    t0 = time.perf_counter()
    stream = session.stream(prompt, sampling=sampling)
    for text in stream:
        if ttft is None:
            ttft = time.perf_counter() - t0
        parts.append(text)
    total = time.perf_counter() - t0
    assert stream.response is not None
    c = stream.response.completion
    return Run("tether", label, rnd, ttft or total, total, c.completion_tokens, c.finish_reason, "".join(parts))


def run_raw(llm: llama_cpp.Llama, prompt_ids: list[int], prompt: str, max_tokens: int, label: str, rnd: int) -> Run:
    messages = [{"role": "user", "content": prompt}]
    ttft = None
    parts: list[str] = []
    finish = "length"
    t0 = time.perf_counter()
    for chunk in llm.create_chat_completion(messages, stream=True, temperature=0, max_tokens=max_tokens):
        choice = chunk["choices"][0]
        content = choice["delta"].get("content")
        if content:
            if ttft is None:
                ttft = time.perf_counter() - t0
            parts.append(content)
        if choice.get("finish_reason"):
            finish = choice["finish_reason"]
    total = time.perf_counter() - t0
    # Streaming chunks carry no usage. Count from the KV state: every completion
    # token is evaluated except the last one when generation stops at max_tokens
    # (on "stop" the EOG token is sampled after the last completion token is evaluated).
    n_prompt = len(prompt_ids)
    if list(llm.input_ids[:n_prompt]) != prompt_ids:
        raise SystemExit(f"raw llama.cpp saw a different prompt than tether for {label!r}; the comparison would be unfair")
    completion_tokens = llm.n_tokens - n_prompt + (1 if finish == "length" else 0)
    return Run("raw", label, rnd, ttft or total, total, completion_tokens, finish, "".join(parts))


# ----------------------------------------------------------------- part 2: notifications

_BASE = datetime(2026, 11, 26, 9, 0)


def _stack(app: str, thread: str, start: str, msgs: list[tuple[str, str]], *, title: str | None = None,
           minutes: list[int] | None = None, sender_is_title: bool = False) -> list[Notification]:
    h, m = map(int, start.split(":"))
    t = _BASE.replace(hour=h, minute=m)
    steps = list(minutes or [2] * (len(msgs) - 1)) + [0]  # minutes between consecutive messages
    out = []
    for (who, body), step in zip(msgs, steps):
        if sender_is_title:
            out.append(Notification(app=app, title=who, body=body, timestamp=t, thread=thread))
        else:
            out.append(Notification(app=app, sender=who, title=title, body=body, timestamp=t, thread=thread))
        t += timedelta(minutes=step)
    return out


def notification_stacks() -> list[tuple[str, list[Notification]]]:
    """Seven different realistic 10-notification stacks (plus one warm-up stack first)."""
    warmup = _stack("Discord", "raid-night", "20:10", [
        ("Kai", "raid starts at 9, who's in?"), ("Mira", "me, bringing the healer build"),
        ("Kai", "we need one more tank"), ("Odin", "I can tank if someone lends me gear"),
        ("Mira", "I have spare armor, will trade it to you"), ("Kai", "perfect, meet at the portal"),
        ("Odin", "running 10 min late, sorry"), ("Mira", "no rush, still farming potions"),
        ("Kai", "ok starting at 9:15 then"), ("Odin", "on my way now"),
    ], title="#guild-chat")
    stacks = [
        ("group chat", _stack("Messages", "weekend-hike", "08:30", [
            ("Sam Ortiz", "Hike on Saturday still on?"),
            ("Priya Nair", "Yes! Weather says sunny, 18 degrees."),
            ("Jonas Weber", "I'm in. Which trail, Eagle Ridge or the lake loop?"),
            ("Sam Ortiz", "Eagle Ridge, it's about 12 km."),
            ("Priya Nair", "Can someone drive? My car is in the shop."),
            ("Jonas Weber", "I can drive, 4 seats."),
            ("Sam Ortiz", "Meet at the train station at 7:30?"),
            ("Priya Nair", "7:30 is early but fine. I'll bring sandwiches."),
            ("Jonas Weber", "Bring water too, there's no fountain on the ridge."),
            ("Sam Ortiz", "Great, see you all at 7:30 on Saturday."),
        ], minutes=[3, 1, 4, 2, 5, 2, 6, 1, 3])),
        ("slack incident", _stack("Slack", "incident-db", "14:02", [
            ("Lena Park", "Checkout API error rate jumped to 8% in the last 10 minutes."),
            ("Raj Patel", "Looking. Primary database CPU is at 97%."),
            ("Lena Park", "Started after the 13:50 deploy of orders-service v2.14."),
            ("Chris Moody", "v2.14 added a new index scan on the orders table, could be it."),
            ("Raj Patel", "Confirmed, a slow query is running 400 times per second."),
            ("Lena Park", "Rolling back orders-service to v2.13 now."),
            ("Chris Moody", "I'll open a ticket to add the missing index."),
            ("Raj Patel", "Rollback done, CPU dropping to 40%."),
            ("Lena Park", "Error rate back under 0.5%. Keeping the incident open for 30 minutes."),
            ("Chris Moody", "Postmortem doc is up, please add your timeline notes by Friday."),
        ], title="#incident-db", minutes=[1, 2, 2, 3, 2, 4, 3, 5, 2])),
        ("email thread", _stack("Mail", "lease-renewal", "10:15", [
            ("Helen Brooks", "Your lease at 14 Maple Street ends on 31 January. Would you like to renew?"),
            ("Helen Brooks", "The renewal offer is 12 months at 1,450 per month, up from 1,380."),
            ("Nina Alvarez", "Can we ask her whether a 24-month lease keeps the old rent?"),
            ("Helen Brooks", "A 24-month lease would be 1,420 per month."),
            ("Nina Alvarez", "That seems fair to me. What do you think?"),
            ("Helen Brooks", "Please also note the building will repaint the hallways in March."),
            ("Nina Alvarez", "I'd sign the 24-month option if the dishwasher gets fixed first."),
            ("Helen Brooks", "The dishwasher repair is booked for Tuesday morning."),
            ("Nina Alvarez", "Great, then I'm happy to sign."),
            ("Helen Brooks", "Please sign the renewal form by 15 December so I can send the keys for the new lock."),
        ], title="Re: Lease renewal", minutes=[30, 45, 60, 20, 90, 15, 40, 25, 50])),
        ("family group", _stack("WhatsApp", "family", "18:40", [
            ("Mom", "Grandma turns 80 on the 14th, let's plan something!"),
            ("Dad", "How about lunch at the Golden Dragon? She loves it."),
            ("Ella", "I can't do lunch, I work until 3. Dinner?"),
            ("Mom", "Dinner works. 6 pm?"),
            ("Dad", "I'll call the restaurant to book a table for 9."),
            ("Ella", "I'll order the cake from Rosa's bakery, chocolate or lemon?"),
            ("Mom", "Lemon, she doesn't like chocolate."),
            ("Dad", "Booked for 6 pm on the 14th, table for 9."),
            ("Ella", "Cake ordered, I'll pick it up at 5."),
            ("Mom", "Everyone please chip in 20 for the present, a photo album."),
        ], minutes=[2, 7, 3, 4, 6, 2, 10, 5, 3])),
        ("design review", _stack("Teams", "onboarding-review", "11:00", [
            ("Ava Kim", "New onboarding mockups are in Figma, 6 screens."),
            ("Ben Carter", "Screen 2 asks for too much info up front, can we drop the phone number?"),
            ("Ava Kim", "Good point, moving the phone number to settings."),
            ("Omar Haddad", "The progress bar on screen 4 is hard to read in dark mode."),
            ("Ava Kim", "I'll bump the contrast."),
            ("Ben Carter", "Also, copy on the last screen says 'Finish' twice."),
            ("Omar Haddad", "Can we test this with 5 users next week?"),
            ("Ava Kim", "Yes, I'll book sessions for Wednesday and Thursday."),
            ("Ben Carter", "Looks great overall. Approved once the copy is fixed."),
            ("Ava Kim", "Updated version uploaded, v3 in the same file."),
        ], title="Design review", minutes=[5, 3, 8, 2, 6, 4, 3, 9, 12])),
        ("locked out", _stack("Messages", "leo", "22:05", [
            ("Leo Martin", "Hey are you home?"),
            ("Leo Martin", "I locked myself out of my flat"),
            ("Leo Martin", "My phone is on 5% battery"),
            ("Leo Martin", "You still have my spare key, right?"),
            ("Leo Martin", "I'm at the café on Baker Street"),
            ("Leo Martin", "They close at 11"),
            ("Leo Martin", "Can you bring the key or should I call a locksmith?"),
            ("Leo Martin", "Locksmith says 120 and 1 hour wait"),
            ("Leo Martin", "Please call me when you see this"),
            ("Leo Martin", "Phone about to die, I'll wait at the café"),
        ], minutes=[1, 1, 2, 1, 1, 2, 3, 2, 1])),
        ("code review", _stack("GitHub", "pr-482", "16:20", [
            ("ci-bot", "Build failed on PR #482: 3 tests failed in test_payments.py."),
            ("Mei Lin", "The failures are in the currency rounding tests."),
            ("Tariq Aziz", "Rounding should use banker's rounding for EUR, see issue #431."),
            ("Mei Lin", "Pushed a fix, switching to decimal quantize."),
            ("ci-bot", "Build passed on PR #482."),
            ("Tariq Aziz", "Left 2 comments on the error messages."),
            ("Mei Lin", "Addressed both comments."),
            ("Tariq Aziz", "Approved. Please squash before merging."),
            ("Grace Hall", "Can this go into the 3.2 release on Thursday?"),
            ("Mei Lin", "Yes, merging now so it makes the 3.2 cut."),
        ], title="PR #482: Fix currency rounding", minutes=[4, 6, 15, 9, 11, 20, 8, 5, 3])),
        ("book club", _stack("Signal", "book-club", "19:30", [
            ("Ruth Ellis", "Next book club is at my place on Thursday at 7."),
            ("Diego Santos", "Did everyone finish The Remains of the Day?"),
            ("Hana Sato", "Two chapters left, I'll finish by then."),
            ("Ruth Ellis", "I'll make soup, someone bring bread?"),
            ("Diego Santos", "I'll bring bread and wine."),
            ("Hana Sato", "I'll bring dessert, apple pie."),
            ("Ruth Ellis", "For the next pick, vote between Klara and the Sun or Piranesi."),
            ("Diego Santos", "Piranesi!"),
            ("Hana Sato", "Klara and the Sun, we already did a fantasy book."),
            ("Ruth Ellis", "Tie, we'll decide on Thursday."),
        ], minutes=[10, 4, 6, 3, 2, 15, 5, 7, 20])),
    ]
    for _, items in stacks:
        assert len(items) == 10
    return [("warm-up", warmup)] + stacks


@dataclass
class StackRun:
    stack: str
    round: int
    latency_s: float
    generations: int
    extractive: bool
    prompt_tokens: int
    summary: str
    other_cores: float | None = None


# ----------------------------------------------------------------- report


def _quiet(x: Run | StackRun) -> bool:
    return (x.other_cores or 0) <= CONTENDED


def summarize(runs: list[Run], stack_runs: list[StackRun], prompt_tokens: dict[str, int]) -> dict[str, Any]:
    """Medians and ratios. Per-prompt rows use the runs not flagged noisy (all runs if none is quiet);
    the headline figures use every run."""

    def pick(side: str, label: str | None = None) -> list[Run]:
        return [r for r in runs if r.side == side and (label is None or r.prompt == label)]

    def prefer_quiet(xs: list[Run]) -> list[Run]:
        return [x for x in xs if _quiet(x)] or xs

    per_prompt = {}
    for label in dict.fromkeys(r.prompt for r in runs):
        t_all, r_all = pick("tether", label), pick("raw", label)
        t, r = prefer_quiet(t_all), prefer_quiet(r_all)
        per_prompt[label] = {
            "prompt_tokens": prompt_tokens.get(label, 0),
            "completion_tokens": int(median([x.completion_tokens for x in t_all])),
            "tether_decode_tps": median([x.decode_tps for x in t]),
            "raw_decode_tps": median([x.decode_tps for x in r]),
            "tether_ttft_ms": 1000 * median([x.ttft_s for x in t]),
            "raw_ttft_ms": 1000 * median([x.ttft_s for x in r]),
            "same_text": all(a.text == b.text for a, b in zip(t_all, r_all)),
            "noisy_runs": sum(not _quiet(x) for x in t_all + r_all),
            "runs": len(t_all) + len(r_all),
        }

    t_all, r_all = pick("tether"), pick("raw")
    # Paired: the same prompt in the same round, run back to back.
    pairs = [(a, b) for a in t_all for b in r_all if a.prompt == b.prompt and a.round == b.round]
    quiet_pairs = [(a, b) for a, b in pairs if _quiet(a) and _quiet(b)]
    overall: dict[str, Any] = {
        "tether_decode_tps": median([x.decode_tps for x in t_all]),
        "raw_decode_tps": median([x.decode_tps for x in r_all]),
        "tether_ttft_ms": 1000 * median([x.ttft_s for x in t_all]),
        "raw_ttft_ms": 1000 * median([x.ttft_s for x in r_all]),
        "decode_ratio_paired_median": median([a.decode_tps / b.decode_tps for a, b in pairs]),
        "ttft_ratio_paired_median": median([a.ttft_s / b.ttft_s for a, b in pairs]),
        "quiet": {
            "tether_decode_tps": median([x.decode_tps for x in t_all if _quiet(x)]),
            "raw_decode_tps": median([x.decode_tps for x in r_all if _quiet(x)]),
            "tether_ttft_ms": 1000 * median([x.ttft_s for x in t_all if _quiet(x)]),
            "raw_ttft_ms": 1000 * median([x.ttft_s for x in r_all if _quiet(x)]),
            "pairs": len(quiet_pairs),
            "decode_ratio_paired_median": median([a.decode_tps / b.decode_tps for a, b in quiet_pairs]),
            "ttft_ratio_paired_median": median([a.ttft_s / b.ttft_s for a, b in quiet_pairs]),
        },
        "runs": len(runs),
        "contended_runs": sum(not _quiet(x) for x in runs),
        "same_text": all(v["same_text"] for v in per_prompt.values()),
        "finish_reasons": sorted({f"{x.side}:{x.finish}" for x in runs}),
    }
    overall["decode_ratio"] = overall["tether_decode_tps"] / overall["raw_decode_tps"]
    overall["ttft_ratio"] = overall["tether_ttft_ms"] / overall["raw_ttft_ms"]
    q = overall["quiet"]
    if q["pairs"]:
        q["decode_ratio"] = q["tether_decode_tps"] / q["raw_decode_tps"]
        q["ttft_ratio"] = q["tether_ttft_ms"] / q["raw_ttft_ms"]

    notif: dict[str, Any] = {}
    if stack_runs:
        lat = [s.latency_s for s in stack_runs]
        quiet = [s.latency_s for s in stack_runs if _quiet(s)]
        per_stack = {}
        for name in dict.fromkeys(s.stack for s in stack_runs):
            mine = [s for s in stack_runs if s.stack == name]
            per_stack[name] = {
                "prompt_tokens": mine[0].prompt_tokens,
                "median_s": median([s.latency_s for s in ([m for m in mine if _quiet(m)] or mine)]),
                "max_s": max(s.latency_s for s in mine),
                "generations": [s.generations for s in mine],
                "extractive": sum(s.extractive for s in mine),
                "noisy_runs": sum(not _quiet(s) for s in mine),
                "runs": len(mine),
                "summary": mine[-1].summary,
                "summary_extractive": mine[-1].extractive,
            }
        notif = {
            "stacks": len(per_stack),
            "n_runs": len(stack_runs),
            "median_s": median(lat),
            "p90_s": percentile(lat, 90),
            "max_s": max(lat),
            "median_quiet_s": median(quiet),
            "p90_quiet_s": percentile(quiet, 90),
            "median_of_stack_medians_s": median([v["median_s"] for v in per_stack.values()]),
            "extractive": sum(s.extractive for s in stack_runs),
            "extractive_stacks": sorted({s.stack for s in stack_runs if s.extractive}),
            "retried": sum(s.generations > 1 for s in stack_runs),
            "contended_runs": sum(not _quiet(s) for s in stack_runs),
            "per_stack": per_stack,
        }
    return {"engine": {"overall": overall, "per_prompt": per_prompt}, "notifications": notif}


def render(console: Console, config: dict[str, Any], result: dict[str, Any]) -> None:
    overall, per_prompt = result["engine"]["overall"], result["engine"]["per_prompt"]
    table = Table(title=f"{config['model']}: tether.Session vs raw llama_cpp.Llama (streaming, greedy, max_tokens={config['max_tokens']}, "
                        f"{config['n_threads']} threads, {config['rounds']} rounds)",
                  caption=f"medians; per-prompt rows leave out runs flagged noisy (> {CONTENDED} cores busy in other processes)")
    for col in ("prompt", "prompt tok", "compl tok", "tether tok/s", "raw tok/s", "ratio", "tether TTFT ms", "raw TTFT ms", "ratio",
                "same text", "noisy runs"):
        table.add_column(col, justify="left" if col == "prompt" else "right")
    for label, row in per_prompt.items():
        table.add_row(label, str(row["prompt_tokens"]), str(row["completion_tokens"]),
                      f"{row['tether_decode_tps']:.1f}", f"{row['raw_decode_tps']:.1f}",
                      f"{row['tether_decode_tps'] / row['raw_decode_tps']:.3f}",
                      f"{row['tether_ttft_ms']:.0f}", f"{row['raw_ttft_ms']:.0f}",
                      f"{row['tether_ttft_ms'] / row['raw_ttft_ms']:.3f}", "yes" if row["same_text"] else "NO",
                      f"{row['noisy_runs']}/{row['runs']}")
    table.add_section()
    q = overall["quiet"]
    if q["pairs"]:
        table.add_row("quiet runs", "", "", f"{q['tether_decode_tps']:.1f}", f"{q['raw_decode_tps']:.1f}", f"{q['decode_ratio']:.3f}",
                      f"{q['tether_ttft_ms']:.0f}", f"{q['raw_ttft_ms']:.0f}", f"{q['ttft_ratio']:.3f}", "", "")
    table.add_row("[b]all runs", "", "", f"[b]{overall['tether_decode_tps']:.1f}", f"[b]{overall['raw_decode_tps']:.1f}",
                  f"[b]{overall['decode_ratio']:.3f}", f"[b]{overall['tether_ttft_ms']:.0f}", f"[b]{overall['raw_ttft_ms']:.0f}",
                  f"[b]{overall['ttft_ratio']:.3f}", "yes" if overall["same_text"] else "NO",
                  f"{overall['contended_runs']}/{overall['runs']}")
    console.print(table)

    notif = result["notifications"]
    if notif:
        ntable = Table(title=f"summarize_stack on {config['model']}: {notif['stacks']} different 10-notification stacks x {config['rounds']} rounds",
                       caption="median leaves out noisy runs; generations: 2 = the faithfulness retry ran")
        for col in ("stack", "prompt tok", "median s", "max s", "generations", "extractive", "noisy runs"):
            ntable.add_column(col, justify="left" if col == "stack" else "right")
        for name, st in notif["per_stack"].items():
            ntable.add_row(name, str(st["prompt_tokens"]), f"{st['median_s']:.2f}", f"{st['max_s']:.2f}",
                           "/".join(map(str, st["generations"])), f"{st['extractive']}/{st['runs']}", f"{st['noisy_runs']}/{st['runs']}")
        console.print(ntable)
        for name, st in notif["per_stack"].items():
            console.print(f"  [dim]{name}:[/] {st['summary']}" + (" [dim](extractive)[/]" if st.get("summary_extractive") else ""),
                          highlight=False)

    console.rule("summary")
    ok = "[green]OK[/]" if overall["decode_ratio"] >= 0.97 else "[red]below target[/]"
    console.print(f"decode tok/s  tether {overall['tether_decode_tps']:.1f}  raw {overall['raw_decode_tps']:.1f}  "
                  f"ratio {overall['decode_ratio']:.3f} (paired median {overall['decode_ratio_paired_median']:.3f}; target >= 0.97) {ok}")
    # TTFT is a time, so the ratio inverts: keeping 97% of raw's speed is a ratio <= 1/0.97
    ok = "[green]OK[/]" if overall["ttft_ratio"] <= 1 / 0.97 else "[red]above target[/]"
    console.print(f"TTFT ms       tether {overall['tether_ttft_ms']:.0f}  raw {overall['raw_ttft_ms']:.0f}  "
                  f"ratio {overall['ttft_ratio']:.3f} (paired median {overall['ttft_ratio_paired_median']:.3f}; "
                  f"target <= {1 / 0.97:.3f}) {ok}")
    if overall["contended_runs"]:
        console.print(f"[yellow]{overall['contended_runs']}/{overall['runs']} engine runs shared the CPU with other processes "
                      f"(> {CONTENDED} cores busy elsewhere); over the {q['pairs']} pairs where neither side did: "
                      f"decode ratio {q['decode_ratio_paired_median']:.3f}, TTFT ratio {q['ttft_ratio_paired_median']:.3f}")
    if notif:
        ok = "[green]OK[/]" if notif["median_s"] <= 3.0 else "[red]above target[/]"
        console.print(f"notification stack (10 items)  median {notif['median_s']:.2f} s  p90 {notif['p90_s']:.2f} s  "
                      f"max {notif['max_s']:.2f} s  (target median <= 3 s) {ok}; extractive fallback {notif['extractive']}/{notif['n_runs']}, "
                      f"retried {notif['retried']}/{notif['n_runs']}")
        if notif["contended_runs"]:
            console.print(f"[yellow]{notif['contended_runs']}/{notif['n_runs']} notification runs shared the CPU with other processes; "
                          f"without them: median {notif['median_quiet_s']:.2f} s, p90 {notif['p90_quiet_s']:.2f} s")


# ----------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=catalog.DEFAULT_MODEL, help="catalog name (default: %(default)s)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over the prompts and the stacks (default: %(default)s)")
    ap.add_argument("--max-tokens", type=int, default=128, help="max completion tokens per prompt (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=None, help="n_threads for both engines (default: tether's default)")
    ap.add_argument("--skip-notifications", action="store_true", help="only run the engine comparison")
    ap.add_argument("--json", type=Path, default=None, metavar="PATH", help="write all results as JSON to PATH")
    ap.add_argument("--report", type=Path, default=None, metavar="PATH", help="print the tables of a saved --json file; run nothing")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    console = Console(width=None if sys.stdout.isatty() else 132)

    if args.report:
        payload = json.loads(args.report.read_text())
        runs = [Run(**{k: v for k, v in r.items() if k != "decode_tps"}) for r in payload["engine"]["runs"]]
        stack_runs = [StackRun(**s) for s in payload.get("notifications", {}).get("runs", [])]
        console.print(f"{args.report}: {payload['date']}, {payload['machine']['cpu']}, llama-cpp-python {payload['versions']['llama_cpp_python']}")
        prompt_tokens = payload["config"].get("prompt_tokens") or {k: v["prompt_tokens"] for k, v in payload["engine"]["per_prompt"].items()}
        render(console, payload["config"], summarize(runs, stack_runs, prompt_tokens))
        return 0

    threads = args.threads or tether_engine.default_threads()
    path = catalog.pull(args.model, progress=False)

    with console.status(f"loading {args.model} twice (tether + raw llama_cpp.Llama)…"):
        engine = tether_engine.load(args.model, n_threads=threads)  # the engine Session / summarize_stack use
        with quiet_stderr():
            raw = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=engine.context_window,
                n_threads=threads,
                n_threads_batch=threads,
                n_batch=512,
                verbose=False,
            )
    prompt_ids = {label: engine.tokenize_chat([Message("user", p)]) for label, p in PROMPTS}
    stacks = [] if args.skip_notifications else notification_stacks()

    n_engine = 2 + 2 * len(PROMPTS) * args.rounds
    n_notif = 0 if not stacks else 1 + (len(stacks) - 1) * args.rounds
    runs: list[Run] = []
    stack_runs: list[StackRun] = []
    started = time.time()

    columns = (SpinnerColumn(), TextColumn("[progress.description]{task.description}"), BarColumn(),
               MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("warm-up", total=n_engine + n_notif)
        # Warm-up: same prompt on both sides, so both KV caches start from the same state.
        run_tether(engine, WARMUP_PROMPT, args.max_tokens, "warm-up", -1)
        progress.advance(task)
        run_raw(raw, engine.tokenize_chat([Message("user", WARMUP_PROMPT)]), WARMUP_PROMPT, args.max_tokens, "warm-up", -1)
        progress.advance(task)
        for rnd in range(args.rounds):
            for i, (label, prompt) in enumerate(PROMPTS):
                order = ("tether", "raw") if (rnd + i) % 2 == 0 else ("raw", "tether")
                for side in order:
                    progress.update(task, description=f"engine r{rnd + 1} {label:<8} {side}")
                    with CpuMeter() as meter:
                        if side == "tether":
                            run = run_tether(engine, prompt, args.max_tokens, label, rnd)
                        else:
                            run = run_raw(raw, prompt_ids[label], prompt, args.max_tokens, label, rnd)
                    run.other_cores = meter.other_cores
                    runs.append(run)
                    progress.advance(task)

        if stacks:
            del raw  # free the second copy before the feature benchmark
            generations = 0
            original_stream = engine.stream

            def counting_stream(*a: Any, **kw: Any) -> Any:
                nonlocal generations
                generations += 1
                return original_stream(*a, **kw)

            engine.stream = counting_stream  # type: ignore[method-assign]  # counts the faithfulness retries
            try:
                schedule = [(stacks[0], -1)] + [(s, rnd) for rnd in range(args.rounds) for s in stacks[1:]]
                for (name, items), rnd in schedule:
                    progress.update(task, description=f"notifications r{rnd + 1} {name}" if rnd >= 0 else "notifications warm-up")
                    n_prompt = len(engine.tokenize_chat([Message("system", feature_prompts.NOTIFICATION_SUMMARY),
                                                         Message("user", format_stack(items))]))
                    generations = 0
                    with CpuMeter() as meter:
                        t0 = time.perf_counter()
                        summary, extractive = summarize_stack(items, model=args.model)
                        dt = time.perf_counter() - t0
                    if rnd >= 0:
                        stack_runs.append(StackRun(name, rnd, dt, generations, extractive, n_prompt, summary, meter.other_cores))
                    progress.advance(task)
            finally:
                del engine.stream
        progress.update(task, description="done")

    config = {"model": args.model, "path": str(path), "n_ctx": engine.context_window, "n_threads": threads,
              "max_tokens": args.max_tokens, "rounds": args.rounds,
              "prompt_tokens": {label: len(ids) for label, ids in prompt_ids.items()}}
    result = summarize(runs, stack_runs, config["prompt_tokens"])
    render(console, config, result)

    if args.json:
        payload = {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "elapsed_s": round(time.time() - started, 1),
            "machine": {"cpu": cpu_model(), "arch": platform.machine(), "cpu_count": os.cpu_count(),
                        "loadavg_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None},
            "versions": {"llama_cpp_python": llama_cpp.__version__, "python": platform.python_version()},
            "config": config,
            "engine": result["engine"] | {"runs": [asdict(r) | {"decode_tps": r.decode_tps} for r in runs]},
            "notifications": result["notifications"] | {"runs": [asdict(s) for s in stack_runs]} if stack_runs else {},
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        console.print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
