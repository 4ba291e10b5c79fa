"""The Session API, after Apple's ``LanguageModelSession``.

    session = Session(instructions="You are terse.", model="qwen2.5-0.5b")
    print(session.respond("Name a colour.").content)

    class Cat(BaseModel):
        name: str
        age: int

    cat = session.respond("Invent a cat.", schema=Cat).content   # a Cat, always

    for snapshot in session.stream("Invent a cat.", schema=Cat):
        print(snapshot.content)          # {}, {"name": "Tom"}, {"name": "Tom", "age": 3}

A session keeps a transcript, so each call sees the earlier turns. The model
loads on first use (or ``prewarm()``), once per process. With ``tools=``, the
model may call Python functions before it answers (see ``tether.tools``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Generic, Iterator, Sequence, TypeVar, overload

import pydantic_core
from pydantic import BaseModel, TypeAdapter, ValidationError

from tether import tools as _tools
from tether.errors import (ConcurrentRequestsError, ContextWindowExceededError, GenerationCancelledError, InputError,
                           InvalidOutputError, ToolCallError)
from tether.models import catalog
from tether.models.catalog import Availability
from tether.models.engine import Completion, LlamaEngine, Message, Sampling, cancellation, current_cancel, load
from tether.tools import Tool, ToolCall

T = TypeVar("T", bound=BaseModel)
C = TypeVar("C")


_ROLES = ("instructions", "prompt", "tool", "response")
_END = object()  # marks the end of a stream read on a worker thread
_STOP_WAIT_S = 10.0  # how long a new request waits for a cancelled one to stop (one token, or a tool step)


@dataclass(frozen=True)
class TranscriptEntry:
    role: str  # "instructions" | "prompt" | "tool" | "response"
    content: str
    tool_call: ToolCall | None = None  # set on "tool" entries; content is the tool's output

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise InputError(f"a transcript entry's role is one of {', '.join(_ROLES)}, not {self.role!r:.40}")
        if not isinstance(self.content, str):
            raise InputError(f"a transcript entry's content is text, not {type(self.content).__name__}")
        if self.tool_call is not None and not isinstance(self.tool_call, ToolCall):
            raise InputError(f"tool_call must be a ToolCall, not {type(self.tool_call).__name__}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_call is not None:
            out["tool_call"] = {"name": self.tool_call.name, "arguments": self.tool_call.arguments}
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "TranscriptEntry":
        """The inverse of ``to_dict``; ``InputError`` names what is wrong with a saved entry."""
        if not isinstance(data, dict) or data.get("role") not in _ROLES or not isinstance(data.get("content"), str):
            raise InputError(f"a transcript entry needs a role ({', '.join(_ROLES)}) and text content, got {data!r:.120}")
        call = data.get("tool_call")
        if data["role"] == "tool":
            if not (isinstance(call, dict) and isinstance(call.get("name"), str)
                    and isinstance(call.get("arguments"), dict)):
                raise InputError(f"a tool entry needs tool_call.name and tool_call.arguments, got {call!r:.120}")
            return cls("tool", data["content"], ToolCall(call["name"], call["arguments"], data["content"]))
        return cls(data["role"], data["content"])


@dataclass
class Response(Generic[C]):
    """``content`` is a ``str``, or an instance of the schema you asked for."""

    content: C
    text: str
    completion: Completion
    tool_calls: list[ToolCall] = field(default_factory=list)

    @property
    def usage(self) -> dict[str, int]:
        c = self.completion
        return {"prompt_tokens": c.prompt_tokens, "completion_tokens": c.completion_tokens,
                "total_tokens": c.prompt_tokens + c.completion_tokens}

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class _Guide:
    """What guided generation needs from a schema: its name, its JSON schema and a parser."""

    name: str
    json_schema: dict[str, Any]
    validate_json: Any  # (text) -> value; raises ValidationError


def _guide(schema: Any) -> _Guide:
    """A pydantic model, or any type pydantic can validate (``list[str]``, ``Literal[...]``, an
    ``Enum``, a dataclass or ``TypedDict``, ``int``…); ``InputError`` saying why not otherwise."""
    if isinstance(schema, type) and issubclass(schema, BaseModel):
        name, validate, describe = schema.__name__, schema.model_validate_json, schema.model_json_schema
    else:
        if schema is None or isinstance(schema, (str, bytes, int, float, bool, dict, list, tuple, set)):
            raise InputError(f"schema must be a pydantic model class or a type, not {type(schema).__name__} "
                             f"{schema!r:.60}")
        name = getattr(schema, "__name__", None) or " ".join(repr(schema).split())[:60]
        try:
            adapter = TypeAdapter(schema)
        except Exception as exc:  # pydantic's errors for what it cannot validate
            raise InputError(f"schema {name} is not a type pydantic can validate: "
                             f"{' '.join(str(exc).split())[:200]}") from None
        validate, describe = adapter.validate_json, adapter.json_schema
    try:
        json_schema = describe()
    except Exception as exc:  # pydantic's errors for field types it cannot describe
        raise InputError(f"schema {name} cannot be described as JSON: {' '.join(str(exc).split())[:200]}") from None
    return _Guide(name, json_schema, validate)


def _invalid(exc: ValidationError, completion: Completion, max_tokens: int) -> str:
    reason = f"{exc.error_count()} validation error(s): {exc.errors()[0]['msg']}"
    if completion.finish_reason == "length":
        reason += f" (output cut at {max_tokens} tokens)"
    return reason


class ResponseStream:
    """Iterate for text deltas; ``cancel()`` from any thread stops generation.

    After the loop, ``response`` holds the full ``Response`` (None if cancelled).
    """

    def __init__(self, session: "Session", prompt: str, messages: list[Message], sampling: Sampling, logprobs: bool,
                 tool_calls: list[ToolCall] | None = None, json_schema: dict[str, Any] | None = None):
        self._session = session
        self._prompt = prompt
        self.tool_calls = tool_calls or []
        self._cancel = threading.Event()
        self._reader: int | None = None  # the thread reading the stream right now
        self._once = threading.Lock()  # the session is released once, whichever thread gets there
        self._result: list[Completion] = []
        # Building the iterator checks the context window, so errors surface here.
        self._deltas = session.engine.stream(messages, sampling, json_schema=json_schema, logprobs=logprobs,
                                             cancel=self._cancel, result=self._result)
        self.response: Response[str] | None = None
        self._text = ""
        self.cancelled = False
        self._released = False
        self._finished = False

    def _release(self) -> None:
        if self._once.acquire(blocking=False):
            self._released = True
            self._session._free()

    def _stopping_elsewhere(self) -> bool:
        """Cancelled, and read on another thread, which stops it at its next token."""
        return self.cancelled and self._reader not in (None, threading.get_ident())

    def __iter__(self) -> Iterator[str]:
        if self._finished or self._released:
            return  # read once: a second loop yields nothing and records nothing
        self._reader = threading.get_ident()
        try:
            for delta in self._deltas:
                if delta.text:
                    self._text += delta.text
                    yield delta.text
        except GenerationCancelledError:
            self.cancelled = True
            return
        finally:
            if not self._result and not self.cancelled:  # left early (break, an exception in the loop)
                self.cancel()
            self._deltas.close()  # type: ignore[attr-defined]  # the engine's lock goes with it
            self._reader = None
            self._release()
        self._finished = True
        if self._result:
            completion = self._result[0]
            self.response = Response(self._content(completion), completion.text, completion, self.tool_calls)
            self._session._record(self._prompt, completion.text, self.tool_calls)

    def _content(self, completion: Completion) -> Any:
        return completion.text

    def collect(self) -> Response[Any]:
        """Read the rest of the stream and return the whole ``Response``, like ``respond``.

        Raises ``GenerationCancelledError`` if the stream was cancelled."""
        for _ in self:
            pass
        if self.response is None:
            raise GenerationCancelledError()
        return self.response

    def cancel(self) -> None:
        """Stop generating; nothing enters the transcript. Called on the thread that reads the
        stream, or when none does, the model and the session are free at once (a half-read
        stream held them until read again); a read on another thread stops at its next token."""
        self.cancelled = True
        self._cancel.set()
        if self._reader in (None, threading.get_ident()):  # no read is running: nothing to race
            with contextlib.suppress(ValueError):  # unless one began or ended meanwhile: it frees them itself
                self._stop()

    def _stop(self) -> None:
        self._deltas.close()  # type: ignore[attr-defined]  # the engine's lock goes with it
        self._release()

    def close(self) -> None:
        """Stop generating and release the model (same as breaking out of the loop)."""
        if not self._finished:
            self.cancel()
        self._stop()

    def __del__(self) -> None:  # a stream dropped unread must not keep the session busy
        try:
            self.close()
        except Exception:
            pass

    def text(self) -> str:
        """Consume the stream and return the text generated (all of it, unless cancelled)."""
        for _ in self:
            pass
        return self._text

    def __aiter__(self) -> AsyncIterator[Any]:
        """``async for`` in asyncio code: the model runs on a worker thread, so the event loop
        keeps running. Leaving early (``break``, a cancelled task) stops the generation, and the
        next request on the session waits the token it takes to stop."""
        return _AsyncReader(self, self._read_async())

    async def _read_async(self) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue()

        def pump() -> None:
            try:
                for item in self:
                    loop.call_soon_threadsafe(queue.put_nowait, (item, None))
            except BaseException as exc:  # delivered to the awaiting side, raised there
                loop.call_soon_threadsafe(queue.put_nowait, (_END, exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, (_END, None))

        self._worker = loop.run_in_executor(None, pump)
        try:
            while True:
                item, exc = await queue.get()
                if item is _END:
                    if exc is not None:
                        raise exc
                    return
                yield item
        finally:
            await self._stop_worker()

    async def _stop_worker(self) -> None:
        """Cancel the generation ``async for`` runs on a worker thread and wait until it has stopped."""
        worker = getattr(self, "_worker", None)
        if worker is not None and not worker.done():
            self.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.shield(worker)

    async def __aenter__(self) -> "ResponseStream":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop_worker()
        self.close()

    def __enter__(self) -> "ResponseStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncReader:
    """``async for``'s iterator over a stream. Dropped after a ``break``, it cancels the stream at
    once: the async generator alone is closed only later, by a task the event loop schedules, and
    a request made meanwhile found the session busy."""

    def __init__(self, stream: ResponseStream, agen: Any):
        self._stream, self._agen = stream, agen

    def __aiter__(self) -> "_AsyncReader":
        return self

    def __anext__(self) -> Any:
        return self._agen.__anext__()

    def aclose(self) -> Any:
        return self._agen.aclose()

    def __del__(self) -> None:
        try:
            if not self._stream._finished:
                self._stream.cancel()
        except Exception:
            pass


@dataclass(frozen=True)
class Snapshot:
    """What a guided stream has generated so far.

    ``content`` holds the JSON written so far, parsed: for a model, a ``dict`` of the fields
    begun (a string grows as it is written; a number or ``true`` appears when whole), not yet
    the schema's type; for a list, the items begun. ``raw_content`` is the text.
    """

    content: Any
    raw_content: str


class GuidedResponseStream(ResponseStream):
    """Iterate for ``Snapshot``s of a reply constrained to a pydantic schema.

    After the loop, ``response.content`` is the schema's instance. Output the grammar
    cannot rule out but the schema's validators refuse raises ``InvalidOutputError``
    at the end of the loop (``respond`` would retry; a stream has already been shown).
    """

    def __init__(self, session: "Session", prompt: str, messages: list[Message], sampling: Sampling, logprobs: bool,
                 tool_calls: list[ToolCall], guide: _Guide):
        self._guide = guide
        self._max_tokens = sampling.max_tokens
        super().__init__(session, prompt, messages, sampling, logprobs, tool_calls, guide.json_schema)

    def __iter__(self) -> Iterator[Snapshot]:  # type: ignore[override]
        shown, shown_text = _NOTHING, ""
        for _ in super().__iter__():
            content = _partial_value(self._text)
            if content is not _NOTHING and content != shown:
                shown, shown_text = content, self._text
                yield Snapshot(content, shown_text)
        if self.response is not None and self._text != shown_text:  # the last snapshot is the whole output
            yield Snapshot(pydantic_core.from_json(self._text), self._text)

    def _content(self, completion: Completion) -> Any:
        try:
            return self._guide.validate_json(completion.text)
        except ValidationError as exc:
            reason = _invalid(exc, completion, self._max_tokens)
            raise InvalidOutputError(f"model output did not match {self._guide.name}: {reason}",
                                     completion.text) from None


_NOTHING = object()  # no value begun yet


def _partial_value(text: str) -> Any:
    """The value begun in ``text`` so far: an unfinished string kept as far as it goes, an
    unfinished number left out (``3`` may yet become ``31522``); ``_NOTHING`` before any."""
    if not _ends_in_string(text):
        text = text.rstrip("0123456789+-.eE")
    try:
        return pydantic_core.from_json(text, allow_partial="trailing-strings")
    except ValueError:
        return _NOTHING


def _ends_in_string(text: str) -> bool:
    inside = escaped = False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and inside:
            escaped = True
        elif ch == '"':
            inside = not inside
    return inside


class Session:
    def __init__(
        self,
        instructions: str | None = None,
        model: str = catalog.DEFAULT_MODEL,
        *,
        sampling: Sampling | None = None,
        n_ctx: int | None = None,
        n_threads: int | None = None,
        engine: LlamaEngine | None = None,
        tools: Sequence[Tool] = (),
        max_tool_calls: int = 4,
    ):
        for name, value, low in (("max_tool_calls", max_tool_calls, 1), ("n_ctx", n_ctx, 1), ("n_threads", n_threads, 1)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise InputError(f"{name} must be a whole number >= {low}, not {value!r}")
        self.tools = _tools.check_tools(tools)
        self.max_tool_calls = max_tool_calls
        self.model = engine.name if engine is not None else model
        self.sampling = _check_sampling(sampling) or Sampling()
        self._n_ctx, self._n_threads = n_ctx, n_threads
        self._engine = engine
        self._busy = threading.Lock()
        self._stopping: Any = None  # () -> bool: the running request was cancelled and stops elsewhere
        self.transcript: list[TranscriptEntry] = []
        self.instructions = instructions

    @property
    def instructions(self) -> str | None:
        return self._instructions

    @instructions.setter
    def instructions(self, value: str | None) -> None:
        """Changing the instructions changes the transcript's first entry too, so a saved and
        resumed session gets what this one sends."""
        if value is not None and not isinstance(value, str):
            raise InputError(f"instructions must be text, not {type(value).__name__}")
        self._instructions = value
        self.transcript = [e for e in self.transcript if e.role != "instructions"]
        if value:
            self.transcript.insert(0, TranscriptEntry("instructions", value))

    # ------------------------------------------------------------- transcript

    def transcript_dict(self) -> dict[str, Any]:
        """The conversation as JSON-ready data, to save and later resume with ``from_transcript``."""
        return {"type": "tether.Transcript", "version": 1, "entries": [e.to_dict() for e in self.transcript]}

    @classmethod
    def from_transcript(cls, transcript: Any, model: str = catalog.DEFAULT_MODEL, **options: Any) -> "Session":
        """A session that goes on from a saved conversation (``transcript_dict()``, or a list of
        entries); its instructions come from the transcript's ``instructions`` entry, unless
        ``instructions=`` gives new ones."""
        if isinstance(transcript, dict):
            if transcript.get("type", "tether.Transcript") != "tether.Transcript" or transcript.get("version", 1) != 1:
                raise InputError(f"not a version 1 tether.Transcript (type {transcript.get('type')!r}, "
                                 f"version {transcript.get('version')!r})")
            entries = transcript.get("entries")
        else:
            entries = transcript
        if not isinstance(entries, (list, tuple)):
            raise InputError("a transcript is a transcript_dict() or a list of entries")
        parsed = [e if isinstance(e, TranscriptEntry) else TranscriptEntry.from_dict(e) for e in entries]
        given = [e.content for e in parsed if e.role == "instructions"]
        if len(given) > 1:
            raise InputError(f"a transcript holds one instructions entry, not {len(given)}")
        instructions = given[0] if given else None
        if "instructions" in options:  # new instructions for the rest of the conversation
            instructions = options.pop("instructions")
        session = cls(instructions, model, **options)  # its transcript opens with the instructions entry
        session.transcript += [e for e in parsed if e.role != "instructions"]
        return session

    # ------------------------------------------------------------- model

    @staticmethod
    def availability(model: str = catalog.DEFAULT_MODEL) -> Availability:
        """``(available, reason)`` for ``model`` without loading it. Never raises."""
        return catalog.availability(model)

    @property
    def is_available(self) -> bool:
        return self._engine is not None or bool(catalog.availability(self.model))

    @property
    def engine(self) -> LlamaEngine:
        if self._engine is None:
            self._engine = load(self.model, n_ctx=self._n_ctx, n_threads=self._n_threads)
        return self._engine

    def prewarm(self) -> None:
        """Load the model now rather than on the first request."""
        _ = self.engine

    @property
    def is_responding(self) -> bool:
        return self._busy.locked()

    @property
    def context_size(self) -> int:
        """Tokens the model can hold: the transcript, the prompt and the answer together."""
        return self.engine.context_window

    def token_count(self, prompt: str = "") -> int:
        """Tokens the next request with ``prompt`` would send: instructions, transcript and prompt,
        as the chat template renders them. Plus the answer budget, it must fit ``context_size``."""
        if not isinstance(prompt, str):
            raise InputError(f"prompt must be text, not {type(prompt).__name__}")
        return len(self.engine.tokenize_chat(self._messages(prompt, None)))

    # ------------------------------------------------------------- requests

    @overload
    def respond(self, prompt: str, schema: None = None, *, sampling: Sampling | None = None, logprobs: bool = False,
                tool_choice: str = "auto") -> Response[str]: ...
    @overload
    def respond(self, prompt: str, schema: type[T], *, sampling: Sampling | None = None, logprobs: bool = False,
                tool_choice: str = "auto") -> Response[T]: ...
    @overload
    def respond(self, prompt: str, schema: Any, *, sampling: Sampling | None = None, logprobs: bool = False,
                tool_choice: str = "auto") -> Response[Any]: ...

    def respond(self, prompt: str, schema: Any = None, *, sampling: Sampling | None = None,
                logprobs: bool = False, tool_choice: str = "auto",
                cancel: threading.Event | None = None) -> Response[Any]:
        """Answer ``prompt``. With ``schema`` (a pydantic model, or a type such as
        ``list[str]`` or ``Literal["yes", "no"]``), the output is constrained to its JSON
        schema and parsed into it; a result that still fails validation is
        retried once with sampling, then raises ``InvalidOutputError``.

        With tools, the model first calls as many as it needs (at most
        ``max_tool_calls``); ``tool_choice`` is "auto", "required" (call at
        least one), "none", or a tool's name (call that one first).

        Setting ``cancel`` (from another thread) stops the generation, tool steps
        included, with ``GenerationCancelledError``; nothing enters the transcript.
        This call blocks; in asyncio code use ``respond_async``.
        """
        if cancel is not None:
            if not callable(getattr(cancel, "is_set", None)):
                raise InputError(f"cancel must be a threading.Event, not {type(cancel).__name__}")
            with cancellation(cancel):
                return self.respond(prompt, schema, sampling=sampling, logprobs=logprobs, tool_choice=tool_choice)
        _check_prompt(prompt)
        _check_sampling(sampling)
        guide = _guide(schema) if schema is not None else None
        sampling = sampling or self.sampling
        with self._acquire(), self._window_hint():
            calls = self._call_tools(prompt, tool_choice)
            messages = self._messages(_tools.with_results(prompt, calls), guide)
            if guide is None:
                completion = self.engine.complete(messages, sampling, logprobs=logprobs)
                self._record(prompt, completion.text, calls)
                return Response(completion.text, completion.text, completion, calls)
            last_error = ""
            for attempt in range(2):
                attempt_sampling = sampling if attempt == 0 else sampling.retry()  # the caller's stops and biases stay
                completion = self.engine.complete(messages, attempt_sampling, json_schema=guide.json_schema,
                                                  logprobs=logprobs)
                try:
                    value = guide.validate_json(completion.text)
                except ValidationError as exc:
                    last_error = _invalid(exc, completion, sampling.max_tokens)
                    continue
                self._record(prompt, completion.text, calls)
                return Response(value, completion.text, completion, calls)
            raise InvalidOutputError(f"model output did not match {guide.name} after a retry: {last_error}", completion.text)

    async def respond_async(self, prompt: str, schema: Any = None, **options: Any) -> Response[Any]:
        """``respond`` on a worker thread, so the event loop keeps running. Cancelling the
        awaiting task stops the generation (the session is free again once it has stopped)."""
        cancel = options.pop("cancel", None) or threading.Event()  # the caller's own event works too
        future = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(self.respond, prompt, schema, cancel=cancel, **options))
        future.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved: no "never retrieved" noise
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancel.set()
            # the task ends once the generation has stopped (a token), so the session is free then
            with contextlib.suppress(BaseException):
                await asyncio.wait({future}, timeout=_STOP_WAIT_S)
            raise

    @overload
    def stream(self, prompt: str, schema: None = None, *, sampling: Sampling | None = None, logprobs: bool = False,
               tool_choice: str = "auto") -> ResponseStream: ...
    @overload
    def stream(self, prompt: str, schema: Any, *, sampling: Sampling | None = None,
               logprobs: bool = False, tool_choice: str = "auto") -> GuidedResponseStream: ...

    def stream(self, prompt: str, schema: Any = None, *, sampling: Sampling | None = None,
               logprobs: bool = False, tool_choice: str = "auto") -> ResponseStream:
        """Stream the answer: text deltas, or with ``schema`` a ``Snapshot`` of the object so
        far each time it grows (Apple's ``streamResponse(to:generating:)``). The context window
        is checked before it starts; tool calls, if any, run before it returns."""
        _check_prompt(prompt)
        _check_sampling(sampling)
        guide = _guide(schema) if schema is not None else None
        self._claim()
        try:
            with self._window_hint():
                calls = self._call_tools(prompt, tool_choice)
                messages = self._messages(_tools.with_results(prompt, calls), guide)
                if guide is None:
                    stream = ResponseStream(self, prompt, messages, sampling or self.sampling, logprobs, calls)
                else:
                    stream = GuidedResponseStream(self, prompt, messages, sampling or self.sampling, logprobs, calls,
                                                  guide)
        except BaseException:
            self._free()
            raise
        held = weakref.ref(stream)  # a stream dropped unread must still be collected, and free the session
        self._stopping = lambda: (it := held()) is not None and it._stopping_elsewhere()
        return stream

    # ------------------------------------------------------------- internals

    def _claim(self) -> None:
        """Take the session, or raise ``ConcurrentRequestsError``. A request that was cancelled and is
        stopping on another thread is waited for: it frees the session within a token, and a new
        request right after a cancelled one (a cancelled task, a ``break``) must not fail."""
        if not self._busy.acquire(blocking=False):
            stopping = self._stopping
            if not (stopping is not None and stopping() and self._busy.acquire(timeout=_STOP_WAIT_S)):
                raise ConcurrentRequestsError("this session is already responding; wait for it or use another session")
        self._stopping = None

    def _free(self) -> None:
        self._stopping = None
        self._busy.release()

    @contextlib.contextmanager
    def _acquire(self) -> Iterator[None]:
        self._claim()
        cancel, owner = current_cancel(), threading.get_ident()
        if cancel is not None:
            self._stopping = lambda: cancel.is_set() and threading.get_ident() != owner
        try:
            yield
        finally:
            self._free()

    @contextlib.contextmanager
    def _window_hint(self) -> Iterator[None]:
        """A window the earlier turns have filled says how to go on: the error alone reads as if
        the prompt were too long, and the session stays usable once turns are dropped."""
        try:
            yield
        except ContextWindowExceededError as exc:
            turns = sum(e.role == "response" for e in self.transcript)
            if turns:
                exc.args = (f"{exc}; this session's {turns} earlier turn(s) count too: start a new Session, "
                            "or drop the oldest turns from session.transcript (each a prompt, its tool entries "
                            "and its response)",)
            raise

    def _call_tools(self, prompt: str, tool_choice: str) -> list[ToolCall]:
        """Let the model call tools until it chooses to answer; each step is guided JSON."""
        if isinstance(tool_choice, dict):  # OpenAI's {"type": "function", "function": {"name": …}}
            function = tool_choice.get("function")
            tool_choice = function.get("name") if isinstance(function, dict) else None  # type: ignore[assignment]
        if not isinstance(tool_choice, str) or (tool_choice not in ("auto", "required", "none")
                                                and tool_choice not in self.tools):
            raise InputError(f"tool_choice must be auto, required, none or one of {sorted(self.tools)}; got {tool_choice!r}")
        if tool_choice == "required" and not self.tools:  # else it would answer without the call it requires
            raise InputError("tool_choice 'required' needs a tool, and this session has none")
        if not self.tools or tool_choice == "none":
            return []
        specs = [_tools.spec_of(t) for t in self.tools.values()]
        calls: list[ToolCall] = []
        for step in range(self.max_tool_calls):
            allowed, allow_answer = _tools.choose(specs, tool_choice if step == 0 else "auto")
            guide = _tools.tools_prompt(allowed, allow_answer=allow_answer)
            messages = self._messages(prompt, None, system=f"{self.instructions}\n\n{guide}" if self.instructions else guide)
            for call in calls:
                messages += [Message("assistant", call.as_json()), Message("user", _tools.result_message(call))]
            name, arguments, _ = _tools.decide(self.engine, messages, allowed, allow_answer=allow_answer, attempts=2,
                                               validate=lambda n, raw: self.tools[n].arguments.model_validate(raw))
            if name == _tools.ANSWER:
                break
            dumped = arguments.model_dump(mode="json", by_alias=True)  # the parameters' own names
            if any(c.name == name and c.arguments == dumped for c in calls):
                break  # the same call again would return the same result
            try:
                output = _tools.render_output(_tools.run_call(self.tools[name], arguments))
            except Exception as exc:
                raise ToolCallError(name, exc) from exc
            # every call's output together may take at most a share of the window, leaving the rest
            output = _tools.fit_output(output, self.engine.count_tokens,
                                       self.engine.context_window // (self.max_tool_calls + 1))
            calls.append(ToolCall(name, dumped, output))
        return calls

    def _messages(self, prompt: str, guide: _Guide | None, *, system: str | None = None) -> list[Message]:
        messages: list[Message] = []
        system = system if system is not None else self.instructions
        if system:
            messages.append(Message("system", system))
        asked, calls = "", []
        for entry in self.transcript:
            if entry.role == "prompt":
                asked, calls = entry.content, []
            elif entry.role == "tool" and entry.tool_call is not None:
                calls.append(entry.tool_call)
            elif entry.role == "response":
                messages.append(Message("user", _tools.with_results(asked, calls)))
                messages.append(Message("assistant", entry.content))
        if guide is not None:
            prompt = guided_prompt(prompt, guide.json_schema)
        messages.append(Message("user", prompt))
        return messages

    def _record(self, prompt: str, text: str, calls: Sequence[ToolCall] = ()) -> None:
        self.transcript.append(TranscriptEntry("prompt", prompt))
        for call in calls:
            self.transcript.append(TranscriptEntry("tool", call.output, call))
        self.transcript.append(TranscriptEntry("response", text))


def _check_sampling(sampling: Any) -> Any:
    if sampling is not None and not isinstance(sampling, Sampling):
        raise InputError(f"sampling must be a tether.Sampling, not {type(sampling).__name__} "
                         "(e.g. Sampling.greedy(max_tokens=64))")
    return sampling


def _check_prompt(prompt: str) -> None:
    if not isinstance(prompt, str):
        raise InputError(f"prompt must be text, not {type(prompt).__name__}")
    if not prompt.strip():
        raise InputError("prompt is empty")


def guided_prompt(prompt: str, json_schema: dict[str, Any]) -> str:
    """``prompt`` as guided generation sends it: with the schema, titles dropped. A feature that
    routes a guided request sends this, so the device answers it as ``respond(prompt, schema)``."""
    return f"{prompt}\n\nAnswer with JSON matching this schema:\n{json.dumps(_compact_schema(json_schema))}"


def _compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without titles: shorter prompts, same meaning."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: names(v) if k in _NAME_MAPS else strip(v) for k, v in node.items()
                    if not (k == "title" and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    def names(node: Any) -> Any:  # keys here are field or definition names ("title" too), not keywords
        return {k: strip(v) for k, v in node.items()} if isinstance(node, dict) else strip(node)

    return strip(schema)


_NAME_MAPS = ("properties", "$defs", "definitions", "patternProperties")
