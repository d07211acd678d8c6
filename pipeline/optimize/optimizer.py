"""The optimizer: turns the detected hardware into the defaults of every job, each decision with a reason.

:class:`CoreOptimizer` turns a :class:`~pipeline.system.detect.HardwareInfo` into :class:`OptimizedSettings`
(batch size, concurrency, memory mapping, affinity, device, model, compute type), each decision with a
one-line reason.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from dataclasses import dataclass, field
from typing import Any

from pipeline.asr.footprint import model_footprint, model_memory_mb
from pipeline.asr.models import BUNDLED, SPLIT_THREADS_BELOW, auto_replicas, default_model_name, resolve_compute_type
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.settings import AUTO_MODEL, Settings
from pipeline.system.affinity import effective_affinity_strategy, format_core_list, plan_affinity
from pipeline.system.detect import MIB, CoreHardwareDetector, HardwareInfo

#: Decoded audio of a long (2 h) input: 16 kHz mono float32, in MiB.
LONG_AUDIO_MB = 2 * 3600 * SAMPLE_RATE * 4 / MIB
#: Memory mapping is used once the in-RAM copies of that audio would take more than this share of free RAM.
MEMORY_MAP_SHARE = 0.10

#: Batches beyond this give no measurable speed-up on one GPU and only raise the risk of running out of memory.
GPU_BATCH_CAP = 32
#: On the CPU every batch item already keeps all threads busy; batching only amortises per-call overhead,
#: which a few items already do, while bigger batches just cost RAM (docs/benchmarks.md).
CPU_BATCH_CAP = 8
#: Windows per call when a worker runs several replicas (lanes) side by side. The lanes pull the next call
#: as they free up, so the work left when the queue runs dry is at most one call per lane: with big calls
#: the last one ran alone on one core while the other idled. Small calls also hold fewer windows' encoder
#: activations at once (peak memory) and cost no more CPU time (benchmarks/README.md, "Lanes").
CPU_LANE_BATCH = 2
#: GPU memory kept free for the CUDA context, cuBLAS/cuDNN workspaces and fragmentation.
GPU_RESERVE_SHARE = 0.10
GPU_RESERVE_MIN_MB = 512
#: Transcription workers together may use this share of the available RAM; the rest is for the coordinator
#: (decoding, VAD), the page cache and everything else on the machine.
CPU_RAM_SHARE = 0.5
#: One worker process before any model: Python, NumPy, PyAV, CTranslate2, faster-whisper.
WORKER_OVERHEAD_MB = 400
#: More CPU workers than this on one machine add scheduling and memory cost for little gain.
CPU_MAX_WORKERS = 4
#: CTranslate2 threads per CPU worker: small models' matrices are too small to keep more than ~4 threads
#: busy in a decode step, so several 4-thread workers beat one wide one; medium/large use 8.
CPU_THREADS_SMALL_MODEL = 4
CPU_THREADS_LARGE_MODEL = 8
#: GPU workers use CPU threads only around the GPU work (CTranslate2 host side); a few are plenty.
GPU_WORKER_CPU_THREADS = 4


@dataclass(frozen=True)
class OptimizedSettings:
    """The optimizer's defaults for jobs on this machine; ``reasons`` says why, one line per field."""

    batch_size: int
    concurrency: int
    use_memory_mapping: bool
    cpu_affinity_cores: list[int]
    cpu_affinity_strategy: str
    device: str
    compute_type: str
    model: str
    cpu_threads: int
    replicas: int = 1
    reasons: dict[str, str] = field(default_factory=dict)
    #: For ``auto``: the model of languages other than English (``model`` is English's); else ``model``.
    multilingual_model: str = ""

    def as_dict(self) -> dict[str, Any]:
        """All fields as plain JSON values."""
        return dataclasses.asdict(self)


def _catalogue_ready() -> bool:
    """Whether faster-whisper's model table can be read (the catalogue needs it for ``auto``)."""
    return importlib.util.find_spec("faster_whisper") is not None


def _gpu_usable_mb(info: HardwareInfo) -> list[int]:
    usable: list[int] = []
    for index, total in enumerate(info.gpu_memory_mb):
        free = info.gpu_free_memory_mb[index] if index < len(info.gpu_free_memory_mb) else total
        reserve = max(GPU_RESERVE_MIN_MB, int(total * GPU_RESERVE_SHARE))
        usable.append(max(0, min(free, total) - reserve))
    return usable


def _gb(mb: float) -> str:
    return f"{mb / 1024:.1f} GB"


_REASON_ORDER = (
    "batch_size",
    "concurrency",
    "use_memory_mapping",
    "cpu_affinity_cores",
    "cpu_affinity_strategy",
    "device",
    "compute_type",
    "model",
    "multilingual_model",
    "cpu_threads",
    "replicas",
)


