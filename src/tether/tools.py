"""Tool calling, after Apple's ``Tool`` protocol: the model asks, Python answers.

    @tool
    def weather(city: str) -> str:
        \"\"\"Current weather for a city.\"\"\"
        return lookup(city)

    session = Session(tools=[weather])
    session.respond("Do I need an umbrella in Paris?")

Small models are unreliable at free-form tool-call syntax, so Tether never
parses one: each step is guided generation over a JSON schema that admits
exactly ``{"tool": <name>, "arguments": <that tool's schema>}`` for each tool,
or ``{"tool": "none"}``. A call therefore always names a real tool with
arguments that validate. The same schema serves the gateway's OpenAI
``tools`` parameter, where the client runs the function instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import json
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from pydantic import BaseModel, ConfigDict, Field, create_model

from tether.errors import InputError, InvalidOutputError
from tether.text import replace_surrogates

ANSWER = "none"
MAX_OUTPUT_CHARS = 4000  # a tool's output beyond this is cut, so one chatty tool cannot fill the context
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # OpenAI's rule for function names


class Tool:
    """A function the model may call. Subclass it, or use ``@tool`` on a plain function.

    ``arguments`` is a pydantic model: its JSON schema constrains what the model
    writes, and the validated instance is what ``call`` receives.
    """

    name: str = ""
    description: str = ""
    arguments: type[BaseModel]

    def unbound_error(self) -> InputError:
        return InputError(f"tool {self.name} is a method: pass it from an instance (obj.{self.func.__name__})")

    def call(self, arguments: BaseModel) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Tool {self.name}>"


class FunctionTool(Tool):
    """A tool made from a typed Python function by ``@tool``."""

    def __init__(self, func: Callable[..., Any], name: str | None = None, description: str | None = None):
        if not (inspect.isfunction(func) or inspect.ismethod(func)):
            raise InputError(f"@tool takes a Python function, not {func!r:.80}")
        self.func = func
        self.name = name or func.__name__
        self.description = description or _first_paragraph(inspect.getdoc(func) or "")
        params = list(inspect.signature(func).parameters.values())
        # ``@tool`` on a method sees the plain function: ``self`` is no argument the model gives
        self.method = inspect.isfunction(func) and bool(params) and params[0].name in ("self", "cls")
        if self.method:
            params = params[1:]
        fields: dict[str, Any] = {}
        try:  # resolves string annotations (``from __future__ import annotations``) to the real types
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as exc:
            raise InputError(f"tool {self.name}: its type hints cannot be resolved ({exc})") from None
        # (field name, parameter name, positional only): "_id" or "model_config" cannot be a
        # pydantic field, so it is one under another name with the parameter's as its alias
        self._params: list[tuple[str, str, bool]] = []
        for i, param in enumerate(params):
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise InputError(f"tool {self.name}: *args and **kwargs cannot be described to a model")
            annotation = hints.get(param.name, str)
            default = param.default if param.default is not inspect.Parameter.empty else ...
            field = param.name
            if field.startswith("_") or field.startswith("model_") or hasattr(BaseModel, field):
                field = f"arg{i}_{field.lstrip('_')}"
                fields[field] = (annotation, Field(default, alias=param.name))
            else:
                fields[field] = (annotation, default)
            self._params.append((field, param.name, param.kind == param.POSITIONAL_ONLY))
        try:
            self.arguments = create_model(f"{self.name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
            self.arguments.model_json_schema()
        except Exception as exc:  # pydantic's errors for types it cannot describe
            raise InputError(f"tool {self.name}: its arguments cannot be described as JSON ({exc})") from None

    def __get__(self, instance: Any, owner: type | None = None) -> "FunctionTool":
        """``obj.method`` is the tool bound to ``obj``, as a method would be."""
        if instance is None or not self.method:
            return self
        return FunctionTool(self.func.__get__(instance, owner), self.name, self.description)

    def unbound_error(self) -> InputError:
        return InputError(f"tool {self.name} is a method: pass it from an instance (obj.{self.func.__name__})")

    def call(self, arguments: BaseModel) -> Any:
        if self.method:
            raise self.unbound_error()
        args = [getattr(arguments, field) for field, _, positional in self._params if positional]
        return self.func(*args, **{name: getattr(arguments, field) for field, name, positional in self._params
                                   if not positional})

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


def tool(func: Callable[..., Any] | None = None, *, name: str | None = None, description: str | None = None) -> Any:
    """Make a ``Tool`` from a function; its type hints become the argument schema,
    its docstring's first paragraph the description the model reads."""
    if func is None:
        return lambda f: FunctionTool(f, name, description)
    return FunctionTool(func, name, description)


