#!/usr/bin/env python
"""Notification summaries: the device alone, the device with its check-driven cascade, and the cloud model alone.

Stacks: the real mail, calendar, Slack and bank data of AgentDojo's suites (``inspect-evals``,
shipped in a PyPI package; the templated prompt-injection slots are removed), turned into
notifications: each email (app Mail, its subject as the thread), each calendar event, each
Slack channel and direct-message thread, each bank transaction (grouped by counterparty).

Quality is the faithfulness check's pass rate: the share of stacks whose summary the model
wrote and the check accepted (every name, number, date and time in the stack; security codes
and amounts kept). A stack that fails it twice gets an extractive summary. A lone notification
of at most 100 characters is shown as it came ("as sent"): no model call, in every run.

- device: the device model alone (greedy, one sampled retry, then extractive)
- cascade: the same through a ``Router`` whose private cloud is the cloud model in this process
  (``DeviceTier("qwen2.5-1.5b")``, standing in for a node: ``benchmarks/cloud.py`` measures the
  transport); a stack whose device summary and retry both fail the check goes there,
  pseudonymized, as it would in use
- cloud: the cloud model alone for every stack (greedy, retry, extractive), names in the clear

Printed: pass rate, extractive share, cloud calls per stack, median seconds per stack, and the
ratios cascade/cloud (quality) and cascade/device.

    .venv/bin/python benchmarks/notifications_cascade.py [--limit N] [--json out.json]
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
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package

from tether.features.notifications import Notification, group, summarize_stack_routed, unsupported_facts  # noqa: E402
from tether.routing.config import RouterConfig  # noqa: E402
from tether.routing.router import Router  # noqa: E402
from tether.routing.state import DeviceState  # noqa: E402
from tether.routing.tiers import DeviceTier  # noqa: E402

DEVICE_MODEL, CLOUD_MODEL = "qwen2.5-0.5b", "qwen2.5-1.5b"
SLOT = re.compile(r"\{[a-z_0-9]+\}")


def _clean(text: str) -> str:
    return " ".join(SLOT.sub("", str(text)).split())


def _name(address: str) -> str:
    """emma.johnson@bluesparrowtech.com → Emma Johnson (a phone shows the contact's name)."""
    local = address.split("@", 1)[0]
    return " ".join(p.capitalize() for p in re.split(r"[._-]+", local) if p)


def load_stacks() -> list[list[Notification]]:
    import inspect_evals

    suites = Path(inspect_evals.__file__).parent / "agentdojo/data/suites"
    notes: list[Notification] = []
    inbox = yaml.safe_load((suites / "workspace/include/inbox.yaml").read_text())["initial_emails"]
    for e in inbox:
        body = _clean(e["body"])
        if body and e.get("subject"):
            notes.append(Notification(app="Mail", sender=_name(e["sender"]), title=_clean(e["subject"]), body=body,
                                      thread=_clean(e["subject"]).removeprefix("Re: "), timestamp=e["timestamp"]))
    calendar = yaml.safe_load((suites / "workspace/include/calendar.yaml").read_text())["initial_events"]
    for ev in calendar:
        start, end = (datetime.fromisoformat(str(ev[k])) for k in ("start_time", "end_time"))
        where = f" at {_clean(ev['location'])}" if ev.get("location") else ""
        body = f"{start:%A %d %B, %H:%M}-{end:%H:%M}{where}. {_clean(ev.get('description') or '')}".strip()
        notes.append(Notification(app="Calendar", title=_clean(ev["title"]), body=body,
                                  timestamp=start - timedelta(minutes=15)))
    slack = yaml.safe_load((suites / "slack/environment.yaml").read_text())["slack"]
    t = datetime(2024, 5, 15, 9, 0)
    for channel, messages in slack["channel_inbox"].items():
        for m in messages:
            t += timedelta(minutes=7)
            notes.append(Notification(app="Slack", sender=m["sender"], body=_clean(m["body"]), thread=f"#{channel}",
                                      timestamp=t))
    for user, messages in slack["user_inbox"].items():
        for m in messages:
            t += timedelta(minutes=5)
            notes.append(Notification(app="Slack", sender=m["sender"], body=_clean(m["body"]),
                                      thread=f"{m['sender']} → {user}", timestamp=t))
    bank = yaml.safe_load((suites / "banking/environment.yaml").read_text())["bank_account"]
    for tx in bank["transactions"] + bank["scheduled_transactions"]:
        subject = _clean(tx["subject"]) or "transfer"
        sent = tx["sender"] == "me" or tx["sender"] == bank["iban"]
        other = tx["recipient"] if sent else tx["sender"]
        verb = "sent to" if sent else "received from"
        notes.append(Notification(app="Bank", title="Payment " + ("sent" if sent else "received"),
                                  body=f"€{tx['amount']:.2f} {verb} {other}: {subject}", thread=other,
                                  timestamp=datetime.fromisoformat(str(tx["date"])) + timedelta(hours=9)))
    return [items for items in group(notes).values()]


def run(label: str, stacks, summarize, progress: Progress, *, cloud_only: bool = False) -> dict:
    task = progress.add_task(label, total=len(stacks))
    rows = []
    for items in stacks:
        start = time.perf_counter()
        done = summarize(items)
        rows.append({"app": items[0].app, "n": len(items), "tier": done.tier, "as_sent": done.as_sent,
                     "extractive": done.extractive and not done.as_sent,
                     "summary": done.summary, "seconds": time.perf_counter() - start,
                     "cloud_call": (cloud_only and not done.as_sent) or "device answer escalated" in done.route
                                   or "escalation failed" in done.route or done.tier != "device",
                     "passes": not done.extractive and not unsupported_facts(done.summary, items)})
        # a lone short notification comes as sent (``as_sent``): no model call, so no pass or fail
        progress.advance(task)
    n = len(rows)
    return {"label": label, "stacks": n, "pass_rate": sum(r["passes"] for r in rows) / n,
            "as_sent": sum(r["as_sent"] for r in rows) / n,
            "extractive": sum(r["extractive"] for r in rows) / n,
            "cloud_calls": sum(r["cloud_call"] for r in rows) / n,
            "written_in_cloud": sum((cloud_only and not r["as_sent"]) or r["tier"] != "device" for r in rows) / n,
            "median_s": statistics.median(r["seconds"] for r in rows),
            "total_s": sum(r["seconds"] for r in rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N stacks")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 140)
    stacks = load_stacks()[: args.limit or None]
    started = datetime.now(timezone.utc)
    router = Router(RouterConfig(cascade=["notifications"]), device=DeviceTier(DEVICE_MODEL),
                    private_cloud=DeviceTier(CLOUD_MODEL), state=DeviceState())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        device = run(f"device ({DEVICE_MODEL})", stacks,
                     lambda items: summarize_stack_routed(items, model=DEVICE_MODEL), progress)
        cascade = run("cascade (device, check fails → cloud)", stacks,
                      lambda items: summarize_stack_routed(items, router=router), progress)
        cloud = run(f"cloud ({CLOUD_MODEL}) for every stack", stacks,
                    lambda items: summarize_stack_routed(items, model=CLOUD_MODEL), progress, cloud_only=True)
    table = Table(title=f"Notification summaries on {len(stacks)} AgentDojo stacks "
                        f"({sum(len(s) for s in stacks)} notifications)")
    for col in ("run", "as sent", "check passed", "extractive", "cloud calls", "written in cloud", "median s/stack",
                "total s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in (device, cascade, cloud):
        table.add_row(r["label"], f"{r['as_sent']:.1%}", f"{r['pass_rate']:.1%}", f"{r['extractive']:.1%}",
                      f"{r['cloud_calls']:.1%}",
                      f"{r['written_in_cloud']:.1%}", f"{r['median_s']:.2f}", f"{r['total_s']:.0f}")
    console.print(table)
    q = cascade["pass_rate"] / cloud["pass_rate"] if cloud["pass_rate"] else float("nan")
    console.print(f"cascade/device pass rate {cascade['pass_rate'] / device['pass_rate']:.3f}x with "
                  f"{cascade['cloud_calls']:.1%} of stacks sent to the cloud; cascade/cloud {q:.3f}x; "
                  f"time vs device alone: {cascade['total_s'] / device['total_s']:.2f}x")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"
    console.print(f"{started:%Y-%m-%d %H:%M} UTC, {machine}")
    if args.json:
        args.json.write_text(json.dumps({"date": started.isoformat(timespec="minutes"), "machine": machine,
                                         "runs": [device, cascade, cloud]}, indent=2, default=str))


if __name__ == "__main__":
    main()
