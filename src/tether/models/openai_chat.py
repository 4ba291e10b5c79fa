"""OpenAI chat-completions semantics on top of the llama.cpp engine.

Nodes speak this inside the envelope, and the local gateway speaks it over
HTTP, so both accept what an ``openai`` client sends: streaming, JSON-schema
``response_format``, logprobs, a ``usage`` block, and ``tools``: the model's
choice of a function (or of none) is guided JSON (``tether.tools``), returned as
``tool_calls`` for the client to run, as the OpenAI API does.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from typing import Any, Iterator, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from tether import tools as _tools
from tether.errors import InputError, InvalidOutputError
from tether.models.engine import Completion, LlamaEngine, Message, Sampling, TokenLogprob
from tether.models.json_schema import check_schema, violation
from tether.tools import ToolCall, ToolSpec


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str = ""
    refusal: str = ""

    @field_validator("type")
    @classmethod
    def _text_only(cls, value: str) -> str:
        # Dropping an image and answering anyway would invite a made-up answer.
        if value not in ("text", "refusal"):
            raise ValueError(f"{value!r} parts are not supported: the models here read text only")
        return value


class _FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    arguments: str = "{}"


class _ToolCallIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    type: Literal["function"] = "function"
    function: _FunctionCall


class _FunctionDef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})


class _ToolDef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: _FunctionDef


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[_Part] | None = ""
    tool_calls: list[_ToolCallIn] | None = None
    tool_call_id: str | None = None

    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        # One part per line: run together ("…4111111111111111Phone 4155550134SSN…") the parts'
        # values lose the word boundaries that detecting personal data relies on.
        return "\n".join(p.text or p.refusal for p in self.content)


class _StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool | None = Field(default=None, strict=True)


class _FunctionName(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str = Field(strict=True)


class _ToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: _FunctionName


# OpenAI marks these nullable: an explicit null means "the default" (SDKs and frameworks send it).
_NULL_MEANS_DEFAULT = ("temperature", "top_p", "n", "stream", "logprobs", "top_logprobs", "presence_penalty",
                       "frequency_penalty", "logit_bias", "max_tokens", "max_completion_tokens", "seed", "stop",
                       "stream_options", "response_format", "tools", "tool_choice", "model", "user",
                       "functions", "function_call")


MAX_CHOICES = 8  # ``n``: the device writes each answer in turn, so n answers take n times as long


class ChatRequest(BaseModel):
    """A chat-completions request, typed as strictly as OpenAI's API types it ("4" is no integer)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1, strict=True)
    max_completion_tokens: int | None = Field(default=None, ge=1, strict=True)
    temperature: float = Field(default=1.0, ge=0, le=2, strict=True)
    top_p: float = Field(default=1.0, ge=0, le=1, strict=True)
    seed: int | None = Field(default=None, strict=True)
    stop: str | list[str] | None = None
    stream: bool = Field(default=False, strict=True)
    stream_options: _StreamOptions | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool = Field(default=False, strict=True)
    top_logprobs: int = Field(default=0, ge=0, le=20, strict=True)
    n: int = Field(default=1, ge=1, le=MAX_CHOICES, strict=True,
                   description=f"answers to generate, one after another on the device (at most {MAX_CHOICES})")
    presence_penalty: float = Field(default=0.0, ge=-2, le=2, strict=True)
    frequency_penalty: float = Field(default=0.0, ge=-2, le=2, strict=True)
    logit_bias: dict[str, float] | None = Field(default=None, description="token id (of the model that answers) → "
                                                "-100…100 added to its logit")
    tools: list[_ToolDef] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | _ToolChoice | None = None
    user: str | None = Field(default=None, strict=True, description="your id for the caller; echoed in the route block")
    functions: list[Any] | None = Field(default=None, description="legacy; refused: send tools")
    function_call: Any = Field(default=None, description="legacy; refused: send tool_choice")
    _schema_checked: bool = PrivateAttr(default=False)

    @field_validator("stop")
    @classmethod
    def _stops(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and len(value) > 4:
            raise ValueError("at most 4 stop sequences")
        return value

    @field_validator("functions", "function_call")
    @classmethod
    def _legacy_functions(cls, value: Any) -> Any:
        # Ignoring them would answer in text where the client waits for a function call.
        if value is not None:
            raise ValueError("the legacy functions/function_call fields are not supported; send tools and tool_choice")
        return value

    @field_validator("stream_options")
    @classmethod
    def _stream_options_need_a_stream(cls, value: _StreamOptions | None, info: ValidationInfo) -> _StreamOptions | None:
        if value is not None and not info.data.get("stream"):
            raise ValueError("only allowed when stream is true")
        return value

    @field_validator("top_logprobs")
    @classmethod
    def _top_logprobs_need_logprobs(cls, value: int, info: ValidationInfo) -> int:
        if value and not info.data.get("logprobs"):
            raise ValueError("needs logprobs: true")
        return value

    @classmethod
    def openapi_schema(cls, ref_template: str) -> dict[str, Any]:
        """The JSON schema for ``/openapi.json``: the fields OpenAI marks nullable take ``null``."""
        schema = cls.model_json_schema(ref_template=ref_template)
        for name in _NULL_MEANS_DEFAULT:
            prop = schema["properties"].get(name)
            if prop is None or any(alt.get("type") == "null" for alt in prop.get("anyOf", [])):
                continue
            keep = {k: prop.pop(k) for k in ("title", "description", "default") if k in prop}
            schema["properties"][name] = {"anyOf": [prop, {"type": "null"}], **keep}
        return schema

    @classmethod
    def parse(cls, body: Any) -> "ChatRequest":
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        body = {k: v for k, v in body.items() if not (v is None and k in _NULL_MEANS_DEFAULT)}
        try:
            return cls.model_validate(body)
        except ValidationError as exc:
            errors = exc.errors()
            first = max(errors, key=lambda e: len(e["loc"]))  # the deepest: the union branch that got furthest
            # pydantic's loc names union branches ("content.str", "tool_choice.literal[...]"): drop them
            where = ".".join(str(p) for p in first["loc"] if not _is_branch(p)) or "body"
            why = re.sub(r"a valid dictionary or instance of \w+", "a JSON object", first["msg"]).removeprefix("Value error, ")
            raise InputError(f"invalid chat request: {where}: {why}") from None

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
            if not self._schema_checked:  # the gateway and run_chat both ask; check the schema once
                check_schema(schema)
                self._schema_checked = True
            return schema
        raise InputError(f"unsupported response_format type {fmt.get('type')!r}")

    def engine_messages(self) -> list[Message]:
        """The conversation for the answer: tool results folded into the user turn they serve."""
        return self._render(fold=True)

    # -- tools

    def tool_specs(self) -> list[ToolSpec]:
        specs = [ToolSpec(t.function.name, t.function.description, t.function.parameters) for t in self.tools or []]
        for spec in specs:
            _tools.check_spec(spec)
        if len({s.name for s in specs}) != len(specs):
            raise InputError("tools: two functions share a name")
        return specs

    def tool_mode(self, specs: list[ToolSpec]) -> str:
        """``none``, ``auto``, ``required``, or the name of the function the client forces."""
        choice = self.tool_choice
        if not specs:
            if choice not in (None, "none", "auto"):
                raise InputError("tool_choice needs tools")
            return "none"
        if choice is None or isinstance(choice, str):
            return choice or "auto"
        name = choice.function.name
        if name in {s.name for s in specs}:
            return name
        raise InputError(f"tool_choice names {name!r}, which is not among the tools")

    def decision_messages(self, guide: str) -> list[Message]:
        """The conversation for the next tool decision: each call and result as a turn of its own."""
        messages = self._render(fold=False)
        if messages and messages[0].role == "system":
            return [Message("system", f"{messages[0].content}\n\n{guide}"), *messages[1:]]
        return [Message("system", guide), *messages]

    def _render(self, *, fold: bool) -> list[Message]:
        out: list[Message] = []
        asked: dict[str, tuple[str, dict[str, Any]]] = {}
        results: list[ToolCall] = []
        user_at: int | None = None

        def flush() -> None:
            if results and user_at is not None:
                out[user_at] = Message("user", _tools.with_results(out[user_at].content, results))
            results.clear()

        for m in self.messages:
            if m.role == "tool":
                if m.tool_call_id not in asked:
                    raise InputError(f"a tool message answers tool_call_id {m.tool_call_id!r}, which no assistant "
                                     "message asked for")
                name, arguments = asked[m.tool_call_id]
                call = ToolCall(name, arguments, m.text())
                if fold:
                    results.append(call)
                else:
                    out += [Message("assistant", call.as_json()), Message("user", _tools.result_message(call))]
                continue
            if m.role == "assistant" and m.tool_calls:
                for c in m.tool_calls:
                    asked[c.id] = (c.function.name, _arguments(c.function.arguments))
                if not m.text().strip():
                    continue
            if fold and m.role in ("user", "assistant"):
                flush()
            out.append(Message("system" if m.role == "developer" else m.role, m.text()))
            if m.role == "user":
                user_at = len(out) - 1
        if fold:
            flush()
        return out

    def sampling(self, max_tokens_cap: int) -> Sampling:
        wanted = self.max_completion_tokens or self.max_tokens or max_tokens_cap
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return Sampling(temperature=self.temperature, top_p=self.top_p, seed=self.seed,
                        max_tokens=min(wanted, max_tokens_cap), stop=tuple(s for s in stops if s),
                        frequency_penalty=self.frequency_penalty, presence_penalty=self.presence_penalty,
                        logit_bias=self.logit_bias or ())

    @property
    def asked_max_tokens(self) -> int | None:
        """The caller's own limit on generated tokens, if it set one."""
        return self.max_completion_tokens or self.max_tokens

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _is_branch(loc: Any) -> bool:
    """A pydantic location part that names a union member, not a field."""
    return isinstance(loc, str) and (loc in ("str", "int", "float", "bool", "list", "dict")
                                     or loc.startswith(("literal[", "list[", "dict[", "function-", "_")) or loc[:1].isupper())


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or "{}")
    except (ValueError, RecursionError):  # nested past Python's recursion limit too
        raise InputError("tool_calls: function.arguments must be a JSON object string") from None
    if not isinstance(value, dict):
        raise InputError("tool_calls: function.arguments must be a JSON object string")
    return value


