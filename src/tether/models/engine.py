"""The llama.cpp engine: one loaded model, chat generation, guided JSON, logprobs.

Generation runs through ``Llama.generate`` on the exact token list we count,
so the context check and the generation see the same prompt. Logprobs are
read from the context's last logits after each sampled token, which works
without ``logits_all`` (that flag would allocate n_ctx × n_vocab floats).
"""

from __future__ import annotations

import atexit
import codecs
import contextlib
import numbers
import os
import re
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from tether.errors import (
    ConcurrentRequestsError,
    ContextWindowExceededError,
    GenerationCancelledError,
    GenerationError,
    InputError,
    ModelUnavailableError,
)
from tether.models import catalog
from tether.models.grammar import schema_to_gbnf
from tether.models.lazy_grammar import LazyGrammarSampler
from tether.settings import env_int
from tether.text import require_unicode

DEFAULT_CONTEXT = 4096
N_BATCH = 512
# A prompt is read in blocks that end after each turn's header (or, for a template without
# headers, after each end-of-turn token) and every this many tokens in between, so its logits do
# not depend on what the cache held before (see LlamaEngine._block_ends and _prefill); a cached
# prefix is reused in whole blocks. Prefill runs as fast in
# 128-token batches as in 512-token ones on 2 cores (measured 142 and 134 tok/s on qwen2.5-0.5b).
PREFILL_BLOCK = 128
# llama.cpp may repack quantized weights into a CPU-friendly copy; measured +6% of the file for
# qwen2.5-0.5b and +56% for qwen2.5-1.5b, so the estimate allows 60%.
REPACK_MARGIN = 0.6


def default_threads() -> int:
    return env_int("TETHER_THREADS", max(1, min(os.cpu_count() or 1, 8)), maximum=256)


def default_context() -> int:
    # at most 128k tokens: the packaged models were trained on 8k-32k, and llama.cpp first tries to
    # allocate whatever is asked (99999999999 failed after 52 s with an error about the model file)
    return env_int("TETHER_N_CTX", DEFAULT_CONTEXT, minimum=256, maximum=131_072)


@dataclass(frozen=True)
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Sampling:
    """How tokens are picked. ``temperature=0`` is greedy (deterministic)."""

    temperature: float = 0.0
    top_p: float = 0.95
    top_k: int = 40
    seed: int | None = None
    max_tokens: int = 256
    stop: tuple[str, ...] = ()  # generation ends before the first of these strings
    # OpenAI's: lower a token's logit by count × frequency_penalty + presence_penalty (over the last 64)
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit); a dict works too

    def __post_init__(self) -> None:
        for name, kind, what in (("temperature", numbers.Real, "a number"), ("top_p", numbers.Real, "a number"),
                                 ("top_k", numbers.Integral, "a whole number"),
                                 ("max_tokens", numbers.Integral, "a whole number"),
                                 ("seed", numbers.Integral, "a whole number or None"),
                                 ("frequency_penalty", numbers.Real, "a number"),
                                 ("presence_penalty", numbers.Real, "a number")):
            value = getattr(self, name)
            if value is None and name == "seed":
                continue
            if isinstance(value, bool) or not isinstance(value, kind):
                raise InputError(f"{name} must be {what}, not {value!r}")
            object.__setattr__(self, name, float(value) if kind is numbers.Real else int(value))
        if not 0 <= self.temperature < float("inf"):  # also NaN
            raise InputError(f"temperature must be a finite number >= 0, not {self.temperature}")
        if not 0 <= self.top_p <= 1:  # 0 keeps only the most likely token: greedy, as OpenAI reads it
            raise InputError(f"top_p must be in [0, 1], not {self.top_p}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2 <= getattr(self, name) <= 2:
                raise InputError(f"{name} must be from -2 to 2, not {getattr(self, name)}")
        bias = self.logit_bias.items() if isinstance(self.logit_bias, dict) else self.logit_bias
        try:
            pairs = tuple((int(k), v) for k, v in bias if not isinstance(k, bool) and str(k).strip().isdigit())
        except (TypeError, ValueError):
            pairs = None
        if pairs is None or len(pairs) != len(tuple(bias)) or not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) and -100 <= v <= 100 for _, v in pairs):
            raise InputError("logit_bias maps token ids to numbers from -100 to 100")
        object.__setattr__(self, "logit_bias", tuple((k, float(v)) for k, v in pairs))
        if self.top_k < 0:
            raise InputError(f"top_k must be >= 0 (0: no limit), not {self.top_k}")
        if self.max_tokens < 1:
            raise InputError(f"max_tokens must be >= 1, not {self.max_tokens}")
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop  # OpenAI's stop: a string or a list
        if not isinstance(stop, (tuple, list)) or not all(isinstance(x, str) and x for x in stop):
            raise InputError(f"stop must be a string or a list of non-empty strings, not {self.stop!r}")
        object.__setattr__(self, "stop", tuple(stop))

    @classmethod
    def greedy(cls, max_tokens: int = 256, stop: tuple[str, ...] = ()) -> "Sampling":
        return cls(temperature=0.0, max_tokens=max_tokens, stop=stop)

    @classmethod
    def random(cls, temperature: float = 0.7, top_p: float = 0.95, seed: int | None = None, max_tokens: int = 256,
               stop: tuple[str, ...] = ()) -> "Sampling":
        return cls(temperature=temperature, top_p=top_p, seed=seed, max_tokens=max_tokens, stop=stop)

    def retry(self) -> "Sampling":
        """A second try for what a grammar cannot force (number bounds, ``uniqueItems``…): sampled,
        since greedy decoding would write the same answer again; a ``top_p`` of 0 or a ``top_k``
        of 1 is greedy too, so they are widened. The caller's stops, penalties and biases stay."""
        return replace(self, temperature=max(0.7, self.temperature), seed=(self.seed or 0) + 1,
                       top_p=self.top_p or 0.95, top_k=40 if self.top_k == 1 else self.top_k)


