#!/usr/bin/env python
"""Routing benchmark: quality against the fraction of cloud calls, on the held-out split.

Uses the labelled cache in ``data/routing`` (both models' answers to every task,
made by ``scripts/label_routing.py``), so no model runs here: each policy picks a
tier per task and gets that tier's score for it. Only tasks in the ``test`` split,
which ``scripts/train_router.py`` never saw, are used.

Policies:
* all-device, all-cloud;
* random: the cloud for a random fraction f of tasks (its expectation, exact);
* router: the learned difficulty score, thresholds swept to trace the curve, and the
  operating point the packaged calibration gives for ``--target`` (default 0.3);
* router + cascade: the router's device tasks are answered on the device first and
  escalated when the mean token logprob is below a threshold tuned on the train split.

Quality per task: GSM8K 1 if the final number is right, else 0; judged tasks the
judge's 1-9 rating of the chosen answer, rescaled to [0, 1]. Also reports the router's decision latency
on the held-out prompts (all decisions, and those that send the text away, which include the
privacy scan), and writes ``docs/routing-curve.png``.

    .venv/bin/python benchmarks/routing.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from routing_data import load_examples, routing_curve  # noqa: E402

from tether.routing.difficulty import DifficultyModel  # noqa: E402

PLOT = ROOT / "docs" / "routing-curve.png"


def quality(examples: list[dict], to_cloud: np.ndarray) -> float:
    scores = [e["cloud_score"] if c else e["device_score"] for e, c in zip(examples, to_cloud)]
    return float(np.mean(scores))


def cascade_points(examples: list[dict], gain: np.ndarray, lp_threshold: float) -> list[tuple[float, float, float]]:
    """(cloud fraction incl. escalations, quality, escalated share) for the router swept, plus the cascade."""
    order = np.argsort(-gain, kind="stable")
    lps = np.array([e["device_mean_logprob"] if e["device_mean_logprob"] is not None else -9.0 for e in examples])
    out = []
    for k in range(len(examples) + 1):
        routed = np.zeros(len(examples), dtype=bool)
        routed[order[:k]] = True
        escalate = ~routed & (lps < lp_threshold)
        to_cloud = routed | escalate
        out.append((to_cloud.mean(), quality(examples, to_cloud), escalate.mean()))
    return out


def tune_cascade(train: list[dict]) -> float:
    """The logprob threshold that best separates 'device answer worse' on the train split (Youden's J)."""
    lps = np.array([e["device_mean_logprob"] if e["device_mean_logprob"] is not None else -9.0 for e in train])
    bad = np.array([e["device_score"] < e["cloud_score"] for e in train])
    if bad.all() or not bad.any():
        return float(np.median(lps))
    best, best_j = float(np.median(lps)), -1.0
    for t in np.unique(lps):
        tpr = (lps[bad] < t).mean()
        fpr = (lps[~bad] < t).mean()
        if tpr - fpr > best_j:
            best, best_j = float(t), tpr - fpr
    return best


def decision_latency(prompts: list[str], kinds: list[str]) -> dict[str, float]:
    """Router.decide on each prompt, with a private cloud configured. Decisions that send the text
    away include the privacy scan; those that keep it on the device skip it, so both are reported."""
    from tether.routing.config import RouterConfig
    from tether.routing.router import RouteRequest, Router
    from tether.routing.tiers import DeviceTier

    class _Cloud:  # decide() never calls a tier; this only marks the private cloud as configured
        name = "private_cloud"

    router = Router(RouterConfig(third_party=None), device=DeviceTier("qwen2.5-0.5b"), private_cloud=_Cloud())
    router.decide(RouteRequest("warm up the privacy analyzer and the scorer", tier="private_cloud"))
    times, scanned = [], []
    for text, kind in zip(prompts, kinds):
        d = router.decide(RouteRequest(text, kind=kind, max_tokens=256))
        times.append(d.seconds * 1000)
        if d.prepared is not None or d.rule == "privacy":
            scanned.append(d.seconds * 1000)
    pct = lambda xs, q: sorted(xs)[int(q * (len(xs) - 1))] if xs else float("nan")  # noqa: E731
    return {"p50_ms": statistics.median(times), "p95_ms": pct(times, 0.95), "n": len(times),
            "scanned_p50_ms": statistics.median(scanned) if scanned else float("nan"),
            "scanned_p95_ms": pct(scanned, 0.95), "scanned_n": len(scanned)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=float, default=0.3)
    ap.add_argument("--margin", type=float, default=0.25)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()

    examples = load_examples(margin=args.margin)
    train = [e for e in examples if e["split"] == "train"]
    test = [e for e in examples if e["split"] == "test"]
    if len(test) < 10:
        sys.exit(f"only {len(test)} held-out examples are labelled; run scripts/label_routing.py longer")
    model = DifficultyModel.load()
    gain = np.array([model.cloud_gain(e["prompt"], e["kind"]) for e in track(test, description="scoring")])

    all_device = quality(test, np.zeros(len(test), bool))
    all_cloud = quality(test, np.ones(len(test), bool))
    curve = routing_curve(gain, np.array([e["device_score"] for e in test]),
                          np.array([e["cloud_score"] for e in test]))
    lp_threshold = tune_cascade(train)
    cascade = cascade_points(test, gain, lp_threshold)
    tau = model.threshold_for(args.target)
    routed = gain > tau
    point = {"threshold": tau, "cloud_fraction": float(routed.mean()), "quality": quality(test, routed)}
    random_at = lambda f: (1 - f) * all_device + f * all_cloud  # noqa: E731  (exact expectation)

    # The smallest cloud fraction at which each policy reaches 95% of all-cloud quality.
    goal = 0.95 * all_cloud
    first = lambda pts: next((f for f, q, *_ in pts if q >= goal), None)  # noqa: E731
    grid = [i / 20 for i in range(21)]
    router_at = {f: max(q for g, q in curve if g <= f + 1e-9) for f in grid}
    cascade_at = {f: max((q for g, q, _ in cascade if g <= f + 1e-9), default=all_device) for f in grid}
    latency = decision_latency([e["prompt"] for e in test], [e["kind"] for e in test])

    by_kind = {}
    for kind in sorted({e["kind"] for e in test}):
        idx = [i for i, e in enumerate(test) if e["kind"] == kind]
        sub = [test[i] for i in idx]
        by_kind[kind] = {"n": len(idx), "device": quality(sub, np.zeros(len(idx), bool)),
                         "cloud": quality(sub, np.ones(len(idx), bool)),
                         "router_at_target": quality(sub, routed[idx]), "cloud_share_at_target": float(routed[idx].mean())}

    summaries = [i for i, e in enumerate(test) if "device_faithful" in e]
    faithfulness = None
    if summaries:
        rate = lambda to_cloud: float(np.mean([test[i]["cloud_faithful"] if to_cloud[i] else test[i]["device_faithful"]  # noqa: E731
                                               for i in summaries]))
        faithfulness = {"n": len(summaries), "all_device": rate(np.zeros(len(test), bool)),
                        "all_cloud": rate(np.ones(len(test), bool)), "router_at_target": rate(routed)}

    summary = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "held_out": len(test), "train": len(train), "model_meta": model.meta,
        "all_device": all_device, "all_cloud": all_cloud, "goal_95pct": goal,
        "router_at_target": point, "random_at_target_fraction": random_at(point["cloud_fraction"]),
        "router_fraction_for_95pct": first(curve), "cascade_fraction_for_95pct": first(cascade),
        "random_fraction_for_95pct": (goal - all_device) / (all_cloud - all_device) if all_cloud > all_device else 0.0,
        "cascade_logprob_threshold": lp_threshold,
        "router_minus_random_by_fraction": {f"{f:.2f}": router_at[f] - random_at(f) for f in grid},
        "cascade_by_fraction": {f"{f:.2f}": cascade_at[f] for f in grid},
        "escalation_device_tokens_wasted_share": float(np.mean([
            e["device_tokens"] / max(e["device_tokens"] + e["cloud_tokens"], 1)
            for e in test if (e["device_mean_logprob"] if e["device_mean_logprob"] is not None else -9) < lp_threshold]
            or [0.0])),
        "decision_latency": latency, "by_kind": by_kind, "summary_faithfulness": faithfulness,
    }

    table = Table(title=f"routing on {len(test)} held-out tasks (train {len(train)})")
    table.add_column("policy")
    table.add_column("cloud calls", justify="right")
    table.add_column("quality", justify="right")
    table.add_column("vs all-cloud", justify="right")
    for name, frac, q in [("all-device", 0.0, all_device), ("all-cloud", 1.0, all_cloud),
                          (f"router @ target {args.target:.2f}", point["cloud_fraction"], point["quality"]),
                          ("random, same fraction", point["cloud_fraction"], random_at(point["cloud_fraction"]))]:
        table.add_row(name, f"{frac:.0%}", f"{q:.3f}", f"{q / all_cloud:.1%}" if all_cloud else "-")
    Console().print(table)
    print(f"95% of all-cloud quality needs: router {summary['router_fraction_for_95pct']}, "
          f"router+cascade {summary['cascade_fraction_for_95pct']}, random {summary['random_fraction_for_95pct']:.2f} "
          f"of calls in the cloud")
    print(f"decision latency p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms; decisions that send "
          f"the text away (privacy scan included, n={latency['scanned_n']}): p50 {latency['scanned_p50_ms']:.1f} ms, "
          f"p95 {latency['scanned_p95_ms']:.1f} ms")

    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        ax.plot([f for f, _ in curve], [q for _, q in curve], label="router (difficulty)", color="#1f77b4")
        ax.plot([f for f, _, _ in cascade], [q for _, q, _ in cascade], label="router + cascade", color="#2ca02c",
                linestyle="--")
        ax.plot([0, 1], [all_device, all_cloud], label="random", color="#7f7f7f", linestyle=":")
        ax.axhline(goal, color="#d62728", linewidth=0.8, label="95% of all-cloud")
        ax.axvline(0.4, color="#d62728", linewidth=0.8, linestyle=":")
        ax.scatter([point["cloud_fraction"]], [point["quality"]], color="#1f77b4", zorder=3,
                   label=f"calibrated point (target {args.target:.0%})")
        ax.set_xlabel("fraction of requests sent to the cloud model")
        ax.set_ylabel("quality (held-out tasks)")
        ax.set_title(f"qwen2.5-0.5b device vs qwen2.5-1.5b cloud, {len(test)} held-out tasks")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(PLOT)
        print(f"wrote {PLOT.relative_to(ROOT)}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(summary, indent=2, default=float))


if __name__ == "__main__":
    main()
