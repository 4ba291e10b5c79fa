"""Any OpenAI-compatible chat-completions API, as the third-party tier.

Only the router decides whether a request may leave the device (consent, the
privacy guard); this tier just sends what it is given, retries what is worth
retrying and turns every failure into ``TierUnavailableError`` so the router
can fall back. The API key is sent as a bearer token and never appears in an
error message.
"""

from __future__ import annotations

import json
import os
import random
import time
from typing import Any, Iterator, Sequence

import httpx

from tether.errors import GenerationCancelledError, RouterConfigError, TierUnavailableError
from tether.models.engine import Message, Sampling, current_cancel
from tether.routing.tiers import STREAM_USAGE, THIRD_PARTY, TierResult, mean_logprob, note_chunk, openai_body
from tether.settings import http_url
from tether.text import replace_surrogates

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_ERROR_CHARS = 200
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # a chat completion is far smaller; past this the provider is broken


class _Retry(Exception):
    """One attempt failed in a way worth trying again."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        self.reason = reason
        self.status = status
        self.retry_after = retry_after
        super().__init__(reason)


def check_api_key(key: str, what: str = "the third-party API key") -> None:
    """``RouterConfigError`` unless ``key`` is printable ASCII without whitespace, as an HTTP header
    carries it: a key pasted with a line break or a typographic character would otherwise fail on
    every request, in messages that quote the header. The message never quotes the key."""
    if not all(33 <= ord(c) <= 126 for c in key):
        raise RouterConfigError(f"{what} holds a space, a line break, a control character or a character "
                                "outside ASCII, which an HTTP header cannot carry; set it again, copied whole")


def _tokens(value: Any) -> int:
    """A usage count from the provider, as a ledger can store it: unusable values count as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return 0
    return int(min(max(value, 0), 2**31 - 1))