@dataclass(frozen=True)
class ToolCall:
    """One call the model made, with what the tool returned."""

    name: str
    arguments: dict[str, Any]
    output: str

    def as_json(self) -> str:
        return json.dumps({"tool": self.name, "arguments": self.arguments}, ensure_ascii=False)


@dataclass(frozen=True)
class ToolSpec:
    """What the model needs to know about a tool: name, description, argument schema."""

    name: str
    description: str
    parameters: dict[str, Any]


def spec_of(t: Tool) -> ToolSpec:
    return ToolSpec(t.name, t.description, t.arguments.model_json_schema())


def check_tools(tools: Sequence[Tool]) -> dict[str, Tool]:
    """Validate tool definitions once, up front; returns them by name."""
    if isinstance(tools, (str, bytes, Tool)) or not isinstance(tools, (list, tuple, set, frozenset)):
        raise InputError(f"tools must be a list of tools, not {type(tools).__name__}")
    by_name: dict[str, Tool] = {}
    for t in tools:
        if not isinstance(t, Tool):
            raise InputError(f"{t!r} is not a Tool: decorate the function with @tether.tool or subclass Tool")
        if isinstance(t, FunctionTool) and t.method:
            raise t.unbound_error()
        arguments = getattr(t, "arguments", None)
        if not (isinstance(arguments, type) and issubclass(arguments, BaseModel)):
            raise InputError(f"tool {t.name or t!r}: `arguments` must be a pydantic model class")
        check_spec(spec_of(t))
        if t.name in by_name:
            raise InputError(f"two tools are named {t.name!r}")
        by_name[t.name] = t
    return by_name


def check_spec(spec: ToolSpec) -> None:
    if not isinstance(spec.name, str) or not _NAME.match(spec.name) or spec.name == ANSWER:
        raise InputError(f"tool name {spec.name!r} must match {_NAME.pattern} and not be {ANSWER!r}")
    if not isinstance(spec.parameters, dict) or spec.parameters.get("type", "object") != "object":
        raise InputError(f"tool {spec.name}: parameters must be a JSON schema of an object")


# ----------------------------------------------------------------- what the model sees

def decision_schema(specs: Sequence[ToolSpec], *, allow_answer: bool = True) -> dict[str, Any]:
    """One JSON schema for the next step: call one of ``specs`` or (if allowed) answer."""
    defs: dict[str, Any] = {}
    options: list[dict[str, Any]] = []
    for spec in specs:
        params = dict(spec.parameters)
        for name, definition in params.pop("$defs", {}).items():
            if defs.setdefault(name, definition) != definition:
                raise InputError(f"tools define two different {name!r} types; rename one")
        options.append({"type": "object", "properties": {"tool": {"const": spec.name}, "arguments": params},
                        "required": ["tool", "arguments"], "additionalProperties": False})
    if allow_answer:
        options.insert(0, {"type": "object", "properties": {"tool": {"const": ANSWER}}, "required": ["tool"],
                           "additionalProperties": False})
    if not options:
        raise InputError("no tool to call and answering is not allowed")
    schema: dict[str, Any] = {"anyOf": options}
    if defs:
        schema["$defs"] = defs
    return schema


def tools_prompt(specs: Sequence[ToolSpec], *, allow_answer: bool = True) -> str:
    lines = ["You can call these tools:"]
    for spec in specs:
        args = {k: _describe(v) for k, v in spec.parameters.get("properties", {}).items()}
        lines.append(f"- {spec.name}: {spec.description or 'no description'} Arguments: {json.dumps(args)}")
    if allow_answer:
        lines.append("Use a tool only when the request needs exactly what the tool's description offers. For "
                     "anything else (writing, general knowledge, advice, translation), or when the results you "
                     'have already cover the request, reply {"tool": "none"}.')
    lines.append('Otherwise call one tool: reply {"tool": "<name>", "arguments": {...}}. You will see its result '
                 "and may then call another.")
    return "\n".join(lines)


def with_results(prompt: str, calls: Sequence[ToolCall]) -> str:
    """The user's request with the tool results folded in: how the final answer sees them.

    Small models answer the request better this way than after a chain of
    tool turns, where they tend to answer the last tool result instead.
    """
    if not calls:
        return prompt
    results = "\n".join(f"- {c.name}({json.dumps(c.arguments, ensure_ascii=False)}) returned: {c.output}" for c in calls)
    return f"Done for this request already:\n{results}\n\n{prompt}"


def result_message(call: ToolCall) -> str:
    return f"Result of {call.name}: {call.output}"


def choose(specs: Sequence[ToolSpec], mode: str) -> tuple[list[ToolSpec], bool]:
    """The tools one step may call under ``mode`` (auto, required or a tool's name),
    and whether it may answer instead."""
    if mode in ("auto", "required"):
        return list(specs), mode == "auto"
    return [s for s in specs if s.name == mode], False


