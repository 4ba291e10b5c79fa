"""The three places a request can run, behind one small interface.

Each tier takes chat messages that already passed the privacy guard and returns
a ``TierResult``. Tiers never see the router's reasons or the user's consent:
deciding is the router's job, running is the tier's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterator, Protocol, Sequence

from tether.errors import CloudDeadlineError, CloudError, RequestTooLargeError, TierUnavailableError
from tether.models.engine import Message, Sampling

DEVICE, PRIVATE_CLOUD, THIRD_PARTY = "device", "private_cloud", "third_party"


@dataclass
class TierResult:
    text: str
    tier: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    latency: float
    finish_reason: str = "stop"
    mean_logprob: float | None = None
    min_logprob: float | None = None


class Tier(Protocol):
    name: str

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
                 logprobs: bool = False) -> TierResult: ...

    def stream(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
               info: dict[str, Any] | None = None) -> Iterator[str]:
        """Text deltas; ``info`` gets the ``model``, ``finish_reason`` and, where the tier reports
        them, ``prompt_tokens`` and ``completion_tokens``."""
        ...


def note_chunk(chunk: dict[str, Any], info: dict[str, Any] | None) -> None:
    """Keep a streamed chat-completions chunk's model, finish reason and usage (the last chunk's,
    when the stream asked for ``include_usage``) in ``info``."""
    if info is None:
        return
    if isinstance(chunk.get("model"), str) and chunk["model"]:
        info["model"] = chunk["model"]
    for choice in chunk.get("choices") or []:
        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
            info["finish_reason"] = choice["finish_reason"]
    usage = chunk.get("usage")
    if isinstance(usage, dict):
        for key in ("prompt_tokens", "completion_tokens"):
            value = usage.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9:  # a provider's word
                info[key] = value


STREAM_USAGE = {"stream": True, "stream_options": {"include_usage": True}}  # real token counts for the ledger


def openai_body(messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
                logprobs: bool = False, model: str | None = None) -> dict[str, Any]:
    """The chat-completions request for these messages, as the private cloud and third parties take it."""
    body: dict[str, Any] = {"messages": [m.as_dict() for m in messages], "max_tokens": sampling.max_tokens,
                            "temperature": sampling.temperature, "top_p": sampling.top_p}
    if model:
        body["model"] = model
    if sampling.seed is not None:
        body["seed"] = sampling.seed
    if sampling.stop:
        body["stop"] = list(sampling.stop)
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(sampling, name):
            body[name] = getattr(sampling, name)
    if sampling.logit_bias:
        body["logit_bias"] = {str(k): v for k, v in sampling.logit_bias}
    if json_schema is not None:
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": json_schema}}
    if logprobs:
        body["logprobs"] = True
    return body


def mean_logprob(choice: dict[str, Any]) -> float | None:
    content = ((choice.get("logprobs") or {}).get("content")) or []
    values = [c["logprob"] for c in content if isinstance(c, dict) and "logprob" in c]
    return sum(values) / len(values) if values else None


class DeviceTier:
    """The local llama.cpp engine."""

    name = DEVICE

    def __init__(self, model: str = "qwen2.5-0.5b"):
        self.model = model
        self._engine = None

    @property
    def engine(self):
        if self._engine is None:
            from tether.models.engine import load

            self._engine = load(self.model)
        return self._engine

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return len(self.engine.tokenize_chat(messages))

    @property
    def context_window(self) -> int:
        return self.engine.context_window

    def memory_needed_mb(self) -> float | None:
        """MiB the device model still needs before it can answer: 0 once it is loaded in this
        process, else llama.cpp's own accounting estimated from the file; None if unknown."""
        from tether.errors import ModelUnavailableError
        from tether.models import engine

        if self._engine is not None or engine.is_loaded(self.model):
            return 0.0
        try:
            return engine.memory_estimate(self.model).total / 2**20
        except ModelUnavailableError:
            return None

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
                 logprobs: bool = False) -> TierResult:
        start = time.perf_counter()
        done = self.engine.complete(messages, sampling, json_schema=json_schema, logprobs=logprobs)
        return TierResult(done.text, DEVICE, self.engine.name, done.prompt_tokens, done.completion_tokens,
                          time.perf_counter() - start, done.finish_reason, done.mean_logprob, done.min_logprob)

    def stream(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
               info: dict[str, Any] | None = None) -> Iterator[str]:
        result: list[Any] = []
        for delta in self.engine.stream(messages, sampling, json_schema=json_schema, result=result):
            if delta.text:
                yield delta.text
        if info is not None and result:
            info.update(model=self.engine.name, finish_reason=result[0].finish_reason,
                        prompt_tokens=result[0].prompt_tokens, completion_tokens=result[0].completion_tokens)


def _cloud_status(exc: CloudError) -> int | None:
    """413 for a request too large for the relay or nodes (no retry helps), 504 past the deadline."""
    if isinstance(exc, RequestTooLargeError):
        return 413
    return 504 if isinstance(exc, CloudDeadlineError) else None


class PrivateCloudTier:
    """Attested nodes through the relay (``tether.cloud.CloudClient``)."""

    name = PRIVATE_CLOUD

    def __init__(self, client: Any):
        self.client = client

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
                 logprobs: bool = False) -> TierResult:
        start = time.perf_counter()
        try:
            out = self.client.chat(openai_body(messages, sampling, json_schema=json_schema, logprobs=logprobs))
        except CloudError as exc:
            raise TierUnavailableError(PRIVATE_CLOUD, str(exc), status=_cloud_status(exc)) from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return TierResult(choice["message"]["content"] or "", PRIVATE_CLOUD, out.get("model", ""),
                          int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0)),
                          time.perf_counter() - start, choice.get("finish_reason") or "stop", mean_logprob(choice))

    def stream(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
               info: dict[str, Any] | None = None) -> Iterator[str]:
        sent = False
        try:
            for chunk in self.client.stream({**openai_body(messages, sampling, json_schema=json_schema), **STREAM_USAGE}):
                if (chunk.get("x_tether") or {}).get("restart"):
                    if sent:  # text already went out and cannot be taken back: fail, do not splice two answers
                        raise TierUnavailableError(PRIVATE_CLOUD, "a node failed mid-answer and its replacement's "
                                                                  "answer differs from the text already sent")
                note_chunk(chunk, info)
                choices = chunk.get("choices") or []
                text = (choices[0].get("delta") or {}).get("content") if choices else None
                if text:
                    sent = True
                    yield text
        except CloudError as exc:
            raise TierUnavailableError(PRIVATE_CLOUD, str(exc), status=_cloud_status(exc)) from exc
