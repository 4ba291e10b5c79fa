"""The third-party tier against a real HTTP server that speaks the OpenAI chat-completions API."""

from __future__ import annotations

import email.utils
import json
import time

import pytest

from tether.errors import RouterConfigError, TierUnavailableError
from tether.models.engine import Message, Sampling
from tether.routing.third_party import ThirdPartyTier

KEY = "sk-test-secret-0123456789"
MESSAGES = [Message("system", "be brief"), Message("user", "hello there world")]
SAMPLING = Sampling.greedy(max_tokens=64)


@pytest.fixture(autouse=True)
def clean(provider):
    provider.reset()
    yield


def tier(provider, **kwargs) -> ThirdPartyTier:
    kwargs.setdefault("backoff", 0.01)
    kwargs.setdefault("max_backoff", 0.05)
    kwargs.setdefault("timeout", 10.0)
    return ThirdPartyTier(provider.url, "fake-gpt", KEY, **kwargs)


def test_complete_returns_text_usage_model_and_logprobs(provider):
    with tier(provider) as t:
        out = t.complete(MESSAGES, SAMPLING, logprobs=True)
    assert out.text == "echo: hello there world"
    assert out.tier == "third_party" and out.model == "fake-gpt"
    assert (out.prompt_tokens, out.completion_tokens) == (5, 4)  # words in all messages / in the answer
    assert out.finish_reason == "stop"
    assert out.mean_logprob == pytest.approx(sum(-(i + 1) / 10 for i in range(4)) / 4)
    assert out.latency > 0
    assert t.last_attempts == 1
    [request] = provider.captured()
    assert request["body"]["logprobs"] is True
    assert request["body"]["model"] == "fake-gpt"
    assert request["body"]["messages"] == [m.as_dict() for m in MESSAGES]


def test_no_logprobs_unless_asked(provider):
    out = tier(provider).complete(MESSAGES, SAMPLING)
    assert out.mean_logprob is None
    assert "logprobs" not in provider.captured()[0]["body"]


def test_finish_reason_length_passes_through(provider):
    out = tier(provider).complete(MESSAGES, Sampling.greedy(max_tokens=2))
    assert (out.text, out.finish_reason, out.completion_tokens) == ("echo: hello", "length", 2)


def test_stream_joins_to_the_same_text(provider):
    t = tier(provider)
    whole = t.complete(MESSAGES, SAMPLING).text
    parts = list(t.stream(MESSAGES, SAMPLING))
    assert len(parts) > 1
    assert "".join(parts) == whole
    assert t.last_attempts == 1
    body = provider.captured()[-1]["body"]
    assert body["stream"] is True and body["model"] == "fake-gpt"


def test_a_stream_reports_the_providers_own_token_counts(provider):
    """Streams ask for OpenAI's usage chunk, so the ledger gets real counts, not an estimate."""
    t = tier(provider)
    whole = t.complete(MESSAGES, SAMPLING)
    info: dict = {}
    list(t.stream(MESSAGES, SAMPLING, info=info))
    assert provider.captured()[-1]["body"]["stream_options"] == {"include_usage": True}
    assert (info["prompt_tokens"], info["completion_tokens"]) == (whole.prompt_tokens, whole.completion_tokens)


def test_bearer_key_is_sent_and_never_recorded(provider):
    tier(provider).complete(MESSAGES, SAMPLING)
    ThirdPartyTier(provider.url, "fake-gpt").complete(MESSAGES, SAMPLING)
    with_key, without_key = provider.captured()
    assert with_key["auth"] == {"present": True, "scheme": "Bearer"}
    assert without_key["auth"] == {"present": False, "scheme": None}
    assert KEY not in json.dumps(provider.captured())


def test_429s_are_retried_and_retry_after_is_honoured(provider):
    provider.faults([429, 429, 200], retry_after=0.2)
    t = tier(provider, backoff=0.001, max_backoff=5.0)
    start = time.perf_counter()
    out = t.complete(MESSAGES, SAMPLING)
    elapsed = time.perf_counter() - start
    assert out.text == "echo: hello there world"
    assert t.last_attempts == 3 and len(provider.captured()) == 3
    assert t.last_waits == [0.2, 0.2]
    assert elapsed >= 0.4


