"""``auto`` into concrete values: the one place where settings left to the machine are decided, with reasons.

A setting a user leaves open is a sentinel: ``0`` for the batch size, the CPU threads and the replicas,
``auto`` for the model. :func:`resolve` turns them into values for this machine (from the optimizer,
:mod:`pipeline.optimize.optimizer`) and, once the spoken language is known, the model for it
(:func:`pipeline.asr.models.choose_model`), and says why for each one. Values a user chose are kept.

What a cluster worker decides for itself is left open here: the device and compute type a model is placed on
(``auto``) are resolved where it loads (:func:`pipeline.asr.models.placement_for`), since the machine that
submits a job need not be the one that runs it.
"""

from __future__ import annotations

import dataclasses

from pipeline.core.settings import AUTO_MODEL, Settings
from pipeline.optimize.optimizer import optimize
from pipeline.system.detect import CoreHardwareDetector, HardwareInfo

#: The reason of a value the user chose (kept as it is).
AS_REQUESTED = "as requested"


def resolve(
    settings: Settings,
    hardware: HardwareInfo | None = None,
    language: str | None = None,
    *,
    pick_model: bool = False,
) -> tuple[Settings, dict[str, str]]:
    """Decide every ``auto`` of ``settings`` for this machine, once.

    Args:
        settings: What the user asked for; ``0`` and ``auto`` mean "decide".
        hardware: The machine; detected (and cached by the detector) when None.
        language: The spoken language, when known (None: not known yet, taken as English).
        pick_model: Also decide an ``auto`` model for ``language``. Off, the model stays ``auto``: a job
            records its settings before it knows the language, and picks the model when it does.

    Returns:
        The settings with concrete values, and one reason per value decided here, keyed ``part.field``
        (``transcribe.batch_size``, ``model.cpu_threads``, ``model.replicas``, ``model.name``).
    """
    reasons: dict[str, str] = {}
    transcribe, model = settings.transcribe, settings.model
    info: HardwareInfo | None = hardware
    if not transcribe.batch_size or not model.cpu_threads:
        if info is None:
            info = CoreHardwareDetector(settings.jobs.jobs_dir).detect()
        optimized = optimize(settings, info)
        why = optimized.reasons
        if not transcribe.batch_size:
            transcribe = dataclasses.replace(transcribe, batch_size=optimized.batch_size)
            reasons["transcribe.batch_size"] = why.get("batch_size", "the optimizer's choice")
        if not model.cpu_threads:
            model = dataclasses.replace(model, cpu_threads=optimized.cpu_threads)
            reasons["model.cpu_threads"] = why.get("cpu_threads", "the optimizer's choice")
            # Replicas share the worker's threads: the optimizer sizes them together. With threads the user
            # chose, replicas 0 stays for the placement (pipeline.asr.models.auto_replicas) to derive.
            if not model.replicas:
                model = dataclasses.replace(model, replicas=optimized.replicas)
                reasons["model.replicas"] = why.get("replicas", "the optimizer's choice")
    if pick_model and model.name == AUTO_MODEL:
        name, why_model = choose_auto_model(settings, language, info)
        model = dataclasses.replace(model, name=name)
        reasons["model.name"] = why_model
    return settings.replace(transcribe=transcribe, model=model), reasons


def choose_auto_model(
    settings: Settings, language: str | None, hardware: HardwareInfo | None = None
) -> tuple[str, str]:
    """The model ``auto`` runs for ``language`` on this machine, and why (see :func:`choose_model`)."""
    from pipeline.asr.models import choose_model, placement_for

    device = placement_for(settings.model).device
    free_mb = 0
    if device == "cuda":
        info = hardware if hardware is not None else CoreHardwareDetector(settings.jobs.jobs_dir).detect()
        free_mb = max(info.gpu_free_memory_mb or info.gpu_memory_mb or [0])
    return choose_model(language, device, free_mb)
