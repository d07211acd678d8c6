"""The ``video2srt`` command: a thin edge that parses flags into Settings, runs jobs, maps errors to exit codes."""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import ClusterError, PipelineError, UsageError
from pipeline.core.settings import AUTO_MODEL, Settings
from pipeline.parse import build_parser, settings_from_args

if TYPE_CHECKING:
    from pipeline.jobs.events import JobEvent

log = logging.getLogger("video2srt")


def _progress_callback(enabled: bool) -> tuple[Callable[[JobEvent], None] | None, Callable[[], object]]:
    """A tqdm bar on stderr per input, when stderr is a terminal."""
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}

    def on_event(event: JobEvent) -> None:
        bar = bars.get(event.job_id)
        if bar is None:
            total = round(event.duration, 1) or None
            bar = bars[event.job_id] = tqdm(
                total=total,
                unit="s",
                desc=Path(event.input).name[:30],
                file=sys.stderr,
                leave=True,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}] {postfix}",
            )
        bar.n = min(round(event.audio_done, 1), bar.total or event.audio_done)
        bar.set_postfix_str(event.stage if event.stage != "running" else f"{event.segments_done} segments")
        if event.stage in ("done", "failed", "cancelled"):
            if bar.total:
                bar.n = bar.total if event.stage == "done" else bar.n
            bar.close()

    return on_event, lambda: [b.close() for b in bars.values()]


def _configure_logging(debug: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not debug:
        # Libraries under us are chatty at INFO; the user sees our own warnings and errors.
        for name in ("faster_whisper", "httpx", "huggingface_hub", "distributed"):
            logging.getLogger(name).setLevel(logging.ERROR)
        # The one INFO line a user wants to see: where the Dask dashboard is.
        logging.getLogger("pipeline.backends.dask").setLevel(logging.INFO)


def _run_each(settings: Settings, items: Sequence[str], run: Callable[..., object]) -> int:
    """Run ``run(runner, item, on_event)`` for each item with one runner (one model load); print the files.

    A failing item prints one ``error:`` line and the others go on; the exit code is 1 if any failed.
    """
    from pipeline.jobs.engine import Runner
    from pipeline.system.memory import share_one_heap_arena, skip_heap_walk_at_exit

    skip_heap_walk_at_exit()
    share_one_heap_arena()  # before the model's lanes start
    runner = Runner(settings)
    on_event, close_bars = _progress_callback(sys.stderr.isatty())
    failures = 0
    try:
        # The model loads (here, or on the cluster's workers as they start) while the first input is decoded.
        runner.start()
        for item in items:
            try:
                result = run(runner, item, on_event)
            except PipelineError as exc:
                if exc.exit_code == 2 or isinstance(exc, ClusterError):
                    raise  # no input can go on without the cluster: one error line, not one per input
                failures += 1
                print(f"error: {exc}", file=sys.stderr)
                if settings.debug:
                    log.exception("details")
                continue
            for out in result.outputs.values():  # type: ignore[attr-defined]
                print(out)
            try:
                for out in _export_videos(settings, result):
                    print(out)
            except PipelineError as exc:
                if exc.exit_code == 2:
                    raise
                failures += 1
                print(f"error: {exc}", file=sys.stderr)
                if settings.debug:
                    log.exception("details")
    finally:
        close_bars()
        runner.close()
    return 1 if failures else 0


def _expire_jobs(settings: Settings) -> None:
    """Remove the unfinished jobs left untouched for longer than ``--expire-days``, saying which."""
    from pipeline.jobs.store import JobStore

    days = settings.jobs.expire_days
    for job_id in JobStore(settings.jobs.jobs_dir).expire(days):
        log.warning("removed job %s: unfinished for more than %g days", job_id, days)


def _export_videos(settings: Settings, result: object) -> list[Path]:
    """``--embed`` and ``--burn`` for one finished job: the video files written beside its subtitles."""
    from pipeline.text.mux import export_video

    kinds = [kind for kind in ("embed", "burn") if getattr(settings.export, kind)]
    if not kinds:
        return []
    input_path: Path = result.input_path  # type: ignore[attr-defined]
    out_dir = settings.output.output_dir or input_path.parent
    written = []
    for kind in kinds:
        on_progress, close = _export_bar(kind, input_path, sys.stderr.isatty())
        try:
            done = export_video(kind, input_path, result.transcript, out_dir, settings.export, on_progress)  # type: ignore[attr-defined]
        finally:
            close()
        if done.note:
            print(f"warning: {done.note}", file=sys.stderr)
        written.append(done.path)
    return written


def _export_bar(
    kind: str, input_path: Path, enabled: bool
) -> tuple[Callable[[float], None] | None, Callable[[], None]]:
    if not enabled:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=100, unit="%", desc=f"{kind} {input_path.name[:24]}", file=sys.stderr, leave=True)

    def on_progress(share: float) -> None:
        bar.n = round(100 * share)
        bar.refresh()

    return on_progress, bar.close


