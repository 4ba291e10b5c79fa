"""A fake OpenAI-compatible provider, run as a real HTTP server in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tether.cloud.serving import spawn, stop

SERVER = Path(__file__).with_name("provider_server.py")


@dataclass
class Provider:
    root: str  # http://127.0.0.1:PORT
    proc: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        """The base URL a client is configured with (OpenAI style, ending in /v1)."""
        return f"{self.root}/v1"

    def captured(self) -> list[dict[str, Any]]:
        """Every chat request received since the last reset: path, headers (no Authorization), auth, body."""
        return httpx.get(f"{self.root}/_captured", timeout=10).json()

    def reset(self) -> None:
        httpx.post(f"{self.root}/_reset", timeout=10).raise_for_status()

    def faults(self, sequence: list[Any], retry_after: float | None = None, delay: float = 0.0,
               fail_mode: str | None = None) -> None:
        spec = {"sequence": list(sequence), "retry_after": retry_after, "delay": delay, "fail_mode": fail_mode}
        httpx.post(f"{self.root}/_faults", json=spec, timeout=10).raise_for_status()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_provider(tmp: Path, *args: str, timeout: float = 60.0) -> Provider:
    log = tmp / "provider.log"
    proc, url = spawn([sys.executable, str(SERVER), "--port", "0", *args], log, timeout=timeout)
    return Provider(url, proc, log)


def stop_provider(provider: Provider) -> None:
    stop(provider.proc)


class StubDevice:
    """A stand-in for the device tier, for tests of the router's own logic where a model would only be
    loaded to count tokens or give some answer: it counts a token a character (as Qwen's vocabulary
    does for Hindi, roughly) plus a little for the template, and answers ``text``."""

    name = "device"
    model = "stub-device"

    def __init__(self, context_window: int = 4096, text: str = "the device answer"):
        self.context_window = context_window
        self.text = text
        self.calls = 0  # generations

    def count_tokens(self, messages) -> int:
        return sum(len(m.content) + 4 for m in messages) + 3

    def memory_needed_mb(self) -> float:
        return 0.0

    def complete(self, messages, sampling, *, json_schema=None, logprobs=False):
        from tether.routing.tiers import DEVICE, TierResult

        self.calls += 1
        return TierResult(self.text, DEVICE, self.model, self.count_tokens(messages), len(self.text.split()), 0.0,
                          "stop", -0.1 if logprobs else None, -0.5 if logprobs else None)

    def stream(self, messages, sampling, *, json_schema=None, info=None):
        self.calls += 1
        words = self.text.split()
        for i, word in enumerate(words):
            yield word if i == 0 else " " + word
        if info is not None:
            info.update(model=self.model, finish_reason="stop", prompt_tokens=self.count_tokens(messages),
                        completion_tokens=len(words))


@pytest.fixture()
def stub_device() -> StubDevice:
    return StubDevice()


@pytest.fixture(scope="module")
def device():
    """The real device tier on the tiny model."""
    from tether.routing.tiers import DeviceTier

    return DeviceTier("smollm2-135m")


@pytest.fixture()
def third(provider):
    """A third-party tier on the stand-in provider, with its record cleared and quick backoff."""
    from tether.routing.third_party import ThirdPartyTier

    provider.reset()
    tier = ThirdPartyTier(provider.url, "gpt-test", "sk-test-key-not-real", backoff=0.01, max_backoff=0.05)
    yield tier
    tier.close()


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    server = start_provider(tmp_path_factory.mktemp("provider"))
    try:
        yield server
    finally:
        stop_provider(server)
