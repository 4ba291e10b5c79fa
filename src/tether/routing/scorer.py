"""A standardized linear score with thresholds calibrated to a fraction, shipped as JSON.

Both learned routing signals are this shape: ``DifficultyModel`` scores a prompt before
anything runs, ``EscalationModel`` scores the device's answer afterwards. Each predicts the
quality the cloud model would add (cloud score minus device score, 0-1 scale) and is trained
by ``scripts/train_router.py``; the thresholds come from out-of-fold predictions on the
training tasks, so that "send 30%" means about 30% of requests like those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from tether.errors import RouterConfigError

S = TypeVar("S", bound="LinearScorer")


@dataclass
class LinearScorer:
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray
    calibration: dict[str, float]  # fraction sent to the cloud (as a string, e.g. "0.30") → threshold on the score
    meta: dict[str, Any]
    impute: np.ndarray | None = None  # the value a missing (NaN) feature takes; default: its training mean

    packaged: ClassVar[str] = ""  # file name under tether/routing/data
    what: ClassVar[str] = "scorer"

    def score(self, x: np.ndarray) -> float:
        if x.shape != self.coef.shape:
            raise RouterConfigError(f"{self.what} expects {self.coef.shape[0]} features, got {x.shape[0]}")
        missing = np.isnan(x)
        if missing.any():
            x = np.where(missing, self.mean if self.impute is None else self.impute, x)
        return float(((x - self.mean) / self.scale) @ self.coef + self.intercept)

    def threshold_for(self, cloud_fraction: float) -> float:
        """The score above which ``cloud_fraction`` of the training tasks went to the cloud
        (interpolated; it falls as the fraction grows)."""
        points = sorted((float(f), t) for f, t in self.calibration.items())
        if cloud_fraction <= points[0][0]:
            return points[0][1]
        for (f0, t0), (f1, t1) in zip(points, points[1:]):
            if cloud_fraction <= f1:
                return t0 + (t1 - t0) * (cloud_fraction - f0) / (f1 - f0)
        return points[-1][1]

    def to_json(self) -> dict[str, Any]:
        data = {"coef": self.coef.tolist(), "intercept": self.intercept, "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "calibration": self.calibration, "meta": self.meta}
        if self.impute is not None:
            data["impute"] = self.impute.tolist()
        return data

    @classmethod
    def from_json(cls: type[S], data: dict[str, Any]) -> S:
        try:
            model = cls(np.asarray(data["coef"], dtype=np.float32), float(data["intercept"]),
                        np.asarray(data["mean"], dtype=np.float32), np.asarray(data["scale"], dtype=np.float32),
                        {str(k): float(v) for k, v in data["calibration"].items()}, dict(data.get("meta", {})),
                        None if data.get("impute") is None else np.asarray(data["impute"], dtype=np.float32))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RouterConfigError(f"{cls.what} is malformed: {exc}") from exc
        impute_ok = model.impute is None or model.impute.shape == model.coef.shape
        if not (model.coef.shape == model.mean.shape == model.scale.shape) or not impute_ok or not model.calibration:
            raise RouterConfigError(f"{cls.what} is malformed: coef, mean, scale and impute differ in length "
                                    "or there is no calibration")
        return model

    @classmethod
    def load(cls: type[S], path: str | Path | None = None) -> S:
        try:
            text = (Path(path).read_text() if path
                    else (resources.files("tether.routing") / "data" / cls.packaged).read_text())
            return cls.from_json(json.loads(text))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RouterConfigError(f"cannot read the {cls.what} {path or '(packaged)'}: {exc}") from exc
