#!/usr/bin/env python
"""Rewrites: the device alone, the device with its rewrite cascade, and the cloud model alone.

Texts: the emails of AgentDojo's workspace inbox (``inspect-evals``, shipped in a PyPI package;
the templated prompt-injection slots removed), each rewritten in the three tones.

Passed is the rewrite check, the one the cascade escalates on: the rewrite is not empty, did not
run past its budget, has every number of the text and no number the text lacks, no blank
to fill in ("[Date]"), and asks something when the text does (a question kept a question). It says
how often the user gets a rewrite that kept the facts a reader checks first, not how well the
tone came out.

- device: ``rewrite(text, tone, model=qwen2.5-0.5b)`` (greedy, one sampled retry)
- cascade: the same through a ``Router`` whose private cloud is the cloud model in this process
  (``DeviceTier("qwen2.5-1.5b")``, standing in for a node: ``benchmarks/cloud.py`` measures the
  transport); a text whose device rewrite and retry both fail the check goes there, pseudonymized
- cloud (``--cloud-alone``): ``rewrite(text, tone, model=qwen2.5-1.5b)`` for every text, names in
  the clear

    .venv/bin/python benchmarks/rewrite_cascade.py [--limit N] [--tones professional,concise] [--cloud-alone] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package

from tether.errors import TetherError  # noqa: E402
from tether.features.prompts import TONES  # noqa: E402
from tether.features.writing import asks, rewrite  # noqa: E402
from tether.routing.config import RouterConfig  # noqa: E402
from tether.routing.router import Router  # noqa: E402
from tether.routing.state import DeviceState  # noqa: E402
from tether.routing.tiers import DeviceTier  # noqa: E402

DEVICE_MODEL, CLOUD_MODEL = "qwen2.5-0.5b", "qwen2.5-1.5b"
SLOT = re.compile(r"\{[a-z_0-9]+\}")


def load_texts() -> list[tuple[str, str]]:
    """(subject, body) of every inbox email with a body, in the file's order."""
    import inspect_evals

    suite = Path(inspect_evals.__file__).parent / "agentdojo/data/suites/workspace/include"
    out = []
    for e in yaml.safe_load((suite / "inbox.yaml").read_text())["initial_emails"]:
        body = "\n".join(" ".join(line.split()) for line in SLOT.sub("", e["body"]).strip().splitlines())
        if body:
            out.append((e.get("subject") or "(no subject)", body))
    return out


