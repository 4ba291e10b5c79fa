"""Join the labelling cache into examples: one row per task with both models' scores.

Shared by ``scripts/train_router.py`` and ``benchmarks/routing.py``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import numpy as np

from label_routing import CLOUD, DEVICE, JUDGEMENTS, OUTPUTS, SAMPLES, TASKS, read_jsonl

from tether.routing.escalation import DeviceAnswer, final_number


def faithful(summary: str, source: str) -> bool:
    """The notification feature's own check: no name, number, date or time the source lacks."""
    from tether.features.notifications import Notification, unsupported_facts

    item = Notification(app="mail", title="email", body=source, timestamp=datetime(2026, 1, 1, tzinfo=timezone.utc))
    return not unsupported_facts(summary, [item])


def load_examples(margin: float = 0.25) -> list[dict[str, Any]]:
    """Every task labelled so far. ``label`` is 1 when the device answer is as good as the cloud's.

    Scores are in [0, 1]: GSM8K 1 or 0 by the final number; judged tasks the judge's
    1-9 rating rescaled. "As good" on judged tasks allows ``margin`` rating points.
    """
    outputs = {(o["task"], o["model"]): o for o in read_jsonl(OUTPUTS)}
    judged = {j["task"]: j for j in read_jsonl(JUDGEMENTS) if j.get("method") == "geval"}
    samples: dict[str, dict[int, dict[str, Any]]] = {}
    for row in read_jsonl(SAMPLES):
        samples.setdefault(row["task"], {})[row["sample"]] = row
    examples = []
    for task in read_jsonl(TASKS):
        dev, cld = outputs.get((task["id"], DEVICE)), outputs.get((task["id"], CLOUD))
        drawn = [r for _, r in sorted(samples.get(task["id"], {}).items())]
        if dev is None or cld is None:
            continue
        if task["kind"] == "gsm8k":
            dev_score = float(final_number(dev["text"]) == task["reference"])
            cld_score = float(final_number(cld["text"]) == task["reference"])
            p = None
        else:
            if task["id"] not in judged:
                continue
            j = judged[task["id"]]
            p = j["device_score"] - j["cloud_score"]  # rating points in the device's favour
            dev_score, cld_score = (j["device_score"] - 1) / 8, (j["cloud_score"] - 1) / 8
        examples.append({
            "id": task["id"], "kind": task["kind"], "source": task["source"], "split": task["split"],
            "feature": task.get("feature"),
            "prompt": "\n\n".join(m["content"] for m in task["messages"] if m["role"] == "user"),
            "device_score": dev_score, "cloud_score": cld_score,
            "label": int(dev_score >= cld_score if p is None else p >= -margin),
            "rating_gap": p, "device_tokens": dev["prompt_tokens"] + dev["completion_tokens"],
            "cloud_tokens": cld["prompt_tokens"] + cld["completion_tokens"],
            "device_completion_tokens": dev["completion_tokens"], "cloud_completion_tokens": cld["completion_tokens"],
            "device_seconds": dev["seconds"], "cloud_seconds": cld["seconds"],
            "device_mean_logprob": dev.get("mean_logprob"), "device_min_logprob": dev.get("min_logprob"),
            "device_finish": dev["finish"], "device_text": dev["text"], "max_tokens": task["max_tokens"],
            "device_samples": [r["text"] for r in drawn],
            "device_sample_tokens": sum(r["completion_tokens"] for r in drawn),
            "device_sample_seconds": sum(r["seconds"] for r in drawn),
        })
        if task.get("feature") == "summarize":
            source = task["messages"][-1]["content"].split(":\n\n", 1)[-1]
            examples[-1]["device_faithful"] = faithful(dev["text"], source)
            examples[-1]["cloud_faithful"] = faithful(cld["text"], source)
    return examples


def device_answer(example: dict[str, Any], samples: int | None = None) -> DeviceAnswer:
    """The device's cached answer as the cascade sees it at run time, with at most ``samples``
    (default: all cached) sampled answers beside it for self-consistency."""
    return DeviceAnswer(example["device_text"], example["device_mean_logprob"], example["device_min_logprob"],
                        example["device_finish"], example["device_completion_tokens"], example["max_tokens"],
                        tuple(example["device_samples"][:samples]))


def routing_curve(gain: np.ndarray, device: np.ndarray, cloud: np.ndarray) -> list[tuple[float, float]]:
    """(cloud fraction, mean quality) when the k tasks with the highest ``gain`` go to the cloud, k = 0..n."""
    order = np.argsort(-np.asarray(gain), kind="stable")
    lift = np.concatenate([[0.0], np.cumsum((cloud - device)[order])])
    n = len(device)
    return [(k / n, float((device.sum() + lift[k]) / n)) for k in range(n + 1)]