DECISION_BUDGET = 512
CUT = "<cut>"  # decide()'s name for a decision that ran out of the caller's token budget


def decide(engine: Any, messages: list[Any], specs: Sequence[ToolSpec], *, allow_answer: bool, attempts: int = 1,
           validate: Callable[[str, dict[str, Any]], Any] | None = None,
           cancel: Any = None, max_tokens: int | None = None, fit_window: bool = False) -> tuple[str, Any, Any]:
    """One guided step: ``(tool name or ANSWER, arguments, completion)``.

    ``validate(name, arguments)`` may turn the arguments into something else (a
    pydantic instance) or raise ``ValueError``; a failed attempt is retried with
    sampling up to ``attempts`` in all, then ``InvalidOutputError``. With a caller's
    ``max_tokens`` below the step's own budget, a decision it cuts short is ``(CUT, {},
    completion)``, as an OpenAI tool call cut by ``max_tokens`` ends with "length". With
    ``fit_window`` (nobody set a budget) the step's budget shrinks to what the prompt leaves of
    the window, as an answer's does, and a decision the window cuts is ``CUT`` too.
    """
    from tether.models.engine import Sampling

    schema = decision_schema(specs, allow_answer=allow_answer)
    problem, attempts = "", max(1, attempts)
    budget = min(DECISION_BUDGET, max_tokens) if max_tokens else DECISION_BUDGET
    for attempt in range(attempts):
        sampling = Sampling.greedy(budget) if attempt == 0 else Sampling.random(0.7, seed=1234, max_tokens=budget)
        completion = engine.complete(messages, sampling, json_schema=schema, cancel=cancel, fit_window=fit_window)
        if completion.finish_reason == "length" and completion.completion_tokens < DECISION_BUDGET:
            return CUT, {}, completion  # the caller's budget or the window ran out, not the step's own
        try:
            name, arguments = parse_decision(completion.text, specs)
            if validate is not None and name != ANSWER:
                arguments = validate(name, arguments)
            return name, arguments, completion
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            problem = str(exc).splitlines()[0]
    raise InvalidOutputError(f"the model's tool call was invalid{' after a retry' if attempts > 1 else ''}: {problem}",
                             completion.text)


def parse_decision(text: str, specs: Sequence[ToolSpec]) -> tuple[str, dict[str, Any]]:
    """``(tool name or ANSWER, arguments)`` from guided output; ``ValueError`` if it is not one."""
    value = json.loads(text)
    if not isinstance(value, dict) or not isinstance(value.get("tool"), str):
        raise ValueError("not a tool decision")
    name = value["tool"]
    if name == ANSWER:
        return ANSWER, {}
    if name not in {s.name for s in specs} or not isinstance(value.get("arguments"), dict):
        raise ValueError(f"unknown tool {name!r} or arguments missing")
    return name, value["arguments"]


def run_call(t: Tool, arguments: BaseModel) -> Any:
    """Call the tool. An ``async def`` tool is awaited on a fresh event loop: in this thread,
    or, when this thread already runs a loop (Session calls block), in a helper thread."""
    result = t.call(arguments)
    if not inspect.isawaitable(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_awaited(result))
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tether-tool") as pool:
        return pool.submit(asyncio.run, _awaited(result)).result()


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def render_output(value: Any, max_chars: int = MAX_OUTPUT_CHARS) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, BaseModel):
        text = value.model_dump_json()
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = str(value)
    text = replace_surrogates(text)[0]  # a Latin-1 file name from os.listdir is the tool's, not the user's fault
    if len(text) > max_chars:
        text = text[:max_chars] + f" …[cut: {len(text) - max_chars} more characters]"
    return text


def fit_output(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> str:
    """``text`` cut to ``max_tokens`` of the model's tokens: a character cap alone let 4,000
    characters of Chinese (~7,800 tokens) overflow the window after the tool had run."""
    tokens = count_tokens(text)
    if tokens <= max_tokens:
        return text
    keep = int(len(text) * max_tokens / tokens)
    while keep > 0 and count_tokens(text[:keep]) > max_tokens:
        keep = int(keep * 0.9)
    return text[:keep] + f" …[cut: {len(text) - keep} more characters]"


def _describe(schema: dict[str, Any]) -> Any:
    """A short type hint for a property: "string", ["a", "b"], or its description."""
    if "enum" in schema:
        return schema["enum"]
    kind = schema.get("type") or ("object" if "$ref" in schema else "any")
    if "description" in schema:
        return f"{kind}: {schema['description']}"
    return kind


def _first_paragraph(doc: str) -> str:
    return doc.strip().split("\n\n")[0].replace("\n", " ").strip()


__all__ = ["Tool", "FunctionTool", "ToolCall", "ToolSpec", "tool"]
