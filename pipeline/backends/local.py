"""In-process transcription: batches run on the model manager's inference lanes in this process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from pipeline.asr.detect import detect_with
from pipeline.asr.manager import ModelManager
from pipeline.asr.models import ModelCache, placement_for
from pipeline.asr.transcribe import batch_future, check_multilingual

if TYPE_CHECKING:
    import numpy as np

    from pipeline.asr.detect import LanguageGuess
    from pipeline.asr.inputs import SegmentAudio
    from pipeline.backends.base import BatchFuture, WaitCallback
    from pipeline.core.settings import GuardSettings, ModelSettings, Settings, TranscribeSettings

log = logging.getLogger(__name__)


class LocalBackend:
    """This process as the one worker: one :class:`~pipeline.asr.manager.ModelManager`, whose inference
    thread loads the model and runs every call.

    Args:
        settings: The runner's settings, resolved for this machine (threads filled in).
        models: A model manager to share (kept open on :meth:`close`); a plain cache is wrapped in a manager
            of this backend's own; by default a new one.
    """

    job_slots = 1  # one inference thread: a second job would only queue behind the first one's calls
    distributed = False

    def __init__(self, settings: Settings, models: ModelManager | ModelCache | None = None) -> None:
        self.settings = settings
        self._owns_models = not isinstance(models, ModelManager)
        # The one inference thread that loads the model also runs every call on it: CTranslate2 on CPU ran
        # several times slower when a model loaded on one thread was used from another.
        self.models = (
            models if isinstance(models, ModelManager) else ModelManager(settings.model, settings.models, cache=models)
        )
        self._pinned = False
        self._pin_lock = threading.Lock()

    def _pin(self) -> None:
        """Bind this process to its cores once, as a worker process does when it starts."""
        from pipeline.system.affinity import apply_cpu_affinity

        with self._pin_lock:
            if self._pinned:
                return
            self._pinned = True
        apply_cpu_affinity(self.settings.cluster.cpu_affinity, placement_for(self.settings.model).device)

    def start(self, models: Sequence[ModelSettings] = (), *, preload: bool = True) -> None:
        """Bind the cores and start loading: the preload list (``preload``), then ``models``."""
        self._pin()
        if preload:
            self.models.preload()
        for model in models:
            self.models.request(model)

    def ready(self) -> None:
        """Always ready; binds the cores if :meth:`start` was not called."""
        self._pin()

    def prepare(self, model: ModelSettings, on_wait: WaitCallback, *, multilingual: bool = False) -> str:
        """Wait for ``model`` to load here; an English-only model is refused at once when ``multilingual``."""
        future = self.models.request(model)
        if not future.done():
            on_wait("waiting_for_model", f"waiting for the model: {self.models.message_for(model)}")
        loaded = future.result()
        if multilingual:
            check_multilingual(loaded)
        return loaded.spec.name

    def inflight(self, model: ModelSettings) -> int:
        """One batch more than the model has replicas, so a freed replica never waits for the next batch."""
        return placement_for(model).replicas + 1

    def submit(
        self,
        items: list[SegmentAudio],
        settings: TranscribeSettings,
        language: str,
        model: ModelSettings,
        priority: float = 0.0,
        guard: GuardSettings | None = None,
    ) -> BatchFuture:
        """Queue one batch on the next free inference lane (in order: ``priority`` does not apply here)."""
        return batch_future(self.models, items, settings, language, model, guard)

    def detect_language(self, windows: list[np.ndarray], model: ModelSettings) -> LanguageGuess:
        """The language of ``windows`` on ``model``, loaded here."""
        return detect_with(self.models, windows, model)

    def cancel(self, futures: Sequence[Future]) -> None:
        """Cancel the batches not started yet (a running call ends on its own)."""
        for future in futures:
            future.cancel()

    def alive(self) -> int:
        """This process: always one worker."""
        return 1

    def wait_for_workers(self, timeout_s: float, on_wait: Callable[[str], None] | None = None) -> None:
        """This process is the worker: nothing to wait for."""

    def status(self, jobs: int = 0) -> dict[str, Any]:
        """This process as the one worker, with its cached models and the jobs running now."""
        return {
            "mode": "in-process",
            "scheduler": None,
            "dashboard": None,
            "workers": [
                {
                    "name": "in-process",
                    "address": "local",
                    "state": "running",
                    "nthreads": placement_for(self.settings.model).cpu_threads or 0,
                    "resources": {},
                    "models": self.models.names(),
                    "jobs": jobs,
                }
            ],
        }

    def model_statuses(self) -> dict[str, dict[str, Any]]:
        """The model manager's status."""
        return {self.models.name: self.models.status()}

    def load_model(self, name: str | None) -> dict[str, dict[str, Any]]:
        """Select ``name`` and start loading it here (the manager refuses while a load runs)."""
        return {self.models.name: {"ok": True, "status": self.models.load(name)}}

    def close(self) -> None:
        """Stop the model manager when this backend made it."""
        if self._owns_models:
            self.models.close()