def run(label: str, cases, call, progress: Progress, *, cloud_only: bool = False) -> dict:
    task = progress.add_task(label, total=len(cases))
    rows = []
    for name, text, tone in cases:
        start = time.perf_counter()
        row = {"text": name, "tone": tone}
        try:
            r = call(text, tone)
            row |= {"passed": not (r.cut or r.missing_numbers or r.added_numbers or r.unfilled or r.lost_question),
                    "cut": r.cut, "lost": r.missing_numbers, "added": r.added_numbers, "unfilled": r.unfilled,
                    "lost_question": r.lost_question, "error": "",
                    "tier": r.tier, "route": r.route, "rewrite": r.text}
        except TetherError as exc:
            row |= {"passed": False, "cut": False, "lost": [], "added": [], "unfilled": [], "lost_question": False,
                    "error": str(exc),
                    "tier": "device", "route": str(exc), "rewrite": ""}
        row["seconds"] = time.perf_counter() - start
        row["cloud_call"] = (cloud_only or row["tier"] != "device" or "device answer escalated" in row["route"]
                             or "escalation failed" in row["route"])
        rows.append(row)
        progress.advance(task)
    n = len(rows)

    def share(key: str, tone: str | None = None) -> float:
        sel = [r for r in rows if tone is None or r["tone"] == tone]
        return sum(bool(r[key]) for r in sel) / len(sel) if sel else float("nan")

    return {"label": label, "cases": n, "passed": share("passed"),
            "by_tone": {t: share("passed", t) for t in TONES if any(r["tone"] == t for r in rows)},
            "cut": share("cut"), "lost": share("lost"), "added": share("added"), "unfilled": share("unfilled"),
            "lost_question": share("lost_question"), "asking": sum(asks(t) for _, t, _ in cases),
            "errors": share("error"),
            "cloud_calls": share("cloud_call"),
            "written_in_cloud": sum(cloud_only or r["tier"] != "device" for r in rows) / n,
            "median_s": statistics.median(r["seconds"] for r in rows),
            "total_s": sum(r["seconds"] for r in rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N emails")
    ap.add_argument("--tones", default=",".join(TONES), help="comma-separated tones")
    ap.add_argument("--cloud-alone", action="store_true", help="also run the cloud model alone on every text")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    tones = [t for t in args.tones.split(",") if t]
    if not tones or set(tones) - set(TONES):
        ap.error(f"--tones takes some of: {', '.join(TONES)}")
    console = Console(width=None if sys.stdout.isatty() else 200)
    texts = load_texts()[: args.limit or None]
    cases = [(name, text, tone) for name, text in texts for tone in tones]
    started = datetime.now(timezone.utc)
    router = Router(RouterConfig(cascade=["rewrite"]), device=DeviceTier(DEVICE_MODEL),
                    private_cloud=DeviceTier(CLOUD_MODEL), state=DeviceState())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        device = run(f"device ({DEVICE_MODEL})", cases, lambda t, tone: rewrite(t, tone, model=DEVICE_MODEL), progress)
        cascade = run("cascade (device, check fails twice → cloud)", cases,
                      lambda t, tone: rewrite(t, tone, router=router), progress)
        cloud = run(f"cloud ({CLOUD_MODEL}) for every text", cases,
                    lambda t, tone: rewrite(t, tone, model=CLOUD_MODEL), progress,
                    cloud_only=True) if args.cloud_alone else None
    runs = [r for r in (device, cascade, cloud) if r]
    table = Table(title=f"Rewrites of {len(texts)} AgentDojo emails × {len(tones)} tones ({len(cases)} cases)")
    for col in ("run", "check passed", *(f"passed {t}" for t in tones), "cut", "lost a number", "made one up",
                "blanks", "lost a question", "cloud calls", "written in cloud", "median s", "total s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in runs:
        table.add_row(r["label"], f"{r['passed']:.1%}", *(f"{r['by_tone'][t]:.1%}" for t in tones),
                      f"{r['cut']:.1%}", f"{r['lost']:.1%}", f"{r['added']:.1%}", f"{r['unfilled']:.1%}",
                      f"{r['lost_question'] * r['cases']:.0f} of {r['asking']}", f"{r['cloud_calls']:.1%}",
                      f"{r['written_in_cloud']:.1%}", f"{r['median_s']:.2f}", f"{r['total_s']:.0f}")
    console.print(table)
    lift = cascade["passed"] / device["passed"] if device["passed"] else float("nan")
    line = (f"cascade/device passed {lift:.3f}x with {cascade['cloud_calls']:.1%} of cases sent to the cloud; "
            f"time vs device alone: {cascade['total_s'] / device['total_s']:.2f}x")
    if cloud:
        q = cascade["passed"] / cloud["passed"] if cloud["passed"] else float("nan")
        line += f"; cascade/cloud {q:.3f}x; cloud alone vs device alone: {cloud['total_s'] / device['total_s']:.2f}x"
    console.print(line)
    for r in cascade["rows"]:
        if r["cloud_call"] or not r["passed"]:
            why = r["error"] or ", ".join(filter(None, ["cut" if r["cut"] else "", *(f"lost {n}" for n in r["lost"]),
                                                        *(f"added {n}" for n in r["added"]), *r["unfilled"],
                                                        "lost the question" if r["lost_question"] else ""]))
            console.print(f"  {r['tone']:<12} {r['text'][:44]:<44} → {r['tier']}"
                          f"{' (passed)' if r['passed'] else ' (' + why + ')'}", markup=False, highlight=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"
    console.print(f"{started:%Y-%m-%d %H:%M} UTC, {machine}")
    if args.json:
        args.json.write_text(json.dumps({"date": started.isoformat(timespec="minutes"), "machine": machine,
                                         "tones": tones, "runs": runs}, indent=2, default=str))


if __name__ == "__main__":
    main()
