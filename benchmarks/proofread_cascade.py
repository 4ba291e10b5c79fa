#!/usr/bin/env python
"""Proofreading: the device alone, the device with its proofread cascade, the cloud model alone,
and a random router that sends the same share of texts to the cloud.

Texts and scoring are ``benchmarks/proofread.py``'s: AgentDojo's real inbox emails with errors
injected by fixed rules, scored with ERRANT (precision, recall, F0.5 of edits). The injection
seed here is not that benchmark's: the cascade's check (``tether.features.proofcheck``) was
written while reading what the device missed on that benchmark's texts, so this one draws other
errors into other places of the same emails.

- device: ``proofread(text, model=qwen2.5-0.5b)`` (keep wording, as the user gets it)
- cascade: the same through a ``Router`` whose private cloud is the cloud model in this process
  (``DeviceTier("qwen2.5-1.5b")``, standing in for a node: ``benchmarks/cloud.py`` measures the
  transport); a text whose device proofread still shows an error goes there, pseudonymized
- cloud (``--cloud-alone``): ``proofread(text, model=qwen2.5-1.5b)`` for every text, names in the clear
- random: for each text, the cloud's proofread with the cascade's share as its chance, else the
  device's; the mean over 2,000 draws (needs ``--cloud-alone``)

    .venv/bin/python benchmarks/proofread_cascade.py [--limit N] [--cloud-alone] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from engine import cpu_model  # noqa: E402 - benchmarks/ is not a package
from proofread import counts, f05, load_texts, make_cases, score  # noqa: E402

from tether.features import wording  # noqa: E402
from tether.features.proofcheck import suspects  # noqa: E402
from tether.features.writing import proofread  # noqa: E402
from tether.routing.config import RouterConfig  # noqa: E402
from tether.routing.router import Router  # noqa: E402
from tether.routing.state import DeviceState  # noqa: E402
from tether.routing.tiers import DeviceTier  # noqa: E402

DEVICE_MODEL, CLOUD_MODEL = "qwen2.5-0.5b", "qwen2.5-1.5b"
HELD_OUT_SEED = 7211  # benchmarks/proofread.py draws with 2026
DRAWS = 2000


def run(key: str, label: str, cases: list[dict], call, progress: Progress, *, cloud_only: bool = False) -> None:
    task = progress.add_task(label, total=len(cases))
    for case in cases:
        start = time.perf_counter()
        r = call(case["source"])
        case[key] = r.corrected
        case[f"{key}_s"] = time.perf_counter() - start
        case[f"{key}_cloud"] = (cloud_only or r.tier != "device" or "device answer escalated" in r.route
                                or "escalation failed" in r.route)
        case[f"{key}_route"] = r.route
        case[f"{key}_flagged"] = [f.text for f in r.flagged]
        progress.advance(task)


def random_router(annotator, cases: list[dict], share: float) -> dict:  # noqa: ANN001
    """Expected F0.5, precision and recall of sending each text to the cloud with chance ``share``."""
    per = [(counts(annotator, c, "device"), counts(annotator, c, "cloud")) for c in cases]
    rng = random.Random(0)
    fs, ps, rs = [], [], []
    for _ in range(DRAWS):
        tp = fp = fn = 0
        for device, cloud in per:
            t, f, n = cloud if rng.random() < share else device
            tp, fp, fn = tp + t, fp + f, fn + n
        fs.append(f05(tp, fp, fn))
        ps.append(tp / (tp + fp) if tp + fp else 1.0)
        rs.append(tp / (tp + fn) if tp + fn else 1.0)
    return {"f0.5": statistics.mean(fs), "precision": statistics.mean(ps), "recall": statistics.mean(rs)}


def share_of(share: float | None, n: int) -> str:
    return "-" if share is None else f"{share:.0%} of {n}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=0, help="only the first N cases")
    ap.add_argument("--copies", type=int, default=3, help="corrupted versions of each text")
    ap.add_argument("--cloud-alone", action="store_true", help="also run the cloud model alone, and the random router")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    console = Console(width=None if sys.stdout.isatty() else 200)
    cases = make_cases(load_texts(), args.copies, seed=HELD_OUT_SEED)[: args.limit or None]
    annotator = wording._annotator()
    started = datetime.now(timezone.utc)
    router = Router(RouterConfig(cascade=["proofread"]), device=DeviceTier(DEVICE_MODEL),
                    private_cloud=DeviceTier(CLOUD_MODEL), state=DeviceState())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        run("device", f"device ({DEVICE_MODEL})", cases, lambda t: proofread(t, model=DEVICE_MODEL), progress)
        run("cascade", "cascade (device; an error left → cloud)", cases, lambda t: proofread(t, router=router),
            progress)
        if args.cloud_alone:
            run("cloud", f"cloud ({CLOUD_MODEL}) for every text", cases, lambda t: proofread(t, model=CLOUD_MODEL),
                progress, cloud_only=True)
    keys = ["device", "cascade"] + (["cloud"] if args.cloud_alone else [])
    results = {k: score(annotator, cases, k) for k in keys}
    for k in keys:
        results[k] |= {"cloud_share": sum(c[f"{k}_cloud"] for c in cases) / len(cases),
                       "median_s": statistics.median(c[f"{k}_s"] for c in cases),
                       "total_s": sum(c[f"{k}_s"] for c in cases),
                       "flagged_after": sum(bool(c[f"{k}_flagged"]) for c in cases) / len(cases)}
    share = results["cascade"]["cloud_share"]
    rand = random_router(annotator, cases, share) if args.cloud_alone else None

    n_err = sum(c["errors"] for c in cases)
    table = Table(title=f"Proofreading {len(cases)} AgentDojo emails ({n_err} injected errors, seed {HELD_OUT_SEED})")
    for col in ("run", "precision", "recall", "F0.5", "TP", "FP", "FN", "clean left alone", "restored exactly",
                "sent to the cloud", "flagged after", "median s", "total s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    labels = {"device": f"device alone ({DEVICE_MODEL})", "cascade": "cascade: device, then the cloud if an error is left",
              "cloud": f"cloud alone ({CLOUD_MODEL})"}
    for k in keys:
        s = results[k]
        table.add_row(labels[k], f"{s['precision']:.3f}", f"{s['recall']:.3f}", f"{s['f0.5']:.3f}", str(s["tp"]),
                      str(s["fp"]), str(s["fn"]), share_of(s["clean_unchanged"], s["clean_n"]),
                      share_of(s["restored"], s["corrupted_n"]), f"{s['cloud_share']:.1%}",
                      f"{s['flagged_after']:.1%}", f"{s['median_s']:.2f}", f"{s['total_s']:.0f}")
    if rand:
        table.add_row(f"random router, {share:.1%} to the cloud (mean of {DRAWS:,})", f"{rand['precision']:.3f}",
                      f"{rand['recall']:.3f}", f"{rand['f0.5']:.3f}", "", "", "", "", "", f"{share:.1%}", "", "", "")
    console.print(table)
    d, c = results["device"], results["cascade"]
    line = (f"F0.5 cascade / device alone: {c['f0.5'] / d['f0.5']:.3f}x with {share:.1%} of texts sent to the cloud; "
            f"time {c['total_s'] / d['total_s']:.2f}x the device's")
    if rand:
        cl = results["cloud"]
        line += (f"; cascade / cloud alone {c['f0.5'] / cl['f0.5']:.3f}x at {c['total_s'] / cl['total_s']:.2f}x its time"
                 f"; cascade / random at the same share {c['f0.5'] / rand['f0.5']:.3f}x ({c['f0.5'] - rand['f0.5']:+.3f})")
    console.print(line)
    # the check itself: which texts it sent, against what the device really left
    left = [c for c in cases if counts(annotator, c, "device")[2] > 0]
    sent = [c for c in cases if c["cascade_cloud"]]
    console.print(f"the check: {len(sent)} sent; of the {len(left)} texts whose device proofread missed an error, "
                  f"{sum(c['cascade_cloud'] for c in left)} sent; of the {len(cases) - len(left)} it left nothing "
                  f"to fix in, {sum(c['cascade_cloud'] for c in cases if c not in left)} sent")
    leftover = sum(bool(suspects(c["device"])) for c in cases)
    console.print(f"device proofreads with a suspect left: {leftover} of {len(cases)}")
    machine = f"{platform.machine()}, {os.cpu_count()} cores, {cpu_model()}"
    console.print(f"{started:%Y-%m-%d %H:%M} UTC, {machine}")
    if args.json:
        args.json.write_text(json.dumps({"date": started.isoformat(timespec="minutes"), "machine": machine,
                                         "seed": HELD_OUT_SEED, "results": results, "random": rand, "cases": cases},
                                        indent=1, default=str))


if __name__ == "__main__":
    main()
