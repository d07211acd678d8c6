"""What the job engine asks of the place where transcription runs: the :class:`Backend` protocol.

Two implementations: :class:`pipeline.backends.local.LocalBackend` runs batches in this process on the model
manager's inference lanes; :class:`pipeline.backends.dask.DaskBackend` sends them to Dask workers. The engine
(:mod:`pipeline.jobs.engine`) holds one and never asks which it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from pipeline.asr.detect import LanguageGuess
    from pipeline.asr.inputs import SegmentAudio
    from pipeline.core.settings import GuardSettings, ModelSettings, TranscribeSettings
    from pipeline.core.types import SegmentResult

#: A batch on its way: its segments' results, in order, and the name of the model that made them.
BatchFuture = Future[tuple[list["SegmentResult"], str]]
#: Told once when a job has to wait before its first batch can go: ``(stage, message)``, where stage is
#: ``waiting_for_model`` or ``waiting_for_workers``.
WaitCallback = Callable[[str, str], None]


class Backend(Protocol):
    """Runs batches of segment windows and language detection; reports its workers and their models.

    Model settings given to it are the job's, resolved for this machine (threads filled in); a backend whose
    workers plan their own threads replaces those parts with its workers' own.
    """

    @property
    def job_slots(self) -> int:
        """Jobs worth running at once on this backend."""
        ...

    @property
    def distributed(self) -> bool:
        """Whether batches run in other processes (whose clocks differ from this one's)."""
        ...

    def start(self, models: Sequence[ModelSettings] = (), *, preload: bool = True) -> None:
        """Begin getting ready in the background and return at once; a failure surfaces in :meth:`ready`.

        Args:
            models: Models to load beyond the configured preload list (ignored where workers preload their own).
            preload: Load the configured preload list first.
        """
        ...

    def ready(self) -> None:
        """Block until batches can be sent (the cluster started or reached); idempotent.

        Raises:
            ClusterError: The workers cannot be had.
        """
        ...

    def prepare(self, model: ModelSettings, on_wait: WaitCallback, *, multilingual: bool = False) -> str:
        """Block until a job on ``model`` can run (its model loaded, or a worker connected); return the
        model's name. ``on_wait`` is called once if that takes a while.

        Raises:
            ModelError: The model cannot be had.
            UsageError: ``multilingual`` is asked for and the model is English-only (where known up front).
            ClusterError: No worker joined in time.
        """
        ...

    def inflight(self, model: ModelSettings) -> int:
        """Batches of one job on ``model`` worth having out at once: enough to keep every lane or worker busy."""
        ...

    def submit(
        self,
        items: list[SegmentAudio],
        settings: TranscribeSettings,
        language: str,
        model: ModelSettings,
        priority: float = 0.0,
        guard: GuardSettings | None = None,
    ) -> BatchFuture:
        """Start transcribing one batch; ``priority`` orders queued batches where the backend queues them."""
        ...

    def detect_language(self, windows: list[np.ndarray], model: ModelSettings) -> LanguageGuess:
        """The language of some speech windows (blocks)."""
        ...

    def cancel(self, futures: Sequence[Future]) -> None:
        """Drop batches from :meth:`submit` that are queued or running (a cancelled or failed job)."""
        ...

    def alive(self) -> int:
        """Workers able to take work now."""
        ...

    def wait_for_workers(self, timeout_s: float, on_wait: Callable[[str], None] | None = None) -> None:
        """Return when a worker can take work; call ``on_wait(message)`` once if none can yet.

        Raises:
            ClusterError: None could within ``timeout_s``.
        """
        ...

    def status(self, jobs: int = 0) -> dict[str, Any]:
        """Where jobs run: ``{"mode", "scheduler", "dashboard", "workers": [...]}``; ``jobs`` running now."""
        ...

    def model_statuses(self) -> dict[str, dict[str, Any]]:
        """Each worker's model-manager status, by worker name (empty while the workers are not reached)."""
        ...

    def load_model(self, name: str | None) -> dict[str, dict[str, Any]]:
        """Start a load round for ``name`` on every worker (blank: the selected model again); each worker's
        answer (``{"ok": bool, "error"?: str, "status": ...}``) by worker.

        Raises:
            ModelBusyError: This process's only worker is still loading.
        """
        ...

    def close(self) -> None:
        """Stop what this backend started."""
        ...