def _list_jobs(settings: Settings) -> int:
    import time

    from pipeline.jobs.store import JobStore

    rows = JobStore(settings.jobs.jobs_dir).summaries()
    if not rows:
        print(f"no jobs in {settings.jobs.jobs_dir}", file=sys.stderr)
        return 0
    print(f"{'JOB ID':26} {'STATE':18} {'SEGMENTS':>9}  {'CREATED':16}  INPUT")
    for j in rows:
        total = "?" if j.segments_total is None else str(j.segments_total)
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(j.created)) if j.created else "?"
        line = f"{j.job_id:26} {j.state:18} {j.segments_done:>4}/{total:<4}  {created:16}  {j.input_name}"
        print(line + (f"  ({j.error})" if j.error and j.state != "done" else ""))
    return 0


def _resume(settings: Settings, job_id: str | None) -> int:
    from pipeline.jobs.store import JobStore

    ids = [job_id] if job_id else [job.id for job in JobStore(settings.jobs.jobs_dir).unfinished()]
    if not ids:
        print(f"no unfinished jobs in {settings.jobs.jobs_dir}", file=sys.stderr)
        return 0
    return _run_each(settings, ids, lambda runner, one, on_event: runner.resume(one, on_event))


def _list_models(settings: Settings) -> int:
    from pipeline.asr.catalogue import catalogue
    from pipeline.optimize.optimizer import optimize

    # The speeds are for the machine as ``auto`` would use it, whatever --model names.
    optimized = optimize(settings.replace(model=dataclasses.replace(settings.model, name=AUTO_MODEL)))
    rows = catalogue(optimized.device, optimized.cpu_threads)
    print(f"{'MODEL':18} {'LANGUAGES':13} {'SIZE':>9}  {'PRESENT':8} {'SOURCE':9} {'SPEED':>10}  NOTE")
    for m in rows:
        size = f"{m.size_mb:.0f} MB" if m.size_mb is not None else "?"
        speed = f"RTF ~{m.rtf:.2g}" if m.rtf is not None else "?"
        print(
            f"{m.name:18} {m.languages:13} {size:>9}  {'yes' if m.present else 'no':8} {m.source:9} {speed:>10}  {m.note}"
        )
    print(
        f"speed: a rough real-time factor (seconds of work per second of audio) on {optimized.device} with "
        f"{optimized.cpu_threads} thread(s): tiny.en measured on a 2-core CPU, scaled by each model's size "
        "(pipeline/asr/catalogue.py estimate_rtf)",
        file=sys.stderr,
    )
    return 0


def _download_model(name: str) -> int:
    from pipeline.asr.catalogue import download

    print(download(name))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``video2srt``; returns the exit code (0 ok, 1 processing failure, 2 usage error)."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    _configure_logging(ns.debug)
    try:
        settings = settings_from_args(ns)
        if ns.hardware:
            from pipeline.optimize.report import hardware_report

            print(json.dumps(hardware_report(settings.jobs.jobs_dir), indent=2))
            return 0
        if ns.list_jobs:
            return _list_jobs(settings)
        if ns.list_models:
            return _list_models(settings)
        if ns.download_model:
            return _download_model(ns.download_model.strip())
        if ns.resume or ns.resume_all:
            if ns.inputs:
                raise UsageError("--resume and --resume-all take no input files")
            _expire_jobs(settings)
            return _resume(settings, ns.resume)
        if not ns.inputs:
            parser.print_usage(sys.stderr)
            raise UsageError("give at least one input file (or --hardware)")
        _expire_jobs(settings)
        return _run_each(settings, ns.inputs, lambda runner, raw, on_event: runner.run(Path(raw), settings, on_event))
    except UsageError as exc:
        print(f"video2srt: error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if ns.debug:
            log.exception("details")
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