def test_retry_after_is_honoured_and_a_wait_past_max_backoff_falls_back_at_once(provider):
    provider.faults([503], retry_after=0.05)
    t = tier(provider, max_backoff=1.0)
    t.complete(MESSAGES, SAMPLING)
    assert t.last_waits == [0.05]  # as asked, not our own backoff
    for asked in (30, email.utils.formatdate(time.time() + 3600, usegmt=True)):  # seconds, or an HTTP date
        provider.faults([503], retry_after=asked)
        start = time.perf_counter()
        with pytest.raises(TierUnavailableError, match=r"asked to retry after \d+ s"):
            t.complete(MESSAGES, SAMPLING)
        assert t.last_attempts == 1 and t.last_waits == []  # no hammering: the router falls back now
        assert time.perf_counter() - start < 5
    provider.faults([503], retry_after=email.utils.formatdate(time.time() - 60, usegmt=True))  # a date past
    t.complete(MESSAGES, SAMPLING)
    assert t.last_waits == [0.0]


def test_backoff_grows_exponentially_with_jitter(provider):
    provider.faults([502, 502, 502])
    t = tier(provider, backoff=0.01, max_backoff=0.025)
    t.complete(MESSAGES, SAMPLING)
    first, second, third = t.last_waits
    assert 0.005 <= first <= 0.01
    assert 0.01 <= second <= 0.02
    assert 0.0125 <= third <= 0.025  # 0.04 capped at max_backoff, then jittered


def test_persistent_500_gives_up_after_retries_plus_one(provider):
    retries = 2
    provider.faults([500] * (retries + 1))
    t = tier(provider, retries=retries)
    with pytest.raises(TierUnavailableError) as err:
        t.complete(MESSAGES, SAMPLING)
    assert err.value.tier == "third_party" and err.value.status == 500
    assert "500" in err.value.reason and "injected failure 500" in err.value.reason
    assert t.last_attempts == retries + 1 and len(provider.captured()) == retries + 1


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_fail_at_once(provider, status):
    provider.faults([status, status, status])
    t = tier(provider)
    with pytest.raises(TierUnavailableError) as err:
        t.complete(MESSAGES, SAMPLING)
    assert err.value.status == status
    assert f"HTTP {status}: injected failure {status}" in err.value.reason
    assert t.last_attempts == 1 and len(provider.captured()) == 1


def test_plain_text_error_body_gives_the_status_only(provider):
    provider.faults([401], fail_mode="text")
    with pytest.raises(TierUnavailableError) as err:
        tier(provider).complete(MESSAGES, SAMPLING)
    assert err.value.reason == "HTTP 401"


def test_unreachable_provider(provider):
    t = ThirdPartyTier("http://127.0.0.1:9/v1", "fake-gpt", KEY, retries=1, backoff=0.01, timeout=5)
    with pytest.raises(TierUnavailableError) as err:
        t.complete(MESSAGES, SAMPLING)
    assert err.value.status is None
    assert "ConnectError" in err.value.reason
    assert KEY not in str(err.value)
    assert t.last_attempts == 2


def test_unreachable_provider_while_streaming():
    t = ThirdPartyTier("http://127.0.0.1:9/v1", "fake-gpt", retries=1, backoff=0.01, timeout=5)
    with pytest.raises(TierUnavailableError):
        list(t.stream(MESSAGES, SAMPLING))
    assert t.last_attempts == 2


def test_read_timeout_is_retried_then_reported(provider):
    provider.faults([], delay=1.0)
    t = tier(provider, retries=1, timeout=0.2)
    with pytest.raises(TierUnavailableError) as err:
        t.complete(MESSAGES, SAMPLING)
    assert "ReadTimeout" in err.value.reason
    assert t.last_attempts == 2


def test_invalid_json_in_a_200_response(provider):
    provider.faults(["invalid_json"])
    t = tier(provider)
    with pytest.raises(TierUnavailableError) as err:
        t.complete(MESSAGES, SAMPLING)
    assert err.value.status == 200
    assert "not a chat completion" in err.value.reason
    assert t.last_attempts == 1


def test_a_completion_of_the_wrong_shape_is_the_tier_failing(provider):
    provider.faults(["content_list"])
    with pytest.raises(TierUnavailableError, match="message content is list, not text"):
        tier(provider).complete(MESSAGES, SAMPLING)


