"""OpenAI chat-completions semantics on top of the llama.cpp engine.

Nodes speak this inside the envelope, and the local gateway speaks it over
HTTP, so both accept what an ``openai`` client sends: streaming, JSON-schema
``response_format``, logprobs and a ``usage`` block.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tether.errors import InputError
from tether.models.engine import Completion, LlamaEngine, Message, Sampling, TokenLogprob


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str = ""


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[_Part] | None = ""

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content if p.type == "text")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20)
    n: int = Field(default=1, ge=1, le=1)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @classmethod
    def parse(cls, body: Any) -> "ChatRequest":
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InputError(f"invalid chat request: {where}: {first['msg']}") from None

    def json_schema(self) -> dict[str, Any] | None:
        fmt = self.response_format
        if not fmt or fmt.get("type") == "text":
            return None
        if fmt.get("type") == "json_object":
            return {"type": "object"}
        if fmt.get("type") == "json_schema":
            spec = fmt.get("json_schema") or {}
            schema = spec.get("schema") if isinstance(spec, dict) else None
            if not isinstance(schema, dict):
                raise InputError("response_format.json_schema.schema must be a JSON schema object")
            return schema
        raise InputError(f"unsupported response_format type {fmt.get('type')!r}")

    def engine_messages(self) -> list[Message]:
        return [Message("system" if m.role == "developer" else m.role, m.text()) for m in self.messages]

    def sampling(self, max_tokens_cap: int) -> Sampling:
        wanted = self.max_completion_tokens or self.max_tokens or max_tokens_cap
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Sampling(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                        max_tokens=min(wanted, max_tokens_cap), stop=tuple(s for s in stops if s))

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


def _logprob_entry(lp: TokenLogprob) -> dict[str, Any]:
    return {
        "token": lp.token,
        "logprob": lp.logprob,
        "bytes": list(lp.token.encode("utf-8")),
        "top_logprobs": [{"token": t, "logprob": v, "bytes": list(t.encode("utf-8"))} for t, v in lp.top],
    }


def usage(completion: Completion) -> dict[str, int]:
    return {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
            "total_tokens": completion.prompt_tokens + completion.completion_tokens}


def completion_body(completion: Completion, *, model: str, request_id: str, created: int,
                    with_logprobs: bool) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": completion.text},
        "finish_reason": completion.finish_reason,
        "logprobs": {"content": [_logprob_entry(lp) for lp in completion.logprobs or []]} if with_logprobs else None,
    }
    return {"id": request_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": usage(completion)}


def run_chat(engine: LlamaEngine, request: ChatRequest, *, max_tokens_cap: int = 1024,
             cancel: threading.Event | None = None) -> Iterator[dict[str, Any]]:
    """Yield one ``chat.completion`` or, when streaming, ``chat.completion.chunk`` objects.

    Raises ``ContextWindowExceededError`` / ``GenerationError`` before the first yield
    when the request cannot run.
    """
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    with_logprobs = request.logprobs or request.top_logprobs > 0
    result: list[Completion] = []
    deltas = engine.stream(request.engine_messages(), request.sampling(max_tokens_cap),
                           json_schema=request.json_schema(), logprobs=with_logprobs,
                           top_logprobs=request.top_logprobs, cancel=cancel, result=result)
    if not request.stream:
        for _ in deltas:
            pass
        yield completion_body(result[0], model=engine.name, request_id=request_id, created=created,
                              with_logprobs=with_logprobs)
        return

    def chunk(delta: dict[str, Any], finish: str | None = None, lps: list[TokenLogprob] | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish,
                  "logprobs": {"content": [_logprob_entry(lp) for lp in lps]} if lps else None}
        return {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": engine.name,
                "choices": [choice]}

    yield chunk({"role": "assistant", "content": ""})
    for delta in deltas:
        if delta.text or delta.logprob:
            yield chunk({"content": delta.text}, lps=[delta.logprob] if (with_logprobs and delta.logprob) else None)
    done = result[0]
    last = chunk({}, done.finish_reason)
    if request.include_usage:
        last["usage"] = usage(done)
    yield last
