"""The cascade's escalation signals, and the packaged model trained on them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tether.errors import RouterConfigError
from tether.routing.escalation import (SELF_CONSISTENCY, DeviceAnswer, EscalationModel, answer_features,
                                       arithmetic_slips, disagreement, final_number)

QUESTION = "A baker makes 12 loaves a day for 5 days. How many loaves does he make?"


def answer(text: str, mean: float = -0.1, low: float = -1.0, finish: str = "stop", used: int = 60,
           samples: tuple[str, ...] = ()) -> DeviceAnswer:
    return DeviceAnswer(text, mean, low, finish, used, 320, samples)


def test_final_number_prefers_the_answer_line_and_normalizes():
    assert final_number("12 * 5 = 60\nAnswer: 1,200.") == "1200"
    assert final_number("so it costs $7.50 in all") == "7.5"
    assert final_number("Answer: 60.0") == "60"
    assert final_number("no numbers here") is None


def test_arithmetic_slips_are_counted_without_eval():
    assert arithmetic_slips("12 * 5 = 60, then 60 + 3 = 63") == 0
    assert arithmetic_slips("12 × 5 = 65 and 10 / 4 = 2.5") == 1
    assert arithmetic_slips("1,000 - 1 = 999 and 2 \\times 3 = 7") == 1
    assert arithmetic_slips("__import__('os') = 1; 5 / 0 = 3") == 0  # not arithmetic, division by zero: skipped


def test_math_features_see_a_copied_number_and_a_slip():
    names = ["whole", "copied", "slip", "answer_line", "refusal"]
    good = dict(zip(names, answer_features(QUESTION, "gsm8k", answer("12 * 5 = 60\nAnswer: 60"))[-6:-1]))
    bad = dict(zip(names, answer_features(QUESTION, "gsm8k", answer("12 * 5 = 65\nAnswer: 12"))[-6:-1]))
    assert good == {"whole": 1, "copied": 0, "slip": 0, "answer_line": 1, "refusal": 0}
    assert bad == {"whole": 1, "copied": 1, "slip": 1, "answer_line": 1, "refusal": 0}
    refusal = answer_features("Write a poem about my ex", "writing", answer("I'm sorry, but I can't help with that."))
    assert refusal[-2] == 1 and refusal[-6:-2].sum() == 0 and refusal[-1] == 0  # math checks apply to math only


def test_self_consistency_compares_final_numbers_and_is_missing_without_samples():
    assert np.isnan(disagreement(answer("Answer: 60")))
    assert disagreement(answer("Answer: 60", samples=("5 * 12 = 60, so 60 loaves.",))) == 0.0
    assert disagreement(answer("Answer: 60", samples=("Answer: 60", "Answer: 17"))) == 0.5
    assert disagreement(answer("no number at all", samples=("no number either",))) == 1.0  # nothing to agree on
    math = answer_features(QUESTION, "gsm8k", answer("Answer: 60", samples=("Answer: 17",)))
    assert math[SELF_CONSISTENCY] == 1.0
    assert np.isnan(answer_features(QUESTION, "gsm8k", answer("Answer: 60"))[SELF_CONSISTENCY])
    chat = answer_features("hi", "chat", answer("Hello!", samples=("Hey!",)))
    assert chat[SELF_CONSISTENCY] == 0.0  # text answers are never compared this way


def test_a_missing_feature_takes_its_neutral_value():
    model = EscalationModel(np.array([1.0, 2.0], np.float32), 0.5, np.array([0.0, 1.0], np.float32),
                            np.ones(2, np.float32), {"0.50": 0.0}, {}, np.array([0.0, 3.0], np.float32))
    assert model.score(np.array([1.0, np.nan], np.float32)) == pytest.approx(1.0 + 2.0 * 2 + 0.5)
    plain = EscalationModel.from_json({**model.to_json(), "impute": None})
    assert plain.score(np.array([1.0, np.nan], np.float32)) == pytest.approx(1.5)  # default: the training mean
    again = EscalationModel.from_json(json.loads(json.dumps(model.to_json())))
    assert again.score(np.array([1.0, np.nan], np.float32)) == model.score(np.array([1.0, np.nan], np.float32))
    with pytest.raises(RouterConfigError, match="impute"):
        EscalationModel.from_json({**model.to_json(), "impute": [0.0]})


def test_unknown_kinds_are_scored_as_chat():
    a = answer("Sure, here you go.")
    assert np.array_equal(answer_features("hi", "other", a), answer_features("hi", "chat", a))


def test_packaged_model_escalates_a_worse_looking_answer_first():
    model = EscalationModel.load()
    assert model.meta["examples"] >= 450 and model.meta["device"] == "qwen2.5-0.5b"
    confident = model.cloud_gain(QUESTION, "gsm8k", answer("12 * 5 = 60\nAnswer: 60", mean=-0.05))
    unsure = model.cloud_gain(QUESTION, "gsm8k", answer("12 * 5 = 65 ... so 12", mean=-0.9, low=-6.0,
                                                        finish="length", used=320))
    assert unsure > confident
    assert model.threshold_for(0.1) > model.threshold_for(0.3) > model.threshold_for(0.6)
    share = np.mean([unsure > model.threshold_for(f) for f in (0.2, 0.3, 0.5)])
    assert share == 1.0  # an answer that bad escalates at any usual setting


def test_malformed_or_missing_model_is_a_config_error(tmp_path):
    with pytest.raises(RouterConfigError, match="cannot read the escalation model"):
        EscalationModel.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"coef": [1, 2], "intercept": 0, "mean": [0], "scale": [1], "calibration": {"0.5": 0}}))
    with pytest.raises(RouterConfigError, match="malformed"):
        EscalationModel.load(bad)
    bad.write_bytes(b"\xff\xfe{")
    with pytest.raises(RouterConfigError, match="cannot read"):
        EscalationModel.load(bad)
    short = EscalationModel.from_json({"coef": [1.0], "intercept": 0, "mean": [0], "scale": [1],
                                       "calibration": {"0.5": 0}})
    with pytest.raises(RouterConfigError, match="expects 1 features"):
        short.cloud_gain(QUESTION, "gsm8k", answer("Answer: 60"))


def test_gain_range_brackets_what_a_sample_can_do():
    model = EscalationModel.load()
    bare = answer("12 * 5 = 60\nAnswer: 60")
    low, high = model.gain_range(QUESTION, "gsm8k", bare)
    agree = model.cloud_gain(QUESTION, "gsm8k", answer("12 * 5 = 60\nAnswer: 60", samples=("Answer: 60",)))
    disagree = model.cloud_gain(QUESTION, "gsm8k", answer("12 * 5 = 60\nAnswer: 60", samples=("Answer: 61",)))
    assert (low, high) == pytest.approx((min(agree, disagree), max(agree, disagree)), abs=1e-5)
    assert high - low > 0.01  # the packaged model does listen to the sample
    assert low <= model.cloud_gain(QUESTION, "gsm8k", bare) <= high  # no sample: the neutral value, in between
    text = answer("Sure!")
    assert model.gain_range("hi", "chat", text)[0] == model.gain_range("hi", "chat", text)[1]

