"""Learned difficulty: how much better would the cloud model answer this than the device?

A ridge regression over cheap text features and a static ``wordllama`` embedding
of the prompt (256 dims, ~0.05 ms, packaged weights, no remote API). It is
trained by ``scripts/train_router.py`` on labels that ``scripts/label_routing.py``
made by running ``qwen2.5-0.5b`` and ``qwen2.5-1.5b`` on real tasks; the weights
ship in ``routing/data/difficulty.json``.

``cloud_gain`` is the predicted quality the cloud adds (cloud score minus device
score, on a 0-1 scale; at or below 0 the device is predicted to do as well).
It is a regression on the gap, not a classifier of "device as good", because
routing pays for the size of the gap: a classifier trained on that label ranked
prompts below random on our data (small chat gaps looked as "hard" as math
problems the device gets wrong), see ``docs/routing.md``. A request goes to the
cloud when its gain is above a threshold; thresholds are calibrated on
out-of-fold predictions for the training prompts so that a chosen fraction goes
to the cloud.
"""

from __future__ import annotations

import math
import re
import threading
from pathlib import Path
from typing import ClassVar

import numpy as np

from tether.routing.scorer import LinearScorer

KINDS = ("gsm8k", "chat", "writing", "feature", "other")
_DIGITS = re.compile(r"\d")
_MATH = re.compile(r"[=+\-*/×÷%$]|\b(how many|how much|total|percent|average|each|per)\b", re.I)
_QUESTION = re.compile(r"\?")
_LIST = re.compile(r"\b(list|steps?|outline|table|bullet|points)\b", re.I)
_LONGFORM = re.compile(r"\b(write|essay|article|report|story|review|plan|proposal|detailed|explain)\b", re.I)

_embedder = None
_embedder_lock = threading.Lock()


def _embed(text: str) -> np.ndarray:
    global _embedder
    with _embedder_lock:
        if _embedder is None:
            import wordllama
            from wordllama import WordLlama

            _embedder = WordLlama.load(cache_dir=Path(wordllama.__file__).parent, disable_download=True)
    return np.asarray(_embedder.embed([text[:4000]]), dtype=np.float32)[0]


def cheap_features(text: str, kind: str) -> np.ndarray:
    words = text.split()
    n = max(len(text), 1)
    return np.array([
        math.log1p(len(text)) / 8,
        math.log1p(len(words)) / 7,
        len(_DIGITS.findall(text)) / n * 10,
        min(len(_MATH.findall(text)), 20) / 20,
        min(len(_QUESTION.findall(text)), 5) / 5,
        min(len(_LIST.findall(text)), 5) / 5,
        min(len(_LONGFORM.findall(text)), 5) / 5,
        text.count("\n") / max(len(words), 1),
        *[1.0 if kind == k else 0.0 for k in KINDS],
    ], dtype=np.float32)


def featurize(text: str, kind: str = "other") -> np.ndarray:
    kind = kind if kind in KINDS else "other"
    return np.concatenate([cheap_features(text, kind), _embed(text)])


class DifficultyModel(LinearScorer):
    packaged: ClassVar[str] = "difficulty.json"
    what: ClassVar[str] = "difficulty model"

    def cloud_gain(self, text: str, kind: str = "other") -> float:
        """Predicted cloud score minus device score (0-1 scale): route to the cloud when it is high."""
        return self.score(featurize(text, kind))
