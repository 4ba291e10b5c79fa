"""The packaged router weights come from the committed labels, and the documented figures hold.

Both scripts run for real on the committed cache in ``data/routing`` (no model is loaded:
the answers and judgements are cached), the way ``make train-router bench-routing`` does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = ROOT / "src" / "tether" / "routing" / "data"


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("weights")
    run("scripts/train_router.py", "--out", str(out))
    return out


@pytest.mark.parametrize("name", ["difficulty.json", "escalation.json"])
def test_training_reproduces_the_packaged_weights(trained, name):
    fresh, packaged = json.loads((trained / name).read_text()), json.loads((PACKAGED / name).read_text())
    assert fresh["meta"]["alpha"] == packaged["meta"]["alpha"]
    assert fresh["meta"]["examples"] == packaged["meta"]["examples"] == 450
    np.testing.assert_allclose(fresh["coef"], packaged["coef"], rtol=1e-4, atol=1e-6)
    assert fresh["calibration"] == pytest.approx(packaged["calibration"], rel=1e-4, abs=1e-6)


def test_benchmark_figures_match_the_docs(tmp_path):
    out = tmp_path / "routing.json"
    run("benchmarks/routing.py", "--no-plot", "--json", str(out))
    s = json.loads(out.read_text())
    assert s["held_out"] == 222 and s["train"] == 450
    assert s["cascade_fraction_for_95pct"] <= 0.40  # the target, met by the cascade
    # The default setting stays under the 40% budget and, as the docs say, just short of 95%.
    assert s["cascade_at_target"]["cloud_fraction"] <= 0.40
    assert 0.94 * s["all_cloud"] <= s["cascade_at_target"]["quality"] < 0.95 * s["all_cloud"]
    assert s["cascade_fraction_for_95pct"] < s["cascade_no_samples_fraction_for_95pct"]  # the sample earns its cost
    assert s["router_fraction_for_95pct"] > 0.40  # the prompt-only router misses it, as docs/routing.md says
    assert all(v > 0 for f, v in s["cascade_minus_random_by_fraction"].items() if 0.10 <= float(f) <= 0.95)
    cv = s["cross_validated_all_tasks"]  # the lower-variance second opinion docs/benchmarks.md quotes
    assert cv["tasks"] == 672
    assert cv["cascade"]["fraction_for_95pct"] < cv["router"]["fraction_for_95pct"]
    assert cv["cascade"]["fraction_for_95pct"] <= 0.41  # cross-validated the target is marginal: 40.5%
    assert cv["cascade"]["fraction_for_95pct"] < cv["cascade_no_samples"]["fraction_for_95pct"]
    margins = cv["cascade"]["margin_by_fraction"]
    assert all(v > 0 for f, v in margins.items() if float(f) >= 0.10) and margins["0.05"] < 0  # as documented


def test_no_prompt_is_labelled_twice():
    """A prompt on both sides of the split would let the held-out figures test what training saw."""
    tasks = [json.loads(line) for line in (ROOT / "data/routing/tasks.jsonl").read_text().splitlines() if line]
    prompts = [json.dumps(t["messages"], sort_keys=True) for t in tasks]
    assert len(set(prompts)) == len(prompts) == 672


def test_escalation_holds_on_math_asked_as_a_bare_question(tmp_path):
    """The committed bare-question answers (``scripts/label_chat_math.py``) are of GSM8K rows the
    labelling never used, and the escalation model ranks their wrong answers as docs/routing.md says."""
    tasks = {json.loads(line)["id"] for line in (ROOT / "data/routing/tasks.jsonl").read_text().splitlines() if line}
    bare = [json.loads(line) for line in (ROOT / "data/routing/chat_math.jsonl").read_text().splitlines() if line]
    assert len({r["task"] for r in bare}) == 60 and not {r["task"] for r in bare} & tasks
    assert all(int(r["task"].split("-")[1]) < 1000 for r in bare)  # GSM8K rows 0-999 only
    out = tmp_path / "shift.json"
    run("benchmarks/routing_shift.py", "--json", str(out))
    s = json.loads(out.read_text())
    trained, chat = s["held-out, training format"], s["bare questions"]
    assert chat["auc_wrong"] >= 0.7 and chat["auc_wrong"] >= trained["auc_wrong"] - 0.05  # no loss off the format
    assert chat["wrong_escalated"] >= 0.85  # most wrong answers still go to the cloud
    assert chat["kept_accuracy"] > chat["device_accuracy"]  # what stays on the device is better than average