class CoreOptimizer:
    """Turns :class:`HardwareInfo` into the defaults of every job, each with a one-line reason."""

    def optimize(
        self,
        info: HardwareInfo,
        *,
        device: str = "auto",
        compute_type: str = "auto",
        model: str = AUTO_MODEL,
        cpu_affinity: str = "auto",
    ) -> OptimizedSettings:
        """Decide device, model, compute type, batch size, concurrency, memory mapping and affinity.

        Args:
            info: The machine, from :meth:`CoreHardwareDetector.detect`.
            device: ``auto``, ``cpu`` or ``cuda``; anything but ``auto`` is kept as asked.
            compute_type: ``auto`` or a CTranslate2 compute type; ``auto`` goes through
                :func:`pipeline.asr.models.resolve_compute_type`.
            model: ``auto`` (:func:`pipeline.asr.models.default_model_name`), a Whisper name or a model folder.
            cpu_affinity: ``auto``, ``half``, ``all``, ``none`` or a core list like ``0-3,8``.

        Raises:
            UsageError: ``cpu_affinity`` is not a known strategy or core list.
        """
        reasons: dict[str, str] = {}
        usable = _gpu_usable_mb(info)
        free = [
            info.gpu_free_memory_mb[i] if i < len(info.gpu_free_memory_mb) else total
            for i, total in enumerate(info.gpu_memory_mb)
        ]
        best_free = max(free, default=0)

        # Device: a GPU only when one can hold the model with at least one batch item.
        gpu_compute = resolve_compute_type(compute_type, "cuda")
        gpu_model = model if model != AUTO_MODEL else default_model_name("cuda", best_free)
        need = model_memory_mb(gpu_model, gpu_compute, 1)
        fitting = [i for i, room in enumerate(usable) if room >= need]
        if device != "auto":
            chosen_device = device
            note = "" if device != "cuda" or info.cuda_available else "; no CUDA GPU was detected, loading may fail"
            reasons["device"] = f"{device} as requested{note}"
        elif info.cuda_available and fitting:
            chosen_device = "cuda"
            reasons["device"] = (
                f"cuda: {len(fitting)} of {info.gpu_count} GPU(s) have room for {gpu_model} "
                f"(~{need} MB with one batch item)"
            )
        elif info.cuda_available and info.gpu_count:
            chosen_device = "cpu"
            reasons["device"] = (
                f"cpu: no GPU has room for {gpu_model} (~{need} MB needed, at most {max(usable, default=0)} MB "
                f"usable after a {GPU_RESERVE_MIN_MB} MB / {GPU_RESERVE_SHARE:.0%} reserve)"
            )
        else:
            chosen_device = "cpu"
            reasons["device"] = "cpu: no CUDA GPU detected"

        chosen_compute = resolve_compute_type(compute_type, chosen_device)
        reasons["compute_type"] = (
            f"{chosen_compute} as requested"
            if compute_type != "auto"
            else f"{chosen_compute}: the fastest accurate type on {chosen_device} (float16 on CUDA, int8 on CPU)"
        )

        other_model = model
        if model != AUTO_MODEL:
            chosen_model = model
            reasons["model"] = f"{model} as requested"
            reasons["multilingual_model"] = f"{model} as requested, for every language"
        else:
            gpu_mb = best_free if chosen_device == "cuda" else 0
            chosen_model = default_model_name(chosen_device, gpu_mb)
            if chosen_device == "cuda" and chosen_model != BUNDLED:
                reasons["model"] = (
                    f"{chosen_model}: CUDA GPU with {_gb(best_free)} free (a GPU with enough memory runs "
                    f"{chosen_model}); the bundled {BUNDLED} is used if it is not available offline"
                )
            elif chosen_device == "cuda":
                reasons["model"] = f"bundled {BUNDLED}: {_gb(best_free)} free GPU memory is too little for medium"
            else:
                reasons["model"] = f"bundled {BUNDLED}: always available offline and fast enough on the CPU"
            other_model = chosen_model
            reasons["multilingual_model"] = "the model above, for every language"
            if _catalogue_ready():
                from pipeline.asr.models import choose_model

                english, why_english = choose_model("en", chosen_device, gpu_mb)
                other_model, why_other = choose_model("xx", chosen_device, gpu_mb)
                if chosen_device == "cpu" or english != BUNDLED:
                    chosen_model = english  # what auto really runs for English (a model that is here)
                reasons["model"] = f"auto for English: {why_english}" if chosen_model == english else reasons["model"]
                reasons["multilingual_model"] = (
                    f"auto for other languages: {why_other}; with --language unset the language is detected first "
                    "on the multilingual base, on speech windows only"
                )

        strategy = effective_affinity_strategy(cpu_affinity, chosen_device)
        cores, note = plan_affinity(cpu_affinity, chosen_device, info.cpu_threads)
        if cores is None:
            reasons["cpu_affinity_cores"] = "not bound (strategy none): the OS schedules workers on any core"
        else:
            why = {
                "half": "the first half of the CPUs for transcription; the rest stays free for decoding and VAD",
                "all": "all CPUs: transcription on the CPU is the work itself",
            }.get(strategy, "the listed cores")
            reasons["cpu_affinity_cores"] = f"cores {format_core_list(cores)}: {why}" + (f"; {note}" if note else "")
        reasons["cpu_affinity_strategy"] = (
            f"{strategy}: resolved from auto for {chosen_device}"
            if cpu_affinity.strip().lower() == "auto"
            else f"{strategy} as requested"
        )
        # Workers can use no more physical cores than they are bound to.
        core_budget = max(1, min(info.cpu_cores, len(cores) if cores is not None else info.cpu_threads))

        if chosen_device == "cuda":
            batch_size, concurrency, cpu_threads = self._gpu_plan(
                info, usable, chosen_model, chosen_compute, core_budget, reasons
            )
            replicas = 1
            reasons["replicas"] = "1 per worker: one model per GPU, whose batches already fill it"
        else:
            batch_size, concurrency, cpu_threads, replicas = self._cpu_plan(
                info, chosen_model, chosen_compute, core_budget, reasons
            )

        copies = concurrency + 1
        in_ram = LONG_AUDIO_MB * copies
        available = info.memory_available_mb
        use_mmap = available <= 0 or in_ram > MEMORY_MAP_SHARE * available
        share = f"{in_ram / available:.1%}" if available > 0 else "an unknown share"
        reasons["use_memory_mapping"] = (
            f"{'on' if use_mmap else 'off'}: a 2 h input decodes to ~{LONG_AUDIO_MB:.0f} MB; {copies} copies "
            f"(coordinator + {concurrency} worker(s)) would take {share} of {_gb(available)} available RAM "
            f"({'over' if use_mmap else 'within'} {MEMORY_MAP_SHARE:.0%})"
        )

        return OptimizedSettings(
            batch_size=batch_size,
            concurrency=concurrency,
            use_memory_mapping=use_mmap,
            cpu_affinity_cores=cores if cores is not None else [],
            cpu_affinity_strategy=strategy,
            device=chosen_device,
            compute_type=chosen_compute,
            model=chosen_model,
            cpu_threads=cpu_threads,
            replicas=replicas,
            multilingual_model=other_model if other_model != AUTO_MODEL else chosen_model,
            # In field order, so that JSON readers see the reasons as they see the fields.
            reasons={name: reasons[name] for name in _REASON_ORDER if name in reasons},
        )

    @staticmethod
    def _gpu_plan(
        info: HardwareInfo,
        usable: list[int],
        model: str,
        compute_type: str,
        core_budget: int,
        reasons: dict[str, str],
    ) -> tuple[int, int, int]:
        weights = model_memory_mb(model, compute_type, 0)
        per_item = max(1, model_memory_mb(model, compute_type, 1) - weights)
        fitting = [room for room in usable if room >= weights + per_item]
        if not fitting:
            # Only reached when cuda was asked for explicitly; nothing to size from, so stay modest.
            reasons["batch_size"] = f"8: no GPU memory figures to size {model} from"
            reasons["concurrency"] = "1 worker: no GPU with room for the model was detected"
            threads = max(1, min(GPU_WORKER_CPU_THREADS, core_budget))
            reasons["cpu_threads"] = f"{threads}: CPU threads serve only the host side of GPU work"
            return 8, 1, threads
        room = min(fitting)
        batch = max(1, min(GPU_BATCH_CAP, (room - weights) // per_item))
        capped = (room - weights) // per_item > GPU_BATCH_CAP
        reasons["batch_size"] = (
            f"{batch}: {model} ({compute_type}) takes ~{weights} MB plus ~{per_item} MB per item, "
            f"{room} MB usable on the smallest GPU"
            + (f"; capped at {GPU_BATCH_CAP}, beyond which a GPU gains nothing" if capped else "")
        )
        concurrency = len(fitting)
        reasons["concurrency"] = (
            f"{concurrency} worker(s): one per GPU with room for the model"
            + ("" if concurrency == info.gpu_count else f" ({info.gpu_count - concurrency} GPU(s) too full)")
            + "; two models on one GPU would only halve each one's batch"
        )
        threads = max(1, min(GPU_WORKER_CPU_THREADS, core_budget // concurrency))
        reasons["cpu_threads"] = (
            f"{threads} per worker: CTranslate2's CPU threads serve only the host side of GPU work "
            f"({core_budget} bound cores shared by {concurrency} worker(s))"
        )
        return batch, concurrency, threads

    @staticmethod
    def _cpu_plan(
        info: HardwareInfo, model: str, compute_type: str, core_budget: int, reasons: dict[str, str]
    ) -> tuple[int, int, int, int]:
        weights = model_memory_mb(model, compute_type, 0) + WORKER_OVERHEAD_MB
        per_item = max(1, model_memory_mb(model, compute_type, 1) - model_memory_mb(model, compute_type, 0))
        ram_budget = max(0, int(info.memory_available_mb * CPU_RAM_SHARE))

        large = model_footprint(model).weights_mb >= model_footprint("medium").weights_mb
        target_threads = CPU_THREADS_LARGE_MODEL if large else CPU_THREADS_SMALL_MODEL
        workers = max(1, min(CPU_MAX_WORKERS, core_budget // target_threads))
        batch = CPU_BATCH_CAP
        by_cores = workers
        while workers > 1 and workers * (weights + batch * per_item) > ram_budget:
            workers -= 1
        ram_limited_workers = workers < by_cores
        room = ram_budget - weights
        if room < batch * per_item:
            batch = max(1, room // per_item)
        threads = max(1, core_budget // workers)

        reasons["batch_size"] = (
            f"{batch}: on the CPU each item already keeps every thread busy, so {CPU_BATCH_CAP} only amortises "
            f"per-call overhead"
            + (
                f"; limited by RAM ({model} needs ~{weights} MB plus ~{per_item} MB per item, {ram_budget} MB allowed)"
                if batch < CPU_BATCH_CAP
                else f"; {workers} × ~{weights + batch * per_item} MB fits in {ram_budget} MB "
                f"({CPU_RAM_SHARE:.0%} of available RAM)"
            )
        )
        if workers == 1 and not ram_limited_workers:
            why = (
                f"fewer than {2 * target_threads} usable cores, so one worker gets them all "
                f"(splitting would leave each with too few threads)"
            )
        elif ram_limited_workers:
            why = f"RAM allows only {workers} copies of {model} within {ram_budget} MB"
        else:
            why = (
                f"{model} keeps ~{target_threads} threads busy per decode step, so several workers use "
                f"{core_budget} cores better than one wide one (at most {CPU_MAX_WORKERS})"
            )
        reasons["concurrency"] = f"{workers} worker(s) × {threads} threads ≤ {core_budget} usable cores: {why}"
        reasons["cpu_threads"] = (
            f"{threads} CTranslate2 threads per worker: the {core_budget} usable cores split over {workers} worker(s)"
        )
        replicas = auto_replicas("cpu", threads)
        # Each replica holds a batch's activations at once (peak RSS per replica: docs/benchmarks.md).
        need = workers * (weights + replicas * batch * per_item)
        if replicas > 1 and need > ram_budget:
            reasons["replicas"] = (
                f"1: {replicas} batches at once per worker would need ~{need} MB, over {ram_budget} MB"
            )
            replicas = 1
        elif replicas > 1:
            reasons["replicas"] = (
                f"{replicas} per worker, one thread each: with fewer than {SPLIT_THREADS_BELOW} threads a small "
                "model runs batches side by side far better than one batch on every thread (docs/benchmarks.md, "
                "'Model replicas on a small CPU')"
            )
            if batch > CPU_LANE_BATCH:
                batch = CPU_LANE_BATCH
                reasons["batch_size"] = (
                    f"{batch}: {replicas} lanes each pull the next call as they free up, so small calls keep "
                    f"every lane busy to the end (with {CPU_BATCH_CAP}-window calls the last one ran alone on "
                    "one core) and hold fewer windows' activations in memory"
                )
        else:
            reasons["replicas"] = f"1 per worker: {threads} thread(s) serve one batch at a time well"
        return batch, workers, threads, replicas


# --------------------------------------------------------------------------------------------------------------
# Summary and report


def optimize(settings: Settings, hardware: HardwareInfo | None = None) -> OptimizedSettings:
    """The optimizer's plan for ``settings`` on this machine (``hardware`` detected when not given)."""
    info = hardware if hardware is not None else CoreHardwareDetector(settings.jobs.jobs_dir).detect()
    return CoreOptimizer().optimize(
        info,
        device=settings.model.device,
        compute_type=settings.model.compute_type,
        model=settings.model.name,
        cpu_affinity=settings.cluster.cpu_affinity,
    )
