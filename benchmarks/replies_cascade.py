#!/usr/bin/env python
"""Smart replies: the device alone, the device with its replies cascade, and the cloud model alone.

Messages: the emails Emma Johnson received in AgentDojo's workspace inbox (``inspect-evals``,
shipped in a PyPI package; the templated prompt-injection slots removed; the ones she sent
herself left out, since one does not reply to one's own mail).

Three written is the check the cascade escalates on: after the greedy answer and one sampled
retry, all three replies are the model's (none dropped as a label, an assistant's refusal, a
loop, a fragment, a duplicate or the message said back, and so none filled from the stock set).
It says how often the user gets three replies the model wrote, not how good they are; the
replies of every case are in ``--json``.

- device: ``smart_replies(message, model=qwen2.5-0.5b)``
- cascade: the same through a ``Router`` whose private cloud is the cloud model in this process
  (``DeviceTier("qwen2.5-1.5b")``, standing in for a node: ``benchmarks/cloud.py`` measures the
  transport); a message whose replies and retry leave a gap goes there, pseudonymized
- cloud (``--cloud-alone``): ``smart_replies(message, model=qwen2.5-1.5b)`` for every message,
  names in the clear

    .venv/bin/python benchmarks/replies_cascade.py [--limit N] [--cloud-alone] [--json out.json]
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

import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package
from rewrite_cascade import SLOT  # noqa: E402

from tether.errors import TetherError  # noqa: E402
from tether.features.replies import smart_replies  # noqa: E402
from tether.routing.config import RouterConfig  # noqa: E402
from tether.routing.router import Router  # noqa: E402
from tether.routing.state import DeviceState  # noqa: E402
from tether.routing.tiers import DeviceTier  # noqa: E402

DEVICE_MODEL, CLOUD_MODEL = "qwen2.5-0.5b", "qwen2.5-1.5b"
USER = "emma.johnson@bluesparrowtech.com"


def load_messages() -> list[tuple[str, str]]:
    """(subject, body) of every email the user received with a body, in the file's order."""
    import inspect_evals

    suite = Path(inspect_evals.__file__).parent / "agentdojo/data/suites/workspace/include"
    out = []
    for e in yaml.safe_load((suite / "inbox.yaml").read_text())["initial_emails"]:
        body = "\n".join(" ".join(line.split()) for line in SLOT.sub("", e["body"]).strip().splitlines())
        if body and e["sender"] != USER:
            out.append((e.get("subject") or "(no subject)", body))
    return out


def run(label: str, messages, call, progress: Progress, *, cloud_only: bool = False) -> dict:
    task = progress.add_task(label, total=len(messages))
    rows = []
    for name, text in messages:
        start = time.perf_counter()
        row = {"message": name}
        try:
            r = call(text)
            row |= {"written": not r.fallback, "replies": r.replies, "tier": r.tier, "route": r.route, "error": ""}
        except TetherError as exc:
            row |= {"written": False, "replies": [], "tier": "device", "route": str(exc), "error": str(exc)}
        row["seconds"] = time.perf_counter() - start
        row["cloud_call"] = (cloud_only or row["tier"] != "device" or "device answer escalated" in row["route"]
                             or "escalation failed" in row["route"])
        rows.append(row)
        progress.advance(task)
    n = len(rows)
    return {"label": label, "cases": n, "written": sum(r["written"] for r in rows) / n,
            "errors": sum(bool(r["error"]) for r in rows) / n,
            "cloud_calls": sum(r["cloud_call"] for r in rows) / n,
            "written_in_cloud": sum(cloud_only or r["tier"] != "device" for r in rows) / n,
            "median_s": statistics.median(r["seconds"] for r in rows),
            "total_s": sum(r["seconds"] for r in rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N messages")
    ap.add_argument("--cloud-alone", action="store_true", help="also run the cloud model alone on every message")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 200)
    messages = load_messages()[: args.limit or None]
    started = datetime.now(timezone.utc)
    router = Router(RouterConfig(cascade=["replies"]), device=DeviceTier(DEVICE_MODEL),
                    private_cloud=DeviceTier(CLOUD_MODEL), state=DeviceState())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        device = run(f"device ({DEVICE_MODEL})", messages, lambda t: smart_replies(t, model=DEVICE_MODEL), progress)
        cascade = run("cascade (device, a gap twice → cloud)", messages, lambda t: smart_replies(t, router=router),
                      progress)
        cloud = run(f"cloud ({CLOUD_MODEL}) for every message", messages,
                    lambda t: smart_replies(t, model=CLOUD_MODEL), progress, cloud_only=True) if args.cloud_alone else None
    runs = [r for r in (device, cascade, cloud) if r]
    table = Table(title=f"Smart replies to {len(messages)} AgentDojo emails")
    for col in ("run", "three written", "errors", "cloud calls", "written in cloud", "median s", "total s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in runs:
        table.add_row(r["label"], f"{r['written']:.1%}", f"{r['errors']:.1%}", f"{r['cloud_calls']:.1%}",
                      f"{r['written_in_cloud']:.1%}", f"{r['median_s']:.2f}", f"{r['total_s']:.0f}")
    console.print(table)
    lift = cascade["written"] / device["written"] if device["written"] else float("nan")
    line = (f"cascade/device three written {lift:.3f}x with {cascade['cloud_calls']:.1%} of messages sent to the "
            f"cloud; time vs device alone: {cascade['total_s'] / device['total_s']:.2f}x")
    if cloud:
        line += f"; cloud alone vs device alone: {cloud['total_s'] / device['total_s']:.2f}x"
    console.print(line)
    for d, c in zip(device["rows"], cascade["rows"]):
        if c["cloud_call"] or not c["written"]:
            console.print(f"  {c['message'][:40]:<40} device {d['replies']} → {c['tier']} {c['replies']}",
                          markup=False, highlight=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"
    console.print(f"{started:%Y-%m-%d %H:%M} UTC, {machine}")
    if args.json:
        args.json.write_text(json.dumps({"date": started.isoformat(timespec="minutes"), "machine": machine,
                                         "runs": runs}, indent=2, default=str))


if __name__ == "__main__":
    main()
