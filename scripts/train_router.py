#!/usr/bin/env python
"""Train the difficulty classifier from the labelled cache in ``data/routing``.

Label: 1 when the device answer is as good as the cloud answer (GSM8K: the device
is right or both are wrong; judged tasks: the device's 1-9 rating is at most
``--margin`` below the cloud's). Only the ``train`` split is used; ``test`` is held out
for ``benchmarks/routing.py``. Writes ``src/tether/routing/data/difficulty.json``.

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
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from routing_data import load_examples  # noqa: E402

from tether.routing.difficulty import DifficultyModel, featurize  # noqa: E402

OUT = ROOT / "src" / "tether" / "routing" / "data" / "difficulty.json"
FRACTIONS = [round(f, 2) for f in np.arange(0.0, 1.01, 0.05)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--margin", type=float, default=0.25, help="rating points (1-9 scale)")
    ap.add_argument("--C", type=float, default=0.5, help="inverse regularisation strength")
    args = ap.parse_args()

    examples = [e for e in load_examples(margin=args.margin) if e["split"] == "train"]
    if len(examples) < 20:
        sys.exit(f"only {len(examples)} labelled training examples; run scripts/label_routing.py longer")
    X = np.stack([featurize(e["prompt"], e["kind"]) for e in track(examples, description="features")])
    y = np.array([e["label"] for e in examples])
    mean, scale = X.mean(axis=0), X.std(axis=0) + 1e-6
    Xs = (X - mean) / scale
    clf = LogisticRegression(C=args.C, max_iter=2000, class_weight="balanced")
    folds = min(5, int(min(y.sum(), len(y) - y.sum())))
    cv = cross_val_score(clf, Xs, y, cv=folds, scoring="roc_auc") if folds >= 2 else np.array([float("nan")])
    clf.fit(Xs, y)
    p = clf.predict_proba(Xs)[:, 1]
    # Route to the cloud when p_device_ok < threshold: the f-quantile sends a fraction f there.
    calibration = {f"{f:.2f}": float(np.quantile(p, f)) if 0 < f < 1 else (0.0 if f == 0 else 1.0 + 1e-9)
                   for f in FRACTIONS}
    model = DifficultyModel(clf.coef_[0].astype(np.float32), float(clf.intercept_[0]), mean.astype(np.float32),
                            scale.astype(np.float32), calibration, {
                                "trained": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
                                "examples": len(examples), "positives": int(y.sum()), "margin": args.margin,
                                "C": args.C, "cv_roc_auc": float(np.nanmean(cv)),
                                "by_kind": {k: int(sum(e["kind"] == k for e in examples))
                                            for k in sorted({e["kind"] for e in examples})},
                                "features": "cheap text features + wordllama 256-d", "device": "qwen2.5-0.5b",
                                "cloud": "qwen2.5-1.5b"})
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(model.to_json()) + "\n")
    print(f"{len(examples)} examples ({int(y.sum())} device-ok), cross-validated ROC AUC {np.nanmean(cv):.3f}; "
          f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