@dataclass(frozen=True)
class TokenLogprob:
    """One sampled token. ``token`` is its text (U+FFFD where it holds part of a character);
    ``raw`` is its bytes, so a client can join a character split across tokens (OpenAI's
    ``bytes``); ``top_raw`` gives the bytes of each ``top`` alternative in the same order."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()
    raw: bytes = b""
    top_raw: tuple[bytes, ...] = ()


@dataclass
class Completion:
    """A finished generation, with what the router and the ledger need."""

    text: str
    finish_reason: str  # "stop" | "length" | "cancelled"
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token: float
    duration: float
    logprobs: list[TokenLogprob] | None = None
    model: str = ""

    @property
    def mean_logprob(self) -> float | None:
        if not self.logprobs:
            return None
        return float(np.mean([lp.logprob for lp in self.logprobs]))

    @property
    def min_logprob(self) -> float | None:
        return min(lp.logprob for lp in self.logprobs) if self.logprobs else None

    @property
    def tokens_per_second(self) -> float:
        decode = self.duration - self.time_to_first_token
        return (self.completion_tokens - 1) / decode if self.completion_tokens > 1 and decode > 0 else 0.0


@dataclass
class Delta:
    """One streamed piece of text (possibly empty while a UTF-8 char is incomplete), with the
    logprobs of the tokens that wrote it (several when text waited on a possible stop string)."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass
class _Run:
    deltas: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)


_ambient = threading.local()


@contextlib.contextmanager
def _ambient_set(name: str, value: Any) -> Iterator[None]:
    """``_ambient.<name> = value`` on this thread for the block, then what it was before."""
    previous = getattr(_ambient, name, None)
    setattr(_ambient, name, value)
    try:
        yield
    finally:
        setattr(_ambient, name, previous)


def cancellation(event: threading.Event) -> contextlib.AbstractContextManager[None]:
    """Every generation on this thread inside the block stops once ``event`` is set, and one
    that would start after it raises at once. The gateway uses it to stop a feature (several
    generations deep) when its client goes away, without passing ``cancel`` down every call."""
    return _ambient_set("cancel", event)


def current_cancel() -> threading.Event | None:
    """The ambient cancel event of this thread, if any (for waits that are not generation)."""
    return getattr(_ambient, "cancel", None)


def drafting(listener: Callable[[str | None], None] | None) -> contextlib.AbstractContextManager[None]:
    """Every ``complete`` on this thread inside the block (or handed to ``generations_on``'s runner)
    gives ``listener`` its text as it is written: ``None`` when a generation starts, then each piece.
    The gateway streams a feature's drafts this way while the feature's checks decide what it will
    show, without passing a callback down every call. Guided (JSON) generations are not drafts."""
    return _ambient_set("drafts", listener)


def generations_on(runner: Callable[[str, Callable[[], Completion]], Completion]) -> contextlib.AbstractContextManager[None]:
    """Every ``complete`` on this thread inside the block runs as ``runner(engine_name, work)``.

    The gateway runs a routed feature on a worker thread and hands each device generation to
    the model's own generation thread, under its lock. So a feature that waits on the cloud
    (a stack written off the device) does not hold the model meanwhile. The ambient cancel
    goes with the work."""
    return _ambient_set("runner", runner)


