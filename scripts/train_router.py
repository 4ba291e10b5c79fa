#!/usr/bin/env python
"""Train the difficulty model from the labelled cache in ``data/routing``.

Target: the quality gap, cloud score minus device score on a 0-1 scale (GSM8K: 1 or 0 by the
final number; judged tasks: the 1-9 ratings rescaled). A ridge regression on it ranks prompts
by what the cloud adds; its strength is chosen by 5-fold cross-validation on the area between
the routing curve and random routing, and thresholds are calibrated on the out-of-fold
predictions (in-sample ones would be overconfident). Only the ``train`` split is used;
``test`` is held out for ``benchmarks/routing.py``. Writes ``src/tether/routing/data/difficulty.json``.

The same recipe trains the cascade's escalation model on features of the device's cached
answer (``tether.routing.escalation``) and writes ``escalation.json`` beside it.

    .venv/bin/python scripts/train_router.py
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.linear_model import Ridge
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from routing_data import device_answer, load_examples, routing_curve  # noqa: E402

from tether.routing.difficulty import DifficultyModel, featurize  # noqa: E402
from tether.routing.escalation import MATH, SELF_CONSISTENCY, EscalationModel, answer_features  # noqa: E402
from tether.routing.scorer import LinearScorer  # noqa: E402

OUT = ROOT / "src" / "tether" / "routing" / "data" / "difficulty.json"
ESCALATION_OUT = OUT.with_name("escalation.json")
FRACTIONS = [round(f, 2) for f in np.arange(0.0, 1.01, 0.05)]
ALPHAS = [1.0, 10.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0]


def gain_over_random(pred: np.ndarray, device: np.ndarray, cloud: np.ndarray) -> float:
    """Mean, over cloud fractions 0..1, of routing-by-``pred`` quality minus random routing's."""
    return float(np.mean([q - ((1 - f) * device.mean() + f * cloud.mean())
                          for f, q in routing_curve(pred, device, cloud)]))


def out_of_fold(X: np.ndarray, y: np.ndarray, alpha: float, seed: int) -> np.ndarray:
    pred = np.zeros(len(y))
    for a, b in KFold(5, shuffle=True, random_state=seed).split(X):
        mean, scale = X[a].mean(axis=0), X[a].std(axis=0) + 1e-6
        pred[b] = Ridge(alpha=alpha).fit((X[a] - mean) / scale, y[a]).predict((X[b] - mean) / scale)
    return pred


def fit(X: np.ndarray, y: np.ndarray, device: np.ndarray, cloud: np.ndarray, seeds: int,
        cls: type[LinearScorer], meta: dict, impute: np.ndarray | None = None) -> tuple[LinearScorer, np.ndarray]:
    """Ridge on the cloud's gain, alpha by cross-validated quality over random routing, thresholds
    from the out-of-fold predictions. Returns the model and those predictions. Missing (NaN)
    features take ``impute``, in training as at run time."""
    if impute is not None:
        X = np.where(np.isnan(X), impute, X)
    scores = {}
    for alpha in track(ALPHAS, description=f"cross-validating the {cls.what}"):
        scores[alpha] = float(np.mean([gain_over_random(out_of_fold(X, y, alpha, s), device, cloud)
                                       for s in range(seeds)]))
    alpha = max(scores, key=scores.get)
    oof = np.mean([out_of_fold(X, y, alpha, s) for s in range(seeds)], axis=0)
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    reg = Ridge(alpha=alpha).fit((X - mean) / scale, y)
    # Cloud when score > threshold: the (1 - f) quantile of the out-of-fold scores sends a fraction f there.
    lo, hi = float(oof.min()) - 1e-6, float(oof.max()) + 1e-6
    calibration = {f"{f:.2f}": (hi if f == 0 else lo if f == 1 else float(np.quantile(oof, 1 - f)))
                   for f in FRACTIONS}
    meta = {"trained": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "target": "cloud_score - device_score (0-1)", "estimator": "ridge", "alpha": alpha,
            "cv_gain_over_random": scores[alpha], "cv_by_alpha": {str(a): round(v, 5) for a, v in scores.items()},
            "device": "qwen2.5-0.5b", "cloud": "qwen2.5-1.5b", **meta}
    model = cls(reg.coef_.astype(np.float32), float(reg.intercept_), mean.astype(np.float32),
                scale.astype(np.float32), calibration, meta, None if impute is None else impute.astype(np.float32))
    return model, oof


def escalation_features(examples: list[dict]) -> np.ndarray:
    return np.stack([answer_features(e["prompt"], e["kind"], device_answer(e)) for e in examples])


def escalation_impute(A: np.ndarray, examples: list[dict]) -> np.ndarray:
    """Column means, except that a math answer without samples counts as an average math answer."""
    impute = np.nanmean(A, axis=0)
    math = np.array([e["kind"] == MATH for e in examples])
    known = A[math, SELF_CONSISTENCY]
    known = known[~np.isnan(known)]
    impute[SELF_CONSISTENCY] = known.mean() if len(known) else 0.0
    return impute


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--margin", type=float, default=0.25, help="rating points (1-9 scale) for the as-good label")
    ap.add_argument("--seeds", type=int, default=5, help="cross-validation repeats")
    ap.add_argument("--out", type=Path, default=OUT.parent, help="folder for difficulty.json and escalation.json")
    args = ap.parse_args()
    out, escalation_out = args.out / OUT.name, args.out / ESCALATION_OUT.name

    examples = [e for e in load_examples(margin=args.margin) if e["split"] == "train"]
    if len(examples) < 20:
        sys.exit(f"only {len(examples)} labelled training examples; run scripts/label_routing.py longer")
    device = np.array([e["device_score"] for e in examples])
    cloud = np.array([e["cloud_score"] for e in examples])
    y = cloud - device
    labels = np.array([e["label"] for e in examples])
    common = {"margin": args.margin, "examples": len(examples), "device_ok": int(labels.sum()),
              "by_kind": {k: int(sum(e["kind"] == k for e in examples)) for k in sorted({e["kind"] for e in examples})}}

    X = np.stack([featurize(e["prompt"], e["kind"]) for e in track(examples, description="prompt features")])
    difficulty, oof = fit(X, y, device, cloud, args.seeds, DifficultyModel,
                          {**common, "features": "cheap text features + wordllama 256-d"})
    auc = float(roc_auc_score(labels, -oof)) if 0 < labels.sum() < len(labels) else float("nan")
    difficulty.meta["cv_roc_auc_device_ok"] = auc
    args.out.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(difficulty.to_json()) + "\n")
    print(f"difficulty: {len(examples)} examples; ridge alpha {difficulty.meta['alpha']:g} (cross-validated quality "
          f"over random routing {difficulty.meta['cv_gain_over_random']:+.4f}; ROC AUC for 'device as good' "
          f"{auc:.3f}); wrote {out}")

    A = escalation_features(examples)
    escalation, _ = fit(A, y, device, cloud, args.seeds, EscalationModel,
                        {**common, "features": "device answer: logprobs, finish, length, math checks, refusal, "
                                               "self-consistency of sampled math answers"},
                        impute=escalation_impute(A, examples))
    escalation_out.write_text(json.dumps(escalation.to_json()) + "\n")
    print(f"escalation: ridge alpha {escalation.meta['alpha']:g} (cross-validated quality over random routing "
          f"{escalation.meta['cv_gain_over_random']:+.4f}); wrote {escalation_out}")


if __name__ == "__main__":
    main()
