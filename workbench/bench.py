"""The state behind the workbench's UI, beside the job service: the model preload and status, model downloads,
the hardware report, the usage history for the charts, and result export for downloads.

The UI tabs (:mod:`workbench.ui`) and the model routes (:mod:`workbench.http.models`) read it; the server
(:mod:`workbench.server`) builds one over the job service and starts it with the app.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from pathlib import Path
from typing import Any

from pipeline.asr.catalogue import catalogue, download, standard_repos
from pipeline.asr.manager import ModelBusyError
from pipeline.core.errors import PipelineError, UsageError
from pipeline.core.settings import AUTO_MODEL, FORMATS, Settings
from pipeline.core.states import JobState
from pipeline.optimize.report import hardware_report
from workbench.errors import JobNotFoundError, ResultNotFoundError
from workbench.service import JobManager
from workbench.status import deleted_status
from workbench.usage import HOST, UsageHistory

log = logging.getLogger(__name__)

#: Where results are written for download (``<tmp>/video2srt-ui/<job id>/<input stem>.<fmt>``): Gradio
#: serves files from the temp folder, and the names are the user's file names.
EXPORT_ROOT = Path(tempfile.gettempdir()) / "video2srt-ui"


class Workbench:
    """The state behind the UI.

    Args:
        settings: The app's settings.
        manager: The job manager shared with the HTTP API.
        preload: Load the default model in the background at :meth:`start`.
    """

    def __init__(self, settings: Settings, manager: JobManager, *, preload: bool = True) -> None:
        self.settings = settings
        self.manager = manager
        self.preload_enabled = preload
        self.usage = UsageHistory(workers=self._workers)
        self._runner_ready = threading.Event()
        self._startup_error: str | None = None
        self._report: dict[str, Any] | None = None
        self._lock = threading.Lock()
        #: Model downloads started from the Models tab: name → {"state", "progress", "message"}.
        self._downloads: dict[str, dict[str, Any]] = {}

    # start-up -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Build the runner and preload the model in the background; start the usage sampler."""
        threading.Thread(target=self._start_backend, name="workbench-start", daemon=True).start()
        self.usage.start()

    def _start_backend(self) -> None:
        try:
            runner = self.manager.runner  # detects the hardware; the backend pins CPUs when it starts
            if self.preload_enabled or runner.on_cluster:
                # In-process: marks the model loading before returning, so the status has no idle gap. On a
                # cluster: starts or reaches it; each worker's plugin preloads (or not: --no-preload).
                runner.start()
            self._runner_ready.set()
        except Exception as exc:  # noqa: BLE001 - shown as the model status; the app keeps serving
            log.warning("workbench: the transcription backend did not start: %s", exc)
            self._startup_error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

    def close(self) -> None:
        self.usage.stop()

    # status ---------------------------------------------------------------------------------------
    def model_name(self) -> str:
        """The model jobs use: ``--model``, or the optimizer's choice for ``auto``."""
        name = self.settings.model.name
        return self.hardware_report()["optimized"]["model"] if name == AUTO_MODEL else name

    def model_status(self) -> dict[str, Any]:
        """The app-level model status (``GET /api/models/status``): the model manager's, aggregated over workers."""
        if self._runner_ready.is_set():
            return self.manager.runner.model_status()
        base: dict[str, Any] = {
            "model": self.model_name(),
            "stage": None,
            "progress": 0.0,
            "error": None,
            "busy": False,
            "ready_workers": 0,
            "total_workers": 0,
            "workers": [],
        }
        if self._startup_error:
            return {**base, "state": "failed", "error": self._startup_error, "message": self._startup_error}
        if self.preload_enabled:
            return {**base, "state": "loading", "message": "starting the transcription backend"}
        return {**base, "state": "idle", "message": "not loaded yet: it loads with the first job"}

    def load_model(self, name: str | None) -> dict[str, Any]:
        """Start a model load (``None``: the selected model again, a retry); returns the model status.

        Raises:
            ModelBusyError: Another load runs, or the backend is still starting.
        """
        if not self._runner_ready.is_set():
            raise ModelBusyError(
                "the transcription backend is still starting; try again in a moment", self.model_status()
            )
        return self.manager.runner.load_model(name)

    def model_catalogue(self) -> list[dict[str, Any]]:
        """The models catalogue (``GET /api/models``): each model's languages, size, presence, expected speed on
        this machine, and its download's progress when one was started here."""
        optimized = self.hardware_report()["optimized"]
        rows = [m.as_dict() for m in catalogue(optimized["device"], optimized["cpu_threads"])]
        with self._lock:
            downloads = {name: dict(d) for name, d in self._downloads.items()}
        for row in rows:
            row["download"] = downloads.get(row["name"])
        return rows

    def download_model(self, name: str) -> dict[str, Any]:
        """Start downloading standard model ``name`` into the HF cache in the background; its progress is in
        :meth:`model_catalogue`. A download already running is joined, not started twice.

        Raises:
            UsageError: Not a standard model name.
        """
        name = (name or "").strip()
        if name not in standard_repos():
            raise UsageError(f"unknown model {name!r}: downloadable names are {', '.join(sorted(standard_repos()))}")
        with self._lock:
            running = self._downloads.get(name)
            if running is not None and running["state"] == "downloading":
                return dict(running)
            entry = self._downloads[name] = {"state": "downloading", "progress": 0.0, "message": f"starting {name}"}

        def progress(fraction: float, message: str) -> None:
            with self._lock:
                entry.update(progress=round(fraction, 3), message=message)

        def run() -> None:
            try:
                download(name, progress)
            except PipelineError as exc:
                with self._lock:
                    entry.update(state="failed", message=str(exc))
                return
            with self._lock:
                entry.update(state="done", progress=1.0, message=f"{name} is in the Hugging Face cache")

        threading.Thread(target=run, name=f"download-{name}", daemon=True).start()
        return dict(entry)

    def cluster_status(self) -> dict[str, Any] | None:
        """The runner's cluster status, or None while the runner is still starting."""
        if not self._runner_ready.is_set():
            return None
        return self.manager.runner.cluster_status()

    def cluster_view(self) -> dict[str, Any] | None:
        """:meth:`cluster_status` for the Cluster tab: a worker inside this process that reports no load of
        its own shows this machine's latest sample (it is this machine)."""
        status = self.cluster_status()
        if status is None or status.get("mode") != "in-process":
            return status
        samples = self.usage.snapshot().get(HOST)
        latest = samples[-1] if samples else None
        workers = [dict(w, usage=w.get("usage") or latest) for w in status.get("workers") or []]
        return {**status, "workers": workers}

    def _workers(self) -> list[dict[str, Any]]:
        # In-process, the one worker is this machine, already charted as the app host.
        status = self.cluster_status()
        return list(status.get("workers") or []) if status and status.get("mode") != "in-process" else []

    def hardware_report(self, refresh: bool = False) -> dict[str, Any]:
        """Detected hardware and the optimizer's settings for the app's model choices (cached)."""
        with self._lock:
            if self._report is None or refresh:
                s = self.settings
                self._report = hardware_report(
                    s.jobs.jobs_dir,
                    device=s.model.device,
                    compute_type=s.model.compute_type,
                    model=s.model.name,
                    cpu_affinity=s.cluster.cpu_affinity,
                    refresh=refresh,
                )
            return self._report

    # jobs -----------------------------------------------------------------------------------------
    def job_status(self, job_id: str) -> dict[str, Any]:
        """The manager's status, or a ``deleted`` placeholder once the job is gone."""
        try:
            return self.manager.status(job_id)
        except JobNotFoundError:
            return deleted_status(job_id)

    def srt_text(self, job_id: str) -> str:
        """The job's SRT: final, or the partial one while it runs; empty before the first segment."""
        try:
            data, _ = self.manager.result(job_id, "srt")
        except (ResultNotFoundError, JobNotFoundError):
            return ""
        return data.decode("utf-8", errors="replace")

    def export(self, job_id: str, with_ass: bool = False) -> dict[str, Path]:
        """Write the job's finished results as ``<input stem>.<fmt>`` files for download.

        Only the formats the job asked for (the job folder also keeps the JSON for review, asked or not).

        Args:
            job_id: The job.
            with_ass: Include the styled ASS even when the job did not ask for it (the Review tab).

        Raises:
            InvalidJobIdError, JobNotFoundError: From the manager, for a bad or unknown id.
        """
        status = self.manager.status(job_id)
        if status["state"] != JobState.DONE:
            return {}
        stem = Path(str(status.get("input_name") or "subtitles")).stem or "subtitles"
        folder = EXPORT_ROOT / status["job_id"]
        out: dict[str, Path] = {}
        asked = self.manager.store.open(status["job_id"]).settings().output.formats
        for fmt in FORMATS:
            if fmt not in asked and not (fmt == "ass" and with_ass):
                continue
            try:
                data, partial = self.manager.result(job_id, fmt)
            except ResultNotFoundError:
                continue
            if partial:
                continue
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{stem}.{fmt}"
            path.write_bytes(data)
            out[fmt] = path
        return out