def cancel_this_thread(event: threading.Event) -> None:
    """``cancellation(event)`` for the rest of this thread's life (a thread made for one stream)."""
    _ambient.cancel = event


class _AnyOf:
    """Set when any of the events is."""

    def __init__(self, *events: threading.Event):
        self.events = events

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class _GenerationLock:
    """The engine's lock, held while a stream is open. A second generation from another thread
    waits its turn; one from the thread that holds it (a second session used inside the loop
    that reads a stream) could only wait for itself, so it is an error instead."""

    def __init__(self, name: str):
        self.name = name
        self._lock = threading.Lock()
        self._owner: int | None = None

    def __enter__(self) -> None:
        if self._owner == threading.get_ident():
            raise ConcurrentRequestsError(
                f"a stream from {self.name} is still open on this thread; read it to the end or close it "
                "before starting another generation on the same model")
        self._lock.acquire()
        self._owner = threading.get_ident()

    def __exit__(self, *exc: object) -> None:
        self._owner = None
        self._lock.release()

    def take_for_good(self) -> bool:
        """Hold the model from now on, if no generation does (at exit, before it is freed)."""
        return self._lock.acquire(blocking=False)


_log_callback: Any = None
_GGML_LOG_LEVEL_ERROR = 4
_load_log = threading.local()


@contextlib.contextmanager
def _load_errors() -> Iterator[list[str]]:
    """The error lines llama.cpp logs on this thread meanwhile: its Python exception only ever
    says "Failed to load model from file", and the log line says why (a truncated file, say)."""
    _load_log.errors = errors = []
    try:
        yield errors
    finally:
        _load_log.errors = None


def _load_failure(exc: Exception, errors: list[str]) -> str:
    """llama.cpp's first error line without its function-name prefixes, else the exception."""
    for line in errors:
        reason = re.sub(r"^(\w+: )+(error loading model: )?(\w+: )?", "", line).strip()
        if reason:
            return reason
    return str(exc)


def _llama_cpp_module() -> Any:
    """``llama_cpp``, with its log routed through Tether: llama-cpp-python prints some of
    llama.cpp's log lines to ``sys.stderr`` whatever ``verbose`` says (a vocab-only load's
    "n_ctx_seq > n_ctx_train" warning), and a CLI's ``--json`` output must stay JSON. The
    lines are dropped unless ``TETHER_DEBUG`` is set."""
    global _log_callback
    import llama_cpp

    if _log_callback is None:
        @llama_cpp.llama_log_callback
        def forward(level: int, text: bytes, user_data: Any) -> None:
            line = text.decode("utf-8", errors="replace")
            errors = getattr(_load_log, "errors", None)
            if level == _GGML_LOG_LEVEL_ERROR and errors is not None:
                errors.append(line.strip())
            if os.environ.get("TETHER_DEBUG"):
                sys.stderr.write(line)

        _log_callback = forward  # a reference, or ctypes frees the callback llama.cpp calls
        llama_cpp.llama_log_set(forward, None)
    return llama_cpp


