"""HTTP routes for hardware detection and the optimizer: ``GET /api/hardware/basic`` and
``GET /api/hardware/optimize``. The workbench mounts the router that :func:`hardware_router` builds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException

from pipeline.core.errors import PipelineError
from pipeline.core.settings import AUTO_MODEL, COMPUTE_TYPES, DEVICES
from pipeline.core.validate import parse_affinity
from pipeline.optimize.optimizer import CoreOptimizer
from pipeline.system.detect import CoreHardwareDetector
from workbench.http.errors import http_error


def hardware_router(
    jobs_dir: Path | None = None,
    *,
    detector: CoreHardwareDetector | None = None,
    optimizer: CoreOptimizer | None = None,
) -> APIRouter:
    """Build the ``/api/hardware`` routes.

    Args:
        jobs_dir: The jobs folder whose filesystem's free space is reported (default: the configured one).
        detector: Use this detector (tests, a preconfigured one) instead of one for ``jobs_dir``.
        optimizer: Use this optimizer instead of a default :class:`CoreOptimizer`.

    Returns:
        A router with ``GET /api/hardware/basic`` (the HardwareInfo fields) and ``GET /api/hardware/optimize``
        (the OptimizedSettings fields and their ``reasons``; query parameters ``device``, ``compute_type``,
        ``model`` and ``cpu_affinity`` override ``auto``, as on the command line).
    """
    router = APIRouter(prefix="/api/hardware", tags=["hardware"])
    # Built lazily: constructing the router must not probe anything.
    state: dict[str, Any] = {"detector": detector, "optimizer": optimizer or CoreOptimizer()}

    def _detector() -> CoreHardwareDetector:
        if state["detector"] is None:
            state["detector"] = CoreHardwareDetector(jobs_dir)
        return state["detector"]

    # Plain ``def`` routes: FastAPI runs them in its thread pool, so a slow probe never blocks the event loop.
    @router.get("/basic")
    def hardware_basic(refresh: bool = False) -> dict[str, Any]:
        return _detector().detect(refresh=refresh).as_dict()

    @router.get("/optimize")
    def hardware_optimize(
        device: str = "auto",
        compute_type: str = "auto",
        model: str = AUTO_MODEL,
        cpu_affinity: str = "auto",
        refresh: bool = False,
    ) -> dict[str, Any]:
        if device not in DEVICES:
            raise HTTPException(422, f"bad device {device!r}: use one of {', '.join(DEVICES)}")
        if compute_type not in COMPUTE_TYPES:
            raise HTTPException(422, f"bad compute_type {compute_type!r}: use one of {', '.join(COMPUTE_TYPES)}")
        try:
            affinity = parse_affinity(cpu_affinity)
            optimized = state["optimizer"].optimize(
                _detector().detect(refresh=refresh),
                device=device,
                compute_type=compute_type,
                model=model.strip() or AUTO_MODEL,
                cpu_affinity=affinity,
            )
        except PipelineError as exc:
            raise http_error(exc, usage=422) from exc
        return optimized.as_dict()

    return router