class ThirdPartyTier:
    """``POST {base_url}/chat/completions`` on a provider such as ``https://api.openai.com/v1``.

    ``retries`` is the number of extra attempts after the first one, so at most
    ``retries + 1`` requests go out. ``last_attempts`` is how many went out for
    the latest call and ``last_waits`` the pauses between them (seconds): diagnostics,
    which concurrent calls overwrite; errors never read them.
    """

    name = THIRD_PARTY

    def __init__(self, base_url: str, model: str, api_key: str | None = None, *, retries: int = 3,
                 backoff: float = 0.5, max_backoff: float = 8.0, timeout: float = 60.0, deadline: float = 180.0,
                 http: httpx.Client | None = None):
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = http_url(base_url, "third-party base URL")
        if httpx.URL(self.base_url).userinfo:
            raise RouterConfigError("the third-party base URL holds a user name or password; put the key in "
                                    "api_key_env instead, so it never shows in a message")
        self.model = model
        self.api_key = api_key or None
        if self.api_key is not None:
            check_api_key(self.api_key)
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.timeout = timeout  # per read
        # per request, every attempt and wait included: a whole answer, or (streaming) the first delta;
        # after a delta, the most time a stream may go without another
        self.deadline = deadline
        self._own_http = http is None
        self.http = http if http is not None else httpx.Client(timeout=httpx.Timeout(timeout))
        self.last_attempts = 0
        self.last_waits: list[float] = []

    @classmethod
    def from_env(cls, prefix: str = "TETHER_THIRD_PARTY", **kwargs: Any) -> "ThirdPartyTier":
        """Configure from ``{prefix}_BASE_URL``, ``{prefix}_MODEL`` and optional ``{prefix}_API_KEY``."""
        values = {k: (os.environ.get(f"{prefix}_{k}") or "").strip() for k in ("BASE_URL", "MODEL", "API_KEY")}
        missing = [f"{prefix}_{k}" for k in ("BASE_URL", "MODEL") if not values[k]]
        if missing:
            raise RouterConfigError(f"the third_party tier needs {' and '.join(missing)} set "
                                    f"(e.g. {prefix}_BASE_URL=https://api.openai.com/v1)")
        return cls(values["BASE_URL"], values["MODEL"], values["API_KEY"] or None, **kwargs)

    @property
    def url(self) -> str:
        return f"{self.base_url}/chat/completions"

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> "ThirdPartyTier":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _headers(self, stream: bool) -> dict[str, str]:
        headers = {"Content-Type": "application/json",
                   "Accept": "text/event-stream" if stream else "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _redact(self, text: str) -> str:
        """``text`` without the key, also as a repr or JSON would escape it (httpx quotes a header as bytes)."""
        if self.api_key:
            key = self.api_key
            forms = {key, repr(key)[1:-1], repr(key.encode("ascii", "backslashreplace"))[2:-1], json.dumps(key)[1:-1]}
            for form in sorted(forms, key=len, reverse=True):
                text = text.replace(form, "***")
        return text

    def _fail(self, reason: str, status: int | None = None) -> TierUnavailableError:
        return TierUnavailableError(THIRD_PARTY, replace_surrogates(self._redact(reason))[0], status=status)

    def _error_detail(self, status: int, body: bytes) -> str:
        """``HTTP 401: <provider message>``; the message only when the body is OpenAI-style error JSON."""
        message = None
        try:
            data = json.loads(body)
            err = data.get("error") if isinstance(data, dict) else None
            if isinstance(err, dict) and err.get("message"):
                message = str(err["message"])
        except ValueError:
            pass
        if message is None:
            return f"HTTP {status}"
        if len(message) > MAX_ERROR_CHARS:
            message = message[:MAX_ERROR_CHARS] + "…"
        return f"HTTP {status}: {message}"

    @staticmethod
    def _retry_after(response: httpx.Response) -> float | None:
        """Seconds the provider asks us to wait: ``Retry-After`` as seconds or as an HTTP date."""
        value = response.headers.get("retry-after")
        if value is None:
            return None
        try:
            seconds = float(value)
        except ValueError:
            from email.utils import parsedate_to_datetime

            try:
                when = parsedate_to_datetime(value)
            except (TypeError, ValueError, IndexError):
                return None  # unreadable: our own backoff
            if when.tzinfo is None:
                return None
            seconds = when.timestamp() - time.time()
        return max(0.0, seconds) if seconds == seconds else 0.0

    def _wait(self, attempt: int, last: _Retry, end: float) -> None:
        """Pause before attempt ``attempt + 1``; give up instead when the pause and a new attempt
        would not fit in what is left of the request's deadline (``end``)."""
        if last.retry_after is not None:
            delay = min(last.retry_after, self.max_backoff)
        else:
            base = min(self.backoff * (2 ** (attempt - 1)), self.max_backoff)
            delay = base * (0.5 + random.random() / 2)  # jitter so clients don't retry in lockstep
        if time.monotonic() + delay >= end:
            self.last_attempts = attempt  # the next one never went out
            raise self._fail(f"gave up after {attempt} attempt{'s' if attempt != 1 else ''} "
                             f"({self.deadline:g} s deadline): {last.reason}", last.status)
        self.last_waits.append(delay)
        cancel = current_cancel()
        if delay > 0:
            if cancel is not None:
                if cancel.wait(delay):  # a client that left stops the backoff at once, and the retry
                    raise GenerationCancelledError()
            else:
                time.sleep(delay)

    def _check_status(self, response: httpx.Response, body: bytes) -> None:
        """Return if the response is usable, raise ``_Retry`` if worth retrying, otherwise fail."""
        status = response.status_code
        if status == 200:
            return
        detail = self._error_detail(status, body)
        if status in RETRY_STATUSES:
            retry_after = self._retry_after(response)
            if retry_after is not None and retry_after > self.max_backoff:
                # Longer than we would ever wait: fall back now instead of hammering it
                raise self._fail(f"{detail} (asked to retry after {retry_after:.0f} s)", status)
            raise _Retry(detail, status, retry_after)
        if status == 404:  # most often the base URL: a missing /v1, a typo
            detail += f" from {self.url}: is third_party.base_url right? OpenAI-compatible ones usually end in /v1"
        raise self._fail(detail, status)

    def _attempts(self):
        """Yield attempt numbers (1-based), sleeping between them; the caller breaks out on success."""
        self.last_attempts = 0
        self.last_waits = []
        cancel = current_cancel()
        for attempt in range(1, self.retries + 2):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelledError()  # nobody is waiting: send the text away no more
            self.last_attempts = attempt
            yield attempt

    def _transport_reason(self, exc: httpx.TransportError) -> str:
        return f"{type(exc).__name__} talking to {self.url}: {str(exc) or 'no detail'}"

    def _unsendable(self, exc: Exception) -> TierUnavailableError:
        """A request httpx could not write: its message quotes the header or text, so it is left out."""
        return self._fail(f"{type(exc).__name__}: the request could not be sent to {self.url} (a header or "
                          "the text holds a character HTTP cannot carry)")

    def _timeout(self, end: float) -> Any:
        """The client's timeouts, or less when less is left of the request's deadline."""
        left = end - time.monotonic()
        return httpx.Timeout(max(left, 0.001)) if left < self.timeout else httpx.USE_CLIENT_DEFAULT

    def complete(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
                 logprobs: bool = False) -> TierResult:
        body = openai_body(messages, sampling, json_schema=json_schema, logprobs=logprobs, model=self.model)
        prompt_chars = sum(len(m.content) for m in messages)
        start = time.perf_counter()
        end = time.monotonic() + self.deadline
        last: _Retry | None = None
        for attempt in self._attempts():
            if last is not None:
                self._wait(attempt - 1, last, end)
            try:
                with self.http.stream("POST", self.url, json=body, headers=self._headers(stream=False),
                                      timeout=self._timeout(end)) as response:
                    raw = self._read_capped(response, end)
                self._check_status(response, raw)
            except httpx.UnsupportedProtocol as exc:
                raise self._fail(f"bad base URL {self.base_url!r}: {exc}") from exc
            except (httpx.LocalProtocolError, UnicodeEncodeError) as exc:
                raise self._unsendable(exc) from None
            except httpx.TransportError as exc:
                last = _Retry(self._transport_reason(exc))
                continue
            except httpx.HTTPError as exc:  # an undecodable body, a redirect loop: not worth a retry
                raise self._fail(f"{type(exc).__name__} talking to {self.url}: {str(exc)[:MAX_ERROR_CHARS]}") from exc
            except _Retry as exc:
                last = exc
                continue
            return self._result(raw, response.status_code, time.perf_counter() - start, prompt_chars)
        assert last is not None
        raise self._fail(f"gave up after {self.retries + 1} attempts: {last.reason}", last.status)

    def _read_capped(self, response: httpx.Response, end: float) -> bytes:
        """The body, by ``end`` (the request's deadline) and within ``MAX_RESPONSE_BYTES``: a provider
        that drips bytes or sends hundreds of megabytes must not hold or swamp the device."""
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise self._fail(f"the provider's answer is over {MAX_RESPONSE_BYTES // 2**20} MiB", response.status_code)
            chunks.append(chunk)
            if time.monotonic() > end:
                raise _Retry(f"no complete answer from {self.url} within {self.deadline:g} s")
        return b"".join(chunks)

    def _result(self, raw: bytes, status: int, latency: float, prompt_chars: int = 0) -> TierResult:
        try:
            out = json.loads(raw)
            choice = out["choices"][0]
            text = (choice.get("message") or {}).get("content") or ""
            if not isinstance(text, str):
                raise TypeError(f"message content is {type(text).__name__}, not text")
            text = replace_surrogates(text)[0]  # half an emoji no UTF-8 output can write
            usage = out.get("usage") or {}
            # No usage block: estimate (four characters a token) rather than record a free answer
            prompt_tokens = _tokens(usage.get("prompt_tokens")) or (max(1, prompt_chars // 4) if prompt_chars else 0)
            completion_tokens = _tokens(usage.get("completion_tokens")) or (max(1, len(text) // 4) if text else 0)
            return TierResult(text, THIRD_PARTY, str(out.get("model") or self.model), prompt_tokens, completion_tokens,
                              latency, str(choice.get("finish_reason") or "stop"), mean_logprob(choice))
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
            raise self._fail(f"the provider's response is not a chat completion ({type(exc).__name__}: "
                             f"{str(exc)[:MAX_ERROR_CHARS]})", status) from exc

    def stream(self, messages: Sequence[Message], sampling: Sampling, *, json_schema: dict[str, Any] | None = None,
               info: dict[str, Any] | None = None) -> Iterator[str]:
        """Yield content deltas. Failures before the first delta are retried; after it they end the stream
        with ``TierUnavailableError``, since the caller already showed part of an answer."""
        body = {**openai_body(messages, sampling, model=self.model, json_schema=json_schema), **STREAM_USAGE}
        end = time.monotonic() + self.deadline  # for the first delta, every attempt included
        last: _Retry | None = None
        yielded = False
        for attempt in self._attempts():
            if last is not None:
                self._wait(attempt - 1, last, end)
            try:
                with self.http.stream("POST", self.url, json=body, headers=self._headers(stream=True),
                                      timeout=self._timeout(end)) as response:
                    if response.status_code != 200:  # an error body is read like an answer: capped, by the deadline
                        self._check_status(response, self._read_capped(response, end))
                    for text in self._deltas(response, info, end):
                        yielded = True
                        yield text
                    return
            except httpx.UnsupportedProtocol as exc:
                raise self._fail(f"bad base URL {self.base_url!r}: {exc}") from exc
            except (httpx.LocalProtocolError, UnicodeEncodeError) as exc:
                raise self._unsendable(exc) from None
            except httpx.TransportError as exc:
                if yielded:
                    raise self._fail(f"stream broke off: {self._transport_reason(exc)}") from exc
                last = _Retry(self._transport_reason(exc))
            except httpx.HTTPError as exc:  # an undecodable body, a redirect loop: not worth a retry
                raise self._fail(f"{type(exc).__name__} talking to {self.url}: {str(exc)[:MAX_ERROR_CHARS]}") from exc
            except _Retry as exc:
                if yielded:
                    raise self._fail(f"stream broke off: {exc.reason}", exc.status) from None
                last = exc
        assert last is not None
        raise self._fail(f"gave up after {self.retries + 1} attempts: {last.reason}", last.status)

    def _sse_lines(self, response: httpx.Response) -> Iterator[str]:
        """The stream's lines, within ``MAX_RESPONSE_BYTES`` in all. httpx's ``iter_lines`` would buffer a
        line that never ends without limit or deadline check, so this yields ``""`` after every read too."""
        size = 0
        pending = bytearray()
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > MAX_RESPONSE_BYTES:
                raise self._fail(f"the provider's stream is over {MAX_RESPONSE_BYTES // 2**20} MiB", 200)
            pending += chunk
            if b"\n" in chunk or b"\r" in chunk:
                lines = bytes(pending).splitlines(keepends=True)
                pending = bytearray(lines.pop() if not lines[-1].endswith((b"\n", b"\r")) else b"")
                for line in lines:
                    yield line.rstrip(b"\r\n").decode("utf-8", "replace")
            yield ""
        if pending:
            yield pending.decode("utf-8", "replace")

    def _deltas(self, response: httpx.Response, info: dict[str, Any] | None, end: float) -> Iterator[str]:
        """The content deltas; the first by ``end``, each next within ``deadline`` of the last."""
        ctype = response.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            # the provider ignored "stream": the whole answer came at once
            result = self._result(self._read_capped(response, end), response.status_code, 0.0)
            if info is not None:
                info.update(model=result.model, finish_reason=result.finish_reason,
                            prompt_tokens=result.prompt_tokens, completion_tokens=result.completion_tokens)
            if result.text:
                yield result.text
            return
        finished = False
        events = 0  # data: lines seen
        held = ""  # a delta's last character when it is the first half of a surrogate pair
        quiet_until = end
        for line in self._sse_lines(response):
            if time.monotonic() > quiet_until:
                raise _Retry(f"no text from {self.url} for {self.deadline:g} s")
            if not line.startswith("data:"):
                continue  # blank separators, comments (": ping"), event:/id: fields
            events += 1
            data = line[5:].strip()
            if data == "[DONE]":
                if held:
                    yield "\ufffd"
                return
            try:
                chunk = json.loads(data)
            except (ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's depth
                raise self._fail(f"the provider sent a stream event that is not JSON: {data[:80]!r}", 200) from exc
            if not isinstance(chunk, dict):
                raise self._fail("the provider sent a stream event that is not a JSON object", 200)
            if chunk.get("error"):
                err = chunk["error"]
                message = err.get("message") if isinstance(err, dict) else err
                raise self._fail(f"the provider reported an error mid-stream: {str(message)[:MAX_ERROR_CHARS]}",
                                 200)
            choices = chunk.get("choices") or []
            if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
                raise self._fail("the provider sent a stream event whose choices are not objects", 200)
            note_chunk(chunk, info)
            for choice in choices:
                if choice.get("finish_reason"):
                    finished = True
                delta = choice.get("delta") or {}
                text = delta.get("content") if isinstance(delta, dict) else None
                if text is not None and not isinstance(text, str):
                    raise self._fail(f"the provider sent {type(text).__name__} content in a stream event", 200)
                if text:
                    quiet_until = time.monotonic() + self.deadline
                    text, held = held + text, ""
                    if "\ud800" <= text[-1] <= "\udbff":  # its other half may open the next delta
                        text, held = text[:-1], text[-1]
                    if text:
                        yield replace_surrogates(text)[0]
        if held:
            yield "\ufffd"
        if not finished and not events and not ctype.startswith("text/event-stream"):
            # An HTML page or other text, whole: no retry will make it a stream
            raise self._fail(f"the provider's answer is not an event stream (content type "
                             f"{ctype.split(';')[0].strip() or 'none'}); is the base URL right?", 200)
        if not finished:
            raise httpx.RemoteProtocolError("stream ended without [DONE]")