class LlamaEngine:
    """One GGUF model loaded in this process, shared by every session on it. Thread-safe:
    generations are serialized (a stream holds the model until it is read or closed)."""

    def __init__(self, model_path: Path, *, name: str = "", n_ctx: int = DEFAULT_CONTEXT, n_threads: int | None = None):
        try:
            llama_cpp = _llama_cpp_module()
        except ImportError as exc:  # pragma: no cover - pinned dependency
            raise ModelUnavailableError(name or str(model_path), "llama-cpp-python is not installed") from exc
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self._llama_cpp = llama_cpp
        self.name = name or model_path.stem
        self.path = model_path
        self.n_threads = n_threads or default_threads()
        try:
            with quiet_stderr(), _load_errors() as errors:
                self.llm = llama_cpp.Llama(
                    model_path=str(model_path),
                    n_ctx=n_ctx,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    n_batch=N_BATCH,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelUnavailableError(self.name, f"llama.cpp could not load {model_path}: {_load_failure(exc, errors)}") from exc
        # llama.cpp pads n_ctx up to a multiple of 256 and reports that, but sizes some buffers by
        # the n_ctx asked for: count against the smaller, or a prompt "fits" and then fails.
        self.context_window = min(self.llm.n_ctx(), n_ctx)
        self._lock = _GenerationLock(self.name)
        _open_engines.add(self)
        # A shared node must not let one request's cached prefix speed up (and so reveal, by timing)
        # or change the greedy output of another's; a device keeps its cache for the next turn.
        self.isolate_requests = False
        self._blocks_cached = 0  # leading cached tokens read in whole blocks (see _prefill)
        # Ask the grammar about the sampled token only (tether.models.lazy_grammar); False matches
        # every token of the vocabulary at every step, as llama-cpp-python does (benchmarks compare).
        self.lazy_grammar = True
        self._vocab = self.llm._model.vocab
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelUnavailableError(self.name, "the GGUF has no chat template")
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=self.llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=self.llm._model.token_get_text(bos) if bos != -1 else "",
        )
        self._opens_turn: dict[int, bool] = {}  # token -> control token that is not an end of turn
        self._has_newline: dict[int, bool] = {}
        self._header_blocks = False
        probe = self.tokenize_chat([Message("system", "x"), Message("user", "y")])
        ends, closed = self._block_ends(probe, headers=True)
        # A template whose turns open with a header line ("<|im_start|>user\n") ends its
        # generation prompt with one: then blocks end at headers, so the last turn and the
        # answer's header are read in one batch.
        self._header_blocks = closed and len(ends) >= 2

    # ------------------------------------------------------------- tokens

    def tokenize_chat(self, messages: Sequence[Message]) -> list[int]:
        """The prompt's tokens. Control tokens come from the chat template only: a message that
        spells one out (``<|im_end|>`` in an email) is read as text, so it cannot forge a turn."""
        for m in messages:
            require_unicode(m.content, f"the {m.role} message")
        rendered = self._formatter(messages=[m.as_dict() for m in messages])
        add_bos = not rendered.added_special
        if not any(self._spells_control_tokens(m.content) for m in messages):
            return self.llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=add_bos, special=True)
        marks = [f"\ue000{i}\ue001" for i in range(len(messages))]
        template = self._formatter(messages=[{"role": m.role, "content": mark} for m, mark in zip(messages, marks)])
        pieces = re.split("(\ue000\\d+\ue001)", template.prompt)
        if sorted(p for p in pieces if p in marks) != sorted(marks):
            raise InputError("a message spells out the chat template's control tokens (such as <|im_end|>), "
                             "and this model's template cannot keep them apart from its own")
        tokens: list[int] = []
        for i, piece in enumerate(pieces):
            content = piece in marks
            text = messages[marks.index(piece)].content if content else piece
            tokens += self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos and i == 0, special=not content)
        return tokens

    def _spells_control_tokens(self, text: str) -> bool:
        if "<" not in text and "[" not in text:  # every template's control tokens start with one of these
            return False
        raw = text.encode("utf-8")
        return self.llm.tokenize(raw, add_bos=False, special=True) != self.llm.tokenize(raw, add_bos=False, special=False)

    def count_tokens(self, text: str) -> int:
        return len(self.llm.tokenize(require_unicode(text).encode("utf-8"), add_bos=False, special=False))

    def check_fits(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + max_tokens > self.context_window:
            raise ContextWindowExceededError(prompt_tokens, max_tokens, self.context_window)

    # ------------------------------------------------------------- generation

    def stream(
        self,
        messages: Sequence[Message],
        sampling: Sampling = Sampling(),
        *,
        json_schema: dict[str, Any] | None = None,
        logprobs: bool = False,
        top_logprobs: int = 0,
        cancel: threading.Event | None = None,
        result: list[Completion] | None = None,
        fit_window: bool = False,
    ) -> Iterator[Delta]:
        """Yield text deltas; append the final ``Completion`` to ``result`` if given.

        Raises ``ContextWindowExceededError`` before any token is generated; with
        ``fit_window`` the answer budget first shrinks to what the prompt leaves of the window
        (a budget nobody asked for must not refuse a prompt that fits).
        Closing the iterator (or setting ``cancel``) stops generation at once.
        """
        ambient = current_cancel()
        if ambient is not None:
            if ambient.is_set():
                raise GenerationCancelledError()
            cancel = ambient if cancel is None else _AnyOf(cancel, ambient)  # type: ignore[assignment]
        prompt = self.tokenize_chat(messages)
        max_tokens = sampling.max_tokens  # not clamped to the window: the error names what was asked
        if fit_window:
            max_tokens = min(max_tokens, max(1, self.context_window - len(prompt)))
        self.check_fits(len(prompt), max_tokens)
        if sampling.logit_bias and max(k for k, _ in sampling.logit_bias) >= self.llm.n_vocab():
            raise InputError(f"logit_bias names a token id past {self.name}'s vocabulary ({self.llm.n_vocab()} tokens)")
        grammar = self._grammar(json_schema) if json_schema is not None else None
        return self._generate(prompt, sampling, max_tokens, grammar, logprobs or top_logprobs > 0, top_logprobs, cancel, result)

    def complete(self, messages: Sequence[Message], sampling: Sampling = Sampling(), **kwargs: Any) -> Completion:
        runner = getattr(_ambient, "runner", None)
        if runner is not None:
            cancel, drafts = current_cancel(), getattr(_ambient, "drafts", None)

            def work() -> Completion:
                # this thread's cancel and draft listener, on the generating one
                with _ambient_set("cancel", cancel), _ambient_set("drafts", drafts):
                    return self._complete(messages, sampling, **kwargs)

            return runner(self.name, work)
        return self._complete(messages, sampling, **kwargs)

    def _complete(self, messages: Sequence[Message], sampling: Sampling, **kwargs: Any) -> Completion:
        result: list[Completion] = []
        listener = getattr(_ambient, "drafts", None) if kwargs.get("json_schema") is None else None
        deltas = self.stream(messages, sampling, result=result, **kwargs)
        if listener is not None:
            listener(None)
        for delta in deltas:
            if listener is not None and delta.text:
                listener(delta.text)
        return result[0]

    def _grammar(self, schema: dict[str, Any]) -> Any:
        try:
            gbnf = schema_to_gbnf(schema)
            with quiet_stderr():
                grammar = self._llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
        except InputError:
            raise
        except Exception as exc:
            raise InputError(f"cannot build a grammar from this JSON schema: {exc}") from None  # the caller's schema
        self._check_grammar(grammar)
        return grammar

    def _check_grammar(self, grammar: Any) -> None:
        """Parse the grammar with llama.cpp before sampling with it: llama-cpp-python adds a
        grammar it failed to parse (``{"enum": []}`` gives ``root ::=``) as a NULL sampler, and
        the process dies of a segfault."""
        llama_cpp = self._llama_cpp
        with quiet_stderr():
            sampler = llama_cpp.llama_sampler_init_grammar(
                self.llm._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
        if not sampler:
            raise InputError("llama.cpp cannot build a grammar from this JSON schema: either it allows no value "
                             "(an empty enum, anyOf or type list?) or it uses a construct llama.cpp cannot parse")
        llama_cpp.llama_sampler_free(sampler)

    def _block_ends(self, prompt: list[int], *, headers: bool | None = None) -> tuple[list[int], bool]:
        """Where each block of ``prompt`` ends, and whether the last end is a rule's (closed)
        rather than just the prompt's end. Blocks end after every ``PREFILL_BLOCK`` tokens since
        the last end and at the prompt's end, and

        * with headers (ChatML and the like): after each turn's header line, unless the block
          holds nothing before that header. The system turn ends with the user's header, and
          the last turn with the answer's header, so a prompt's new turn and that header are
          read in one batch, as llama.cpp itself reads them;
        * otherwise: after every end-of-turn token.

        An end depends only on the tokens before it, so a prompt and its continuation are cut
        the same way up to where they part, and a conversation's earlier turns (the system
        prompt first) are whole blocks."""
        llama_cpp, vocab = self._llama_cpp, self._vocab
        headers = self._header_blocks if headers is None else headers
        ends: list[int] = []
        start, header_at, closed = 0, -1, False
        for i, token in enumerate(prompt):
            end = i + 1 - start == PREFILL_BLOCK
            if not headers:
                end = end or llama_cpp.llama_vocab_is_eog(vocab, token)
            elif self._opens(token):
                if header_at < 0:
                    header_at = i
            elif header_at >= 0 and self._newline(token):
                end = end or header_at > start  # a block that is only a header reads on
                header_at = -1
            if end:
                ends.append(i + 1)
                start, closed = i + 1, True
        if not ends or ends[-1] != len(prompt):
            ends.append(len(prompt))
            closed = False
        return ends, closed

    def _opens(self, token: int) -> bool:
        known = self._opens_turn.get(token)
        if known is None:
            llama_cpp = self._llama_cpp
            known = self._opens_turn[token] = bool(llama_cpp.llama_vocab_is_control(self._vocab, token)) and not (
                llama_cpp.llama_vocab_is_eog(self._vocab, token))
        return known

    def _newline(self, token: int) -> bool:
        known = self._has_newline.get(token)
        if known is None:
            known = self._has_newline[token] = b"\n" in self.llm.detokenize([token], special=True)
        return known

    def _prefill(self, prompt: list[int], cancel: Any) -> None:
        """Read the prompt block by block (see ``_block_ends``), reusing from the cache only whole
        blocks an earlier prompt read the same way, and checking ``cancel`` between blocks.
        ``generate`` then finds the prompt cached and samples at once.

        llama.cpp's numbers depend on how tokens are batched: a token read alone (as
        llama-cpp-python re-reads a cached prompt's last token, or as an answer's tokens were
        read while generated) comes out a hair different from the same token read in a batch,
        and greedy decoding drifts from there: the same greedy request, asked twice, answered
        differently. Read this way, what a prompt yields depends on its tokens alone."""
        llm = self.llm
        same = 0
        for a, b in zip(llm._input_ids[: self._blocks_cached], prompt):
            if a != b:
                break
            same += 1
        ends, closed = self._block_ends(prompt)
        # the last block is always read again: its logits are what the first token is sampled from
        reuse = max((e for e in ends if e <= min(same, len(prompt) - 1)), default=0)
        self._blocks_cached = reuse
        llm.n_tokens = reuse  # eval() drops the cache past this point
        at = reuse
        for end in ends:
            if end <= at:
                continue
            if cancel is not None and cancel.is_set():
                raise GenerationCancelledError()
            llm.eval(prompt[at:end])
            at = end
            # a block cut by the prompt's end grows when the prompt does: only closed ones are reused
            if end < len(prompt) or closed:
                self._blocks_cached = end

    def _generate(
        self,
        prompt: list[int],
        sampling: Sampling,
        max_tokens: int,
        grammar: Any,
        want_logprobs: bool,
        top_logprobs: int,
        cancel: threading.Event | None,
        result: list[Completion] | None,
    ) -> Iterator[Delta]:
        llama_cpp = self._llama_cpp
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        pieces: list[str] = []
        stop = sampling.stop
        held = ""  # text withheld because it may begin a stop string
        lps: list[TokenLogprob] = []
        held_lps: list[tuple[int, TokenLogprob]] = []  # (where its text starts in ``held``, logprob)

        def release(upto: int) -> tuple[TokenLogprob, ...]:
            """The logprobs of the tokens whose text starts before ``upto`` in ``held``, which is
            about to go out up to there; the others move to their place in what stays held."""
            nonlocal held_lps
            out = tuple(lp for at, lp in held_lps if at < upto)
            held_lps = [(at - upto, lp) for at, lp in held_lps if at >= upto]
            lps.extend(out)
            return out

        finish = "length"
        n = 0
        ttft = 0.0
        with self._lock:
            start = time.perf_counter()
            # Every request sets its own seed: llama-cpp-python keeps the last one, so one seeded
            # request would otherwise make every later "random" answer the same.
            self.llm.set_seed(_llama_seed(sampling.seed, llama_cpp.LLAMA_DEFAULT_SEED))
            if self.isolate_requests:
                self.llm.reset()  # evaluate the whole prompt: no prefix reuse from an earlier request
                self._blocks_cached = 0
            try:
                self._prefill(prompt, cancel)
            except GenerationCancelledError:
                if self.isolate_requests:
                    self._forget()
                raise
            except Exception as exc:  # llama.cpp failures surface as our error
                if self.isolate_requests:
                    self._forget()
                raise GenerationError(f"llama.cpp failed reading the prompt: {exc}") from exc
            temp = sampling.temperature if sampling.top_p > 0 else 0.0
            bias = _bias_processor(sampling.logit_bias)
            lazy = None
            if grammar is not None and self.lazy_grammar:
                # llama-cpp-python's generate() keeps its prompt and cache handling and calls
                # this object's sample() instead of matching the grammar against the whole vocabulary.
                lazy = LazyGrammarSampler(self.llm, grammar, temp=temp, top_k=sampling.top_k, top_p=sampling.top_p,
                                          frequency_penalty=sampling.frequency_penalty,
                                          presence_penalty=sampling.presence_penalty, logits_processors=bias)
                self.llm.sample = lazy.sample
            gen = self.llm.generate(
                prompt,
                temp=temp,
                top_p=sampling.top_p,
                top_k=sampling.top_k,
                min_p=0.0,
                repeat_penalty=1.0,
                frequency_penalty=sampling.frequency_penalty,
                presence_penalty=sampling.presence_penalty,
                logits_processor=None if lazy else bias,
                grammar=None if lazy else grammar,
                reset=True,
            )
            try:
                for token in gen:
                    if n == 0:
                        ttft = time.perf_counter() - start
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
                    if llama_cpp.llama_vocab_is_eog(self._vocab, token):
                        finish = "stop"
                        break
                    n += 1
                    text = decoder.decode(self.llm.detokenize([token]))
                    lp = self._logprob(token, top_logprobs) if want_logprobs else None
                    if lp is not None:
                        held_lps.append((len(held), lp))
                    if stop:
                        held += text
                        cut = min((i for i in (held.find(x) for x in stop) if i >= 0), default=-1)
                        if cut >= 0:
                            # the tokens that spelled the stop string are not part of the answer
                            kept = release(cut)
                            if held[:cut] or kept:
                                pieces.append(held[:cut])
                                yield Delta(held[:cut], kept)
                            held, held_lps = "", []  # the stop string's own tokens are not the answer's
                            finish = "stop"
                            break
                        keep = _partial_stop_suffix(held, stop)
                        text, held = held[: len(held) - keep], held[len(held) - keep :]
                        if not text:
                            if n >= max_tokens:  # the limit holds while text waits on a possible stop
                                break
                            continue
                    kept = release(len(text))
                    pieces.append(text)
                    yield Delta(text, kept)
                    if cancel is not None and cancel.is_set():
                        finish = "cancelled"
                        break
                    if n >= max_tokens:
                        break
            except GeneratorExit:
                finish = "cancelled"
                raise
            except Exception as exc:  # llama.cpp failures surface as our error
                raise GenerationError(f"llama.cpp failed during generation: {exc}") from exc
            finally:
                gen.close()
                if lazy is not None:
                    del self.llm.sample  # back to the class's method
                    lazy.free()
                if self.isolate_requests:
                    self._forget()
            # Text held back for a stop string that never came is answer after all (the decoder's
            # pending bytes, a character the token limit cut in half, are dropped, not "\ufffd").
            if held or held_lps:
                kept = release(len(held) + 1)
                pieces.append(held)
                yield Delta(held, kept)
            duration = time.perf_counter() - start
        if finish == "cancelled":
            raise GenerationCancelledError()
        completion = Completion(
            text="".join(pieces),
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=n,
            time_to_first_token=ttft,
            duration=duration,
            logprobs=lps if want_logprobs else None,
            model=self.name,
        )
        if result is not None:
            result.append(completion)

    def _forget(self) -> None:
        """Drop this request's tokens from the KV cache and the token history."""
        self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        self.llm.input_ids.fill(0)
        self.llm.n_tokens = 0
        self._blocks_cached = 0

    def _logprob(self, token: int, top: int) -> TokenLogprob:
        ptr = self._llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        logits = np.ctypeslib.as_array(ptr, shape=(self.llm.n_vocab(),))
        peak = float(logits.max())
        lse = peak + float(np.log(np.exp(logits - peak).sum()))
        top_items: tuple[tuple[str, float], ...] = ()
        top_raw: tuple[bytes, ...] = ()
        if top > 0:
            idx = np.argpartition(logits, -top)[-top:]
            idx = idx[np.argsort(-logits[idx])]
            top_raw = tuple(self.llm.detokenize([int(i)]) for i in idx)
            top_items = tuple((raw.decode("utf-8", errors="replace"), float(logits[i]) - lse)
                              for raw, i in zip(top_raw, idx))
        raw = self.llm.detokenize([token])
        return TokenLogprob(raw.decode("utf-8", errors="replace"), float(logits[token]) - lse, top_items, raw, top_raw)


def _llama_seed(seed: int | None, random_seed: int) -> int:
    """The caller's seed as llama.cpp's uint32, or ``random_seed`` (llama.cpp draws one) for none."""
    if seed is None:
        return random_seed
    seed &= 0xFFFFFFFF
    return seed if seed != random_seed else random_seed - 1


def _bias_processor(bias: tuple[tuple[int, float], ...]) -> Any:
    """OpenAI's ``logit_bias`` as a llama.cpp logits processor (it runs before the grammar)."""
    if not bias:
        return None
    ids = np.array([k for k, _ in bias], dtype=np.intc)
    add = np.array([v for _, v in bias], dtype=np.single)

    def apply(_input_ids: Any, scores: Any) -> Any:
        scores[ids] += add
        return scores

    return [apply]


def _partial_stop_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest end of ``text`` that is a proper prefix of a stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


# ----------------------------------------------------------------- registry

_open_engines: weakref.WeakSet[LlamaEngine] = weakref.WeakSet()


@atexit.register
def _free_at_exit() -> None:
    """Free every model while llama.cpp's bindings still exist: left to interpreter teardown,
    llama-cpp-python's ``__del__`` finds its C functions gone and prints a TypeError per model. A
    model that is mid-generation (a daemon thread, an unread stream) is left alone; the lock taken
    is never given back, so nothing can start on a freed model."""
    for engine in list(_open_engines):
        if engine._lock.take_for_good():
            engine.llm.close()


_engines: dict[tuple[str, int, int], LlamaEngine] = {}
_engines_lock = threading.Lock()  # guards the two dicts; never held while a model loads
_loading: dict[tuple[str, int, int], threading.Lock] = {}


def load(model: str = catalog.DEFAULT_MODEL, *, n_ctx: int | None = None, n_threads: int | None = None, progress: bool = False) -> LlamaEngine:
    """Load ``model`` once per process and return the shared engine."""
    spec = catalog.resolve(model)
    n_ctx = n_ctx or default_context()
    n_threads = n_threads or default_threads()
    key = (spec.name, n_ctx, n_threads)
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _engines_lock:
        gate = _loading.setdefault(key, threading.Lock())
    with gate:  # one load per model at a time; other models' requests go on meanwhile
        engine = _engines.get(key)
        if engine is None:
            path = catalog.pull(spec, progress=progress)
            engine = LlamaEngine(path, name=spec.name, n_ctx=n_ctx, n_threads=n_threads)
            with _engines_lock:
                _engines[key] = engine
        return engine


def loaded() -> list[LlamaEngine]:
    return list(_engines.values())


def is_loaded(model: str) -> bool:
    name = catalog.resolve(model).name
    return any(engine.name == name for engine in loaded())


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes loading a model would take, as llama.cpp accounts them: the weights (mapped from
    the file, plus a possible CPU repack), the f16 KV cache for the whole context (allocated at
    load, so a longer prompt costs nothing more), and the compute buffer (the logits of a batch)."""

    weights: int
    kv_cache: int
    compute: int

    @property
    def total(self) -> int:
        return self.weights + self.kv_cache + self.compute


_estimates: dict[tuple[str, int], MemoryEstimate] = {}


def read_header(path: Path, *, name: str = "") -> tuple[dict[str, str], int]:
    """The GGUF's metadata and vocabulary size, read by llama.cpp without the weights (~0.25 s).
    llama.cpp also checks that every tensor lies inside the file, so a truncated download fails
    here, with llama.cpp's reason, rather than passing as a model."""
    llama_cpp = _llama_cpp_module()
    try:
        with quiet_stderr(), _load_errors() as errors:
            header = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelUnavailableError(name or str(path), f"llama.cpp could not read {path}: {_load_failure(exc, errors)}") from exc
    try:
        return dict(header.metadata), header.n_vocab()
    finally:
        header.close()


def memory_estimate(model: str = catalog.DEFAULT_MODEL, *, n_ctx: int | None = None) -> MemoryEstimate:
    """What ``load(model)`` would take, from the GGUF header alone (read vocab-only, ~0.25 s once).
    An upper estimate: the weights count the repack margin whether or not this CPU repacks."""
    spec = catalog.resolve(model)
    n_ctx = n_ctx or default_context()
    available = catalog.availability(spec.name)
    if not available or available.path is None:
        raise ModelUnavailableError(spec.name, available.reason or "the model file is not available")
    key = (str(available.path), n_ctx)
    if key not in _estimates:
        meta, vocab = read_header(available.path, name=spec.name)
        arch = meta.get("general.architecture", "")
        get = lambda k, default=0: int(meta.get(f"{arch}.{k}", default))  # noqa: E731
        heads = get("attention.head_count", 1) or 1
        head_dim = get("attention.key_length") or get("embedding_length") // heads
        kv_heads = get("attention.head_count_kv") or heads
        size = available.path.stat().st_size
        _estimates[key] = MemoryEstimate(weights=int(size * (1 + REPACK_MARGIN)),
                                         kv_cache=2 * get("block_count") * kv_heads * head_dim * 2 * n_ctx,
                                         compute=vocab * N_BATCH * 4)
    return _estimates[key]


_quiet_lock = threading.Lock()
_quiet_depth = 0
_quiet_saved: int | None = None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """llama.cpp prints load chatter straight to fd 2; hide it unless TETHER_DEBUG is set."""
    if os.environ.get("TETHER_DEBUG"):
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):
        yield
        return
    global _quiet_depth, _quiet_saved
    with _quiet_lock:  # fd 2 is process-wide: the first thread in hides it, the last one out restores it
        if _quiet_depth == 0:
            sys.stderr.flush()
            _quiet_saved = os.dup(fd)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_depth -= 1
            if _quiet_depth == 0 and _quiet_saved is not None:
                os.dup2(_quiet_saved, fd)
                os.close(_quiet_saved)
                _quiet_saved = None
