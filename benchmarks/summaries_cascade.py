#!/usr/bin/env python
"""Text summaries: the device alone, the device with its summarize cascade, and the cloud model alone.

Texts: the documents of AgentDojo's workspace cloud drive (``inspect-evals``, shipped in a PyPI
package: meeting notes, plans, CSV exports, a journal, recipes) and the inbox's longer emails
(``--min-chars``), each summarized in three forms: ``summary``, ``key_points`` and ``table``.

Usable is what ``writing.summarize`` shows as the model's own work: an answer with no number
the text lacks and, for a list or a table, one that parses; not an error ("no usable
summary") and not the extractive fallback (the text's opening sentences). That is the check
the cascade escalates on, so the figure says how often each run gives the user a summary it
did not have to replace, not how good the summary reads.

- device: ``summarize(text, form, model=qwen2.5-0.5b)`` (greedy, one sampled retry)
- cascade: the same through a ``Router`` whose private cloud is the cloud model in this process
  (``DeviceTier("qwen2.5-1.5b")``, standing in for a node: ``benchmarks/cloud.py`` measures the
  transport); a text whose device answer and retry are both unusable goes there, pseudonymized
- cloud (``--cloud-alone``): ``summarize(text, form, model=qwen2.5-1.5b)`` for every text, names
  in the clear; about 1.5x the device's time again, so it is not run by default

    .venv/bin/python benchmarks/summaries_cascade.py [--limit N] [--forms summary,table] [--cloud-alone] [--json out.json]
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
from tether.features._common import numbers_in  # noqa: E402
from tether.features.writing import summarize  # noqa: E402
from tether.routing.config import RouterConfig  # noqa: E402
from tether.routing.router import Router  # noqa: E402
from tether.routing.state import DeviceState  # noqa: E402
from tether.routing.tiers import DeviceTier  # noqa: E402

DEVICE_MODEL, CLOUD_MODEL = "qwen2.5-0.5b", "qwen2.5-1.5b"
FORMS = ("summary", "key_points", "table")
SLOT = re.compile(r"\{[a-z_0-9]+\}")


def load_texts(min_chars: int) -> list[tuple[str, str]]:
    """(name, text): every cloud-drive document and each email body of at least ``min_chars``."""
    import inspect_evals

    suite = Path(inspect_evals.__file__).parent / "agentdojo/data/suites/workspace/include"
    out = []
    for f in yaml.safe_load((suite / "cloud_drive.yaml").read_text())["initial_files"]:
        text = SLOT.sub("", f["content"]).strip()
        if text:
            out.append((f["filename"], text))
    for e in yaml.safe_load((suite / "inbox.yaml").read_text())["initial_emails"]:
        body = SLOT.sub("", e["body"]).strip()
        if len(body) >= min_chars:
            out.append((f"mail: {e['subject']}", f"Subject: {e['subject']}\n\n{body}"))
    return out


def _usable(result, text: str) -> bool:
    return (not result.fallback and bool(result.text.strip())
            and not numbers_in(result.text, words=False) - numbers_in(text))


def run(label: str, cases, call, progress: Progress, *, cloud_only: bool = False) -> dict:
    task = progress.add_task(label, total=len(cases))
    rows = []
    for name, text, form in cases:
        start = time.perf_counter()
        row = {"text": name, "form": form}
        try:
            result = call(text, form)
            row |= {"usable": _usable(result, text), "fallback": result.fallback, "error": "", "tier": result.tier,
                    "route": result.route, "summary": result.text}
        except TetherError as exc:
            # the error names the route: "… after a retry (device (cascade): …; device answer escalated …)"
            row |= {"usable": False, "fallback": False, "error": str(exc), "tier": "device", "route": str(exc),
                    "summary": ""}
        row["seconds"] = time.perf_counter() - start
        row["cloud_call"] = (cloud_only or row["tier"] != "device" or "device answer escalated" in row["route"]
                             or "escalation failed" in row["route"])
        rows.append(row)
        progress.advance(task)
    n = len(rows)

    def share(key: str, form: str | None = None) -> float:
        sel = [r for r in rows if form is None or r["form"] == form]
        return sum(bool(r[key]) for r in sel) / len(sel) if sel else float("nan")

    return {"label": label, "cases": n, "usable": share("usable"),
            "by_form": {f: share("usable", f) for f in FORMS if any(r["form"] == f for r in rows)},
            "fallback": share("fallback"), "errors": share("error"), "cloud_calls": share("cloud_call"),
            "written_in_cloud": sum(cloud_only or r["tier"] != "device" for r in rows) / n,
            "median_s": statistics.median(r["seconds"] for r in rows),
            "total_s": sum(r["seconds"] for r in rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N texts")
    ap.add_argument("--forms", default=",".join(FORMS), help="comma-separated summary forms")
    ap.add_argument("--min-chars", type=int, default=250, help="emails at least this long are texts too")
    ap.add_argument("--cloud-alone", action="store_true", help="also run the cloud model alone on every text")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    forms = [f for f in args.forms.split(",") if f]
    if not forms or set(forms) - set(FORMS):
        ap.error(f"--forms takes some of: {', '.join(FORMS)}")
    console = Console(width=None if sys.stdout.isatty() else 150)
    texts = load_texts(args.min_chars)[: args.limit or None]
    cases = [(name, text, form) for name, text in texts for form in forms]
    started = datetime.now(timezone.utc)
    router = Router(RouterConfig(cascade=["summarize"]), device=DeviceTier(DEVICE_MODEL),
                    private_cloud=DeviceTier(CLOUD_MODEL), state=DeviceState())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        device = run(f"device ({DEVICE_MODEL})", cases, lambda t, f: summarize(t, f, model=DEVICE_MODEL), progress)
        cascade = run("cascade (device, unusable twice → cloud)", cases,
                      lambda t, f: summarize(t, f, router=router), progress)
        cloud = run(f"cloud ({CLOUD_MODEL}) for every text", cases,
                    lambda t, f: summarize(t, f, model=CLOUD_MODEL), progress, cloud_only=True) if args.cloud_alone else None
    runs = [r for r in (device, cascade, cloud) if r]
    table = Table(title=f"Text summaries of {len(texts)} AgentDojo documents and emails × {len(forms)} forms "
                        f"({len(cases)} cases)")
    for col in ("run", "usable", *(f"usable {f}" for f in forms), "extractive", "error", "cloud calls",
                "written in cloud", "median s", "total s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    for r in runs:
        table.add_row(r["label"], f"{r['usable']:.1%}", *(f"{r['by_form'][f]:.1%}" for f in forms),
                      f"{r['fallback']:.1%}", f"{r['errors']:.1%}", f"{r['cloud_calls']:.1%}",
                      f"{r['written_in_cloud']:.1%}", f"{r['median_s']:.2f}", f"{r['total_s']:.0f}")
    console.print(table)
    lift = cascade["usable"] / device["usable"] if device["usable"] else float("nan")
    line = (f"cascade/device usable {lift:.3f}x with {cascade['cloud_calls']:.1%} of cases sent to the cloud; "
            f"time vs device alone: {cascade['total_s'] / device['total_s']:.2f}x")
    if cloud:
        q = cascade["usable"] / cloud["usable"] if cloud["usable"] else float("nan")
        line += f"; cascade/cloud {q:.3f}x; cloud alone vs device alone: {cloud['total_s'] / device['total_s']:.2f}x"
    console.print(line)
    for r in cascade["rows"]:
        if r["cloud_call"] or not r["usable"]:
            console.print(f"  {r['form']:<10} {r['text'][:48]:<48} → {r['tier']}"
                          f"{' (usable)' if r['usable'] else ' (not usable: ' + (r['error'] or 'extractive') + ')'}",
                          markup=False, highlight=False)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"
    console.print(f"{started:%Y-%m-%d %H:%M} UTC, {machine}")
    if args.json:
        args.json.write_text(json.dumps({"date": started.isoformat(timespec="minutes"), "machine": machine,
                                         "forms": forms, "runs": runs}, indent=2, default=str))


if __name__ == "__main__":
    main()
