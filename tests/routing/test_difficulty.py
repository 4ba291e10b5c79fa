"""The packaged difficulty model: loads, scores fast, and its calibration is usable."""

from __future__ import annotations

import time

import numpy as np
import pytest

from tether.errors import RouterConfigError
from tether.routing.difficulty import DifficultyModel, featurize


def test_packaged_model_scores_prompts_in_a_few_ms():
    model = DifficultyModel.load()
    assert model.meta["device"] == "qwen2.5-0.5b" and model.meta["cloud"] == "qwen2.5-1.5b"
    assert model.coef.shape == featurize("x").shape
    prompts = [("Hi! How was your weekend?", "chat"),
               ("A baker sells 14 loaves a day at $3 each. How much does she earn in 6 days?", "gsm8k"),
               ("Write a detailed project proposal for a community garden.", "writing")]
    model.p_device_ok(*prompts[0])  # load the embedding once
    start = time.perf_counter()
    scores = [model.p_device_ok(text, kind) for text, kind in prompts * 10]
    per_call_ms = (time.perf_counter() - start) / len(scores) * 1000
    assert all(0.0 <= p <= 1.0 for p in scores)
    assert per_call_ms < 50  # generous: a few ms on a quiet machine


def test_calibrated_thresholds_grow_with_the_cloud_fraction():
    model = DifficultyModel.load()
    fractions = np.linspace(0, 1, 21)
    thresholds = [model.threshold_for(f) for f in fractions]
    assert all(a <= b + 1e-9 for a, b in zip(thresholds, thresholds[1:]))
    assert thresholds[0] == 0.0 and thresholds[-1] >= 1.0  # 0% sends nothing, 100% sends everything


def test_threshold_interpolates_between_calibration_points():
    dims = featurize("x").shape[0]
    m = DifficultyModel(np.zeros(dims, np.float32), 0.0, np.zeros(dims, np.float32), np.ones(dims, np.float32),
                        {"0.00": 0.0, "0.50": 0.4, "1.00": 1.0}, {})
    assert m.threshold_for(0.25) == pytest.approx(0.2)
    assert m.threshold_for(0.75) == pytest.approx(0.7)
    assert m.p_device_ok("anything") == pytest.approx(0.5)  # zero weights: no opinion


def test_malformed_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "difficulty.json"
    bad.write_text('{"coef": [1, 2]}')
    with pytest.raises(RouterConfigError, match="malformed"):
        DifficultyModel.load(bad)
    with pytest.raises(RouterConfigError, match="cannot read"):
        DifficultyModel.load(tmp_path / "missing.json")
