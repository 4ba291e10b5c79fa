"""The packaged difficulty model: loads, scores fast, learned the main signal, calibration usable."""

from __future__ import annotations

import json
import time
from pathlib import Path

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
    model.cloud_gain(*prompts[0])  # load the embedding once
    start = time.perf_counter()
    gains = [model.cloud_gain(text, kind) for text, kind in prompts * 10]
    per_call_ms = (time.perf_counter() - start) / len(gains) * 1000
    assert all(-1.5 < g < 1.5 for g in gains)  # a quality gap on a 0-1 scale
    assert per_call_ms < 50  # generous: a few ms on a quiet machine


def test_packaged_model_expects_more_from_the_cloud_on_math_than_on_chat():
    """On held-out prompts the trained model never saw, the cloud's predicted gain is larger for
    GSM8K problems (where the labels show the 1.5B model gains most) than for chat turns."""
    model = DifficultyModel.load()
    tasks = [json.loads(line) for line in (Path(__file__).parents[2] / "data/routing/tasks.jsonl").open()]
    held_out = [t for t in tasks if t["split"] == "test"]
    mean_gain = {}
    for kind in ("gsm8k", "chat"):
        prompts = [m["content"] for t in held_out if t["kind"] == kind for m in t["messages"] if m["role"] == "user"]
        assert len(prompts) >= 20
        mean_gain[kind] = np.mean([model.cloud_gain(p, kind) for p in prompts[:40]])
    assert mean_gain["gsm8k"] > mean_gain["chat"]


def test_calibrated_thresholds_fall_as_the_cloud_fraction_grows():
    model = DifficultyModel.load()
    fractions = np.linspace(0, 1, 21)
    thresholds = [model.threshold_for(f) for f in fractions]
    assert all(a >= b - 1e-9 for a, b in zip(thresholds, thresholds[1:]))
    assert thresholds[0] > thresholds[10] > thresholds[-1]


def test_threshold_interpolates_between_calibration_points():
    dims = featurize("x").shape[0]
    m = DifficultyModel(np.zeros(dims, np.float32), 0.0, np.zeros(dims, np.float32), np.ones(dims, np.float32),
                        {"0.00": 0.5, "0.50": 0.1, "1.00": -0.5}, {})
    assert m.threshold_for(0.25) == pytest.approx(0.3)
    assert m.threshold_for(0.75) == pytest.approx(-0.2)
    assert m.cloud_gain("anything") == pytest.approx(0.0)  # zero weights: no opinion


def test_malformed_model_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "difficulty.json"
    bad.write_text('{"coef": [1, 2]}')
    with pytest.raises(RouterConfigError, match="malformed"):
        DifficultyModel.load(bad)
    with pytest.raises(RouterConfigError, match="cannot read"):
        DifficultyModel.load(tmp_path / "missing.json")