def test_usage_counts_are_clamped_to_what_a_ledger_can_hold_and_estimated_when_unusable(provider):
    provider.faults(["huge_usage"])
    out = tier(provider).complete(MESSAGES, SAMPLING)
    assert out.text == "hi" and (out.prompt_tokens, out.completion_tokens) == (2**31 - 1, 2**31 - 1)
    provider.faults(["negative_usage"])  # no usable count: four characters a token, never a free answer
    out = tier(provider).complete(MESSAGES, SAMPLING)
    prompt_chars = sum(len(m.content) for m in MESSAGES)
    assert (out.prompt_tokens, out.completion_tokens) == (max(1, prompt_chars // 4), 1)


@pytest.mark.parametrize(("fault", "needle"), [("stream_choices_str", "choices are not objects"),
                                                ("stream_content_number", "int content"),
                                                ("stream_deep_json", "not JSON")])  # not a RecursionError
def test_a_stream_event_of_the_wrong_shape_is_the_tier_failing(provider, fault, needle):
    provider.faults([fault])
    with pytest.raises(TierUnavailableError, match=needle):
        list(tier(provider).stream(MESSAGES, SAMPLING))


def test_json_schema_goes_out_as_response_format(provider):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    tier(provider).complete(MESSAGES, SAMPLING, json_schema=schema)
    body = provider.captured()[0]["body"]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def test_stream_retries_before_any_content(provider):
    provider.faults([503, "cut_early"], retry_after=0)
    t = tier(provider)
    assert "".join(t.stream(MESSAGES, SAMPLING)) == "echo: hello there world"
    assert t.last_attempts == 3


def test_stream_does_not_retry_after_content(provider):
    provider.faults(["cut"])
    t = tier(provider)
    got: list[str] = []
    with pytest.raises(TierUnavailableError) as err:
        for part in t.stream(MESSAGES, SAMPLING):
            got.append(part)
    assert got == ["echo:"]
    assert "broke off" in err.value.reason
    assert t.last_attempts == 1 and len(provider.captured()) == 1


def test_stream_client_error_fails_at_once(provider):
    provider.faults([401])
    t = tier(provider)
    with pytest.raises(TierUnavailableError) as err:
        list(t.stream(MESSAGES, SAMPLING))
    assert err.value.status == 401 and "injected failure 401" in err.value.reason
    assert t.last_attempts == 1


def test_from_env(monkeypatch, provider):
    monkeypatch.setenv("TETHER_THIRD_PARTY_BASE_URL", provider.url)
    monkeypatch.setenv("TETHER_THIRD_PARTY_MODEL", "env-model")
    monkeypatch.setenv("TETHER_THIRD_PARTY_API_KEY", KEY)
    t = ThirdPartyTier.from_env(backoff=0.01)
    assert (t.base_url, t.model, t.api_key, t.backoff) == (provider.url, "env-model", KEY, 0.01)
    assert t.complete(MESSAGES, SAMPLING).model == "env-model"
    assert provider.captured()[0]["auth"]["present"] is True


def test_from_env_without_key(monkeypatch):
    monkeypatch.setenv("ACME_BASE_URL", "https://example.invalid/v1")
    monkeypatch.setenv("ACME_MODEL", "m")
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    assert ThirdPartyTier.from_env("ACME").api_key is None


@pytest.mark.parametrize("missing", ["BASE_URL", "MODEL"])
def test_from_env_missing_vars(monkeypatch, missing):
    monkeypatch.setenv("TETHER_THIRD_PARTY_BASE_URL", "https://example.invalid/v1")
    monkeypatch.setenv("TETHER_THIRD_PARTY_MODEL", "m")
    monkeypatch.delenv(f"TETHER_THIRD_PARTY_{missing}")
    with pytest.raises(RouterConfigError, match=f"TETHER_THIRD_PARTY_{missing}"):
        ThirdPartyTier.from_env()


def test_a_transport_error_without_a_message_still_says_what_failed():
    import httpx

    tier = ThirdPartyTier("http://127.0.0.1:9/v1", "m", None)
    assert tier._transport_reason(httpx.ReadTimeout("")).endswith(": no detail")
    assert tier._transport_reason(httpx.ConnectError("refused")).endswith(": refused")


def test_a_cancelled_request_sends_nothing_more(provider):
    """A client that went away (the gateway sets the thread's cancel) stops the retries and backoff."""
    import threading

    from tether.errors import GenerationCancelledError
    from tether.models.engine import cancellation

    provider.reset()
    provider.faults([500, 500, 500, 500])
    tier = ThirdPartyTier(provider.url, "gpt-test", None, retries=3, backoff=30.0, max_backoff=30.0)
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    start = time.monotonic()
    with cancellation(cancel), pytest.raises(GenerationCancelledError):
        tier.complete([Message("user", "Hi")], Sampling.greedy(4))
    assert time.monotonic() - start < 10  # not 30 s of backoff
    assert len(provider.captured()) == 1  # the first attempt only
    provider.faults([])
    tier.close()


@pytest.mark.parametrize(("fault", "needle", "stream"), [
    ("bad_gzip", "DecodingError", False), ("oversized", "over 16 MiB", False), ("drip", "no complete answer", False),
    # a stream line without a newline must not be buffered past the cap or waited on past the deadline
    ("stream_endless_line", "stream is over 16 MiB", True), ("stream_drip_line", "no text from", True)])
def test_a_broken_slow_or_huge_answer_is_the_tier_failing_within_bounds(provider, fault, needle, stream):
    """Each must end as TierUnavailableError (so the router falls back), never hang or swamp the device."""
    provider.faults([fault] * 4)
    t = tier(provider, deadline=1.0, retries=1)
    start = time.perf_counter()
    with pytest.raises(TierUnavailableError, match=needle):
        list(t.stream(MESSAGES, SAMPLING)) if stream else t.complete(MESSAGES, SAMPLING)
    assert time.perf_counter() - start < 15


def test_a_base_url_with_credentials_is_refused():
    with pytest.raises(RouterConfigError, match="user name or password"):
        ThirdPartyTier("https://apiuser:s3cr3t@api.example/v1", "m")


@pytest.mark.parametrize("key", ["sk-live-ABC\nXYZ-SECRET", "sk-live-ABC\r\nXYZ-SECRET", "sk-live-ABC\u2026XYZ-SECRET",
                                 "sk-live-ABC\u200bXYZ-SECRET", "sk-live-ABC XYZ-SECRET", "sk-live-ABC\x7fXYZ-SECRET"])
def test_a_key_no_http_header_can_carry_is_refused_at_once_without_quoting_it(provider, monkeypatch, key):
    """Sent as it is, such a key failed every request with a message quoting the header (into the router's
    notes, and so into gateway responses), or with a UnicodeEncodeError traceback."""
    from tether.routing.config import RouterConfig
    from tether.routing.router import Router

    with pytest.raises(RouterConfigError) as err:
        ThirdPartyTier(provider.url, "fake-gpt", key)
    monkeypatch.setenv("ACME_API_KEY", key)
    config = RouterConfig(third_party={"base_url": provider.url, "model": "m", "api_key_env": "ACME_API_KEY"})
    with pytest.raises(RouterConfigError, match=r"\$ACME_API_KEY holds") as from_config:
        Router.from_config(config, ledger=None)
    for message in (str(err.value), str(from_config.value)):
        assert "sk-live" not in message and "ABC" not in message and "SECRET" not in message
    assert provider.captured() == []


def test_the_key_is_redacted_also_as_a_repr_or_json_quotes_it(provider):
    key = 'sk-a\\b"c-0123456789'  # printable, but a repr or JSON escapes the backslash and the quote
    t = ThirdPartyTier(provider.url, "fake-gpt", key)
    for quoted in (repr(f"Bearer {key}".encode()), json.dumps({"authorization": f"Bearer {key}"}), key):
        redacted = t._fail(f"header was {quoted}").reason
        assert "0123456789" not in redacted and "***" in redacted


@pytest.mark.parametrize("stream", [False, True])
def test_text_http_cannot_encode_is_the_tier_failing_not_a_traceback(provider, stream):
    t = tier(provider)
    messages = [Message("user", "hello \ud800 there")]  # a lone surrogate: not UTF-8
    with pytest.raises(TierUnavailableError, match="could not be sent") as err:
        list(t.stream(messages, SAMPLING)) if stream else t.complete(messages, SAMPLING)
    assert "\\ud800" not in err.value.reason and t.last_attempts == 1 and provider.captured() == []


@pytest.mark.parametrize(("fault", "needle"), [("drip_error", "no complete answer"), ("big_error", "over 16 MiB")])
def test_a_streamed_request_s_error_body_is_read_within_the_deadline_and_the_cap(provider, fault, needle):
    """A 5xx body that drips or floods is read like an answer: not past the deadline, not past 16 MiB."""
    provider.faults([fault] * 2)
    t = tier(provider, deadline=1.0, retries=0)
    start = time.perf_counter()
    with pytest.raises(TierUnavailableError, match=needle):
        list(t.stream(MESSAGES, SAMPLING))
    assert time.perf_counter() - start < 5  # the drip alone lasts 30 s


@pytest.mark.parametrize(("fault", "stream"), [("drip", False), ("stream_drip_line", True), ("drip_error", True)])
def test_the_deadline_is_one_for_the_whole_request_whatever_the_retries(provider, fault, stream):
    """Retries share the deadline: a provider that drips cannot hold the device for (retries + 1) deadlines,
    nor get the text again on each of them."""
    provider.faults([fault] * 4)
    t = tier(provider, deadline=1.0, retries=3)
    start = time.perf_counter()
    with pytest.raises(TierUnavailableError, match=r"1 s deadline"):
        list(t.stream(MESSAGES, SAMPLING)) if stream else t.complete(MESSAGES, SAMPLING)
    assert time.perf_counter() - start < 2.5
    assert len(provider.captured()) == 1 == t.last_attempts


def test_an_html_page_instead_of_a_stream_fails_at_once_and_says_so(provider):
    """Streamed, a 200 HTML page (a captive portal, a web site at the base URL) read as a stream cut short:
    the text went out retries + 1 times, and the message spoke of a missing [DONE]. Unstreamed it fails once."""
    provider.faults(["html"] * 4)
    t = tier(provider, retries=3)
    with pytest.raises(TierUnavailableError, match="not an event stream.*text/html") as err:
        list(t.stream(MESSAGES, SAMPLING))
    assert err.value.status == 200 and t.last_attempts == 1 and len(provider.captured()) == 1


@pytest.mark.parametrize("stream", [False, True])
def test_half_an_emoji_in_an_answer_is_replaced_not_a_crash_later(provider, stream):
    """JSON can escape a lone surrogate ("\\ud83d"), which no UTF-8 output can write: passed on, it broke
    ``tether route --run`` with a UnicodeEncodeError traceback. A pair split over two events is joined."""
    provider.faults(["lone_surrogates"])
    t = tier(provider)
    text = "".join(t.stream(MESSAGES, SAMPLING)) if stream else t.complete(MESSAGES, SAMPLING).text
    assert text == ("smile \U0001F600 half \ufffd end" if stream else "half \ufffd here")
    text.encode("utf-8")
    provider.faults(["lone_surrogate_error"])
    with pytest.raises(TierUnavailableError) as err:
        list(t.stream(MESSAGES, SAMPLING)) if stream else t.complete(MESSAGES, SAMPLING)
    assert err.value.reason == "HTTP 400: bad input \ufffd here"
    str(err.value).encode("utf-8")


@pytest.mark.parametrize("stream", [False, True])
def test_a_base_url_without_v1_is_a_404_that_names_the_url_and_says_what_to_check(provider, stream):
    """A 404 said only "HTTP 404": nothing pointed at third_party.base_url. A trailing slash is dropped."""
    t = ThirdPartyTier(provider.root + "/", "fake-gpt", KEY, backoff=0.01, max_backoff=0.05)
    assert t.url == f"{provider.root}/chat/completions"
    with pytest.raises(TierUnavailableError) as err:
        list(t.stream(MESSAGES, SAMPLING)) if stream else t.complete(MESSAGES, SAMPLING)
    assert err.value.status == 404 and t.last_attempts == 1
    assert err.value.reason.startswith("HTTP 404")
    assert f"{provider.root}/chat/completions" in err.value.reason and "/v1" in err.value.reason