def _logprob_entry(lp: TokenLogprob) -> dict[str, Any]:
    return {
        "token": lp.token,
        "logprob": lp.logprob,
        "bytes": list(lp.raw or lp.token.encode("utf-8")),
        "top_logprobs": [{"token": t, "logprob": v, "bytes": list(raw)}
                         for (t, v), raw in zip(lp.top, lp.top_raw or [t.encode("utf-8") for t, _ in lp.top])],
    }


def usage(completion: Completion, extra: Completion | None = None) -> dict[str, int]:
    """Tokens of the answer, plus those of the tool decision that preceded it, if any."""
    prompt = completion.prompt_tokens + (extra.prompt_tokens if extra else 0)
    generated = completion.completion_tokens + (extra.completion_tokens if extra else 0)
    return {"prompt_tokens": prompt, "completion_tokens": generated, "total_tokens": prompt + generated}


def decide_tool(engine: LlamaEngine, request: ChatRequest, cancel: threading.Event | None = None
                ) -> tuple[dict[str, Any] | None, Completion | None]:
    """Run the guided tool decision, if the request has tools: ``(tool call or None, its completion)``.
    The decision counts against the caller's ``max_tokens``: one it cuts short has no call and
    a completion whose ``finish_reason`` is "length"."""
    specs = request.tool_specs()
    mode = request.tool_mode(specs)
    if mode == "none":
        return None, None
    allowed, allow_answer = _tools.choose(specs, mode)
    name, arguments, completion = _tools.decide(
        engine, request.decision_messages(_tools.tools_prompt(allowed, allow_answer=allow_answer)), allowed,
        allow_answer=allow_answer, cancel=cancel, max_tokens=request.asked_max_tokens,
        fit_window=not request.asked_max_tokens)
    if name in (_tools.ANSWER, _tools.CUT):
        return None, completion
    call = {"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}
    return call, completion


def completion_body(completion: Completion, *, model: str, request_id: str, created: int,
                    with_logprobs: bool, decision: Completion | None = None) -> dict[str, Any]:
    choice: dict[str, Any] = {
        "index": 0,
        "message": {"role": "assistant", "content": completion.text},
        "finish_reason": completion.finish_reason,
        "logprobs": {"content": [_logprob_entry(lp) for lp in completion.logprobs or []]} if with_logprobs else None,
    }
    return {"id": request_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": usage(completion, decision)}


def run_chat(engine: LlamaEngine, request: ChatRequest, *, max_tokens_cap: int = 1024,
             cancel: threading.Event | None = None, usage_out: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """Yield one ``chat.completion`` or, when streaming, ``chat.completion.chunk`` objects.

    As in OpenAI's API, a stream with ``stream_options.include_usage`` gives every chunk
    ``"usage": null`` and ends with one more chunk whose ``choices`` are empty and whose
    ``usage`` is filled. ``usage_out`` receives the usage before the last chunk either way.
    Raises ``ContextWindowExceededError`` / ``GenerationError`` before the first yield
    when the request cannot run.
    """
    if request.n > 1:
        yield from _choices(engine, request, max_tokens_cap=max_tokens_cap, cancel=cancel, usage_out=usage_out)
        return
    request_id = f"chatcmpl-{uuid.uuid4().hex}"
    created = int(time.time())
    with_logprobs = request.logprobs or request.top_logprobs > 0
    call, decision = decide_tool(engine, request, cancel)
    if call is not None:
        assert decision is not None
        yield from _tool_call_reply(call, decision, request, model=engine.name, request_id=request_id, created=created,
                                    usage_out=usage_out)
        return
    sampling = request.sampling(max_tokens_cap)
    if decision is not None and request.asked_max_tokens:
        left = request.asked_max_tokens - decision.completion_tokens  # the decision spent part of the budget
        if decision.finish_reason == "length" or left < 1:
            yield from _cut_reply(decision, request, model=engine.name, request_id=request_id, created=created,
                                  usage_out=usage_out)
            return
        sampling = dataclasses.replace(sampling, max_tokens=min(sampling.max_tokens, left))
    result: list[Completion] = []
    messages = request.engine_messages()
    schema = request.json_schema()
    # What the grammar cannot force is checked in a finished answer, not in one the caller's budget
    # or stop sequences cut (the engine reports a stop string's cut as "stop", as OpenAI's API does).
    judged = schema if not sampling.stop else None
    # Unasked, the answer may use what the prompt leaves of the window, as in OpenAI's API.
    options = dict(json_schema=schema, logprobs=with_logprobs, top_logprobs=request.top_logprobs, cancel=cancel,
                   fit_window=not request.asked_max_tokens)
    deltas = engine.stream(messages, sampling, result=result, **options)
    if not request.stream:
        for _ in deltas:
            pass
        done = result[0]
        if judged is not None and done.finish_reason == "stop" and violation(judged, done.text):
            # What the grammar cannot force (number bounds, multipleOf…): one sampled retry, then an error.
            again = engine.complete(messages, sampling.retry(), **options)
            problem = violation(judged, again.text) if again.finish_reason == "stop" else None
            if problem:
                raise InvalidOutputError(f"the model's answer broke the JSON schema, also on a retry: {problem}",
                                         again.text)
            again.completion_tokens += done.completion_tokens  # both were generated
            done = again
        body = completion_body(done, model=engine.name, request_id=request_id, created=created,
                               with_logprobs=with_logprobs, decision=decision)
        if usage_out is not None:
            usage_out.update(body["usage"])
        yield body
        return

    def chunk(delta: dict[str, Any], finish: str | None = None, lps: list[TokenLogprob] | None = None) -> dict[str, Any]:
        return _chunk(request_id, created, engine.name, delta, finish, lps, request.include_usage)

    yield chunk({"role": "assistant", "content": ""})
    for delta in deltas:
        if delta.text or delta.logprobs:
            yield chunk({"content": delta.text}, lps=list(delta.logprobs) if with_logprobs else None)
    done = result[0]
    problem = violation(judged, done.text) if judged is not None and done.finish_reason == "stop" else None
    if problem:  # sent already, so no retry: end in an error, as a routed stream off the device does
        raise InvalidOutputError(f"the model's streamed answer broke the JSON schema: {problem}", done.text)
    yield from _stream_end(chunk({}, done.finish_reason), usage(done, decision), request, usage_out)


def _choices(engine: LlamaEngine, request: ChatRequest, *, max_tokens_cap: int, cancel: threading.Event | None,
             usage_out: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    """``n`` answers as one completion (or one stream: each choice's chunks in turn, by index).
    Choice i samples with ``seed + i`` when the request has a seed: one seed would give n copies.
    Usage counts the prompt once and every answer's tokens, as OpenAI's does."""
    request_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    choices: list[dict[str, Any]] = []
    prompt_tokens = completion_tokens = 0
    last: dict[str, Any] = {}
    for i in range(request.n):
        one = request.model_copy(update={"n": 1, "seed": None if request.seed is None else request.seed + i})
        used: dict[str, int] = {}
        for item in run_chat(engine, one, max_tokens_cap=max_tokens_cap, cancel=cancel, usage_out=used):
            item = {**item, "id": request_id, "created": created,
                    "choices": [{**c, "index": i} for c in item["choices"]]}
            if not request.stream:
                choices += item["choices"]
            elif item["choices"]:  # each answer's own usage chunk is left out: one for all comes last
                last = item
                yield item
        prompt_tokens = prompt_tokens or used.get("prompt_tokens", 0)
        completion_tokens += used.get("completion_tokens", 0)
    total = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if usage_out is not None:
        usage_out.update(total)
    if not request.stream:
        yield {"id": request_id, "object": "chat.completion", "created": created, "model": engine.name,
               "choices": choices, "usage": total}
    elif request.include_usage:
        yield {**last, "choices": [], "usage": total}


def _chunk(request_id: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None,
           lps: list[TokenLogprob] | None = None, with_usage: bool = False) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish,
              "logprobs": {"content": [_logprob_entry(lp) for lp in lps]} if lps else None}
    out = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model, "choices": [choice]}
    if with_usage:
        out["usage"] = None
    return out


def _stream_end(last: dict[str, Any], used: dict[str, int], request: ChatRequest,
                usage_out: dict[str, int] | None) -> Iterator[dict[str, Any]]:
    """The chunk with the finish reason, then (if asked for) OpenAI's usage chunk with no choices."""
    if usage_out is not None:
        usage_out.update(used)
    yield last
    if request.include_usage:
        yield {**last, "choices": [], "usage": used}


def _cut_reply(decision: Completion, request: ChatRequest, *, model: str, request_id: str, created: int,
               usage_out: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    """The budget ran out during the tool decision: no call, no text, ``finish_reason`` "length"."""
    used = usage(decision)
    if not request.stream:
        if usage_out is not None:
            usage_out.update(used)
        yield {"id": request_id, "object": "chat.completion", "created": created, "model": model,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": ""},
                            "finish_reason": "length", "logprobs": None}], "usage": used}
        return

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return _chunk(request_id, created, model, delta, finish, with_usage=request.include_usage)

    yield chunk({"role": "assistant", "content": ""})
    yield from _stream_end(chunk({}, "length"), used, request, usage_out)


def _tool_call_reply(call: dict[str, Any], decision: Completion, request: ChatRequest, *, model: str,
                     request_id: str, created: int, usage_out: dict[str, int] | None = None) -> Iterator[dict[str, Any]]:
    if not request.stream:
        if usage_out is not None:
            usage_out.update(usage(decision))
        yield {"id": request_id, "object": "chat.completion", "created": created, "model": model,
               "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                            "finish_reason": "tool_calls", "logprobs": None}],
               "usage": usage(decision)}
        return

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return _chunk(request_id, created, model, delta, finish, with_usage=request.include_usage)

    head = {**call, "index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
    yield chunk({"role": "assistant", "content": None, "tool_calls": [head]})
    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": call["function"]["arguments"]}}]})
    yield from _stream_end(chunk({}, "tool_calls"), usage(decision), request, usage_out)
