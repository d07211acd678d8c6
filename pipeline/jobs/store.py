"""Job folders: the only code that reads or writes ``<jobs dir>/<job id>/``.

Layout: ``job.json`` (input name and sha256, settings and their fingerprint, segment plan,
format version, created), ``checkpoint.json`` (state, segments total/done, history),
``segments_results/<index>.json`` (one per finished segment, with a checksum), ``audio.wav`` (16 kHz mono
PCM16) and ``output/``. Every write is atomic: temp file, fsync, rename, fsync the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.core.errors import CheckpointError
from pipeline.core.settings import Settings
from pipeline.core.states import JobState
from pipeline.core.types import Segment, SegmentResult
from pipeline.jobs.files import (
    WavWriter,
    atomic_write_many,
    atomic_write_text,
    fingerprint,
    fsync_dir,
    read_json,
    write_json,
)
from pipeline.jobs.fingerprint import PLAN_PARTS, changes, segment_values

FORMAT_VERSION = 1
JOB_ID_RE = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$")
STATES = tuple(state.value for state in JobState)


def new_job_id() -> str:
    """A fresh job id: UTC time plus random hex; never derived from a file name."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it has the generated form, else raise (guards every route and path join).

    Raises:
        CheckpointError: Not a job id.
    """
    if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
        raise CheckpointError(f"{job_id!r} is not a job id (expected the form 20260101-120000-1a2b3c4d)")
    return job_id


@dataclass
class Job:
    """One job folder."""

    id: str
    dir: Path
    #: The fingerprint of what this run's segment results depend on (set by :meth:`match_settings`): results
    #: are stamped with it, and results stamped otherwise are not used.
    results_fingerprint: str | None = field(default=None, compare=False)

    @property
    def audio_path(self) -> Path:
        return self.dir / "audio.wav"

    @property
    def results_dir(self) -> Path:
        return self.dir / "segments_results"

    @property
    def output_dir(self) -> Path:
        return self.dir / "output"

    # job.json -------------------------------------------------------------------------------------
    def read_job(self) -> dict[str, Any]:
        data = read_json(self.dir / "job.json")
        if data.get("format_version") != FORMAT_VERSION:
            raise CheckpointError(
                f"job {self.id}: folder format {data.get('format_version')!r} is not {FORMAT_VERSION}; "
                "it was made by another version of video2srt — run it again from the input"
            )
        return data

    def settings(self) -> Settings:
        """The settings the job was created with (its ``job.json``)."""
        return Settings.from_dict(self.read_job().get("settings") or {}, jobs_dir=self.dir.parent)

    def update_job(self, **fields: Any) -> None:
        data = self.read_job()
        data.update(fields)
        write_json(self.dir / "job.json", data)

    def save_plan(self, segments: list[Segment]) -> None:
        """Record the exact cuts, so a resume cuts the same way."""
        self.update_job(segment_plan=[s.to_dict() for s in segments])

    def match_settings(self, values: dict[str, Any]) -> str | None:
        """Adopt fingerprint ``values`` (:func:`pipeline.jobs.fingerprint.fingerprint_of`) for this run.

        Finished segments made under other values (other settings, model files or code; or by a video2srt
        from before results were stamped) are set aside, to be transcribed again, so a job never mixes
        results of two settings or two versions; a changed audio or VAD part also drops the segment plan.

        Returns:
            One line saying what was set aside and why, or None when every finished segment still holds.
        """
        data = self.read_job()
        stamp = fingerprint(segment_values(values))
        old = data.get("fingerprint_values")
        stale = [path for path, fp in self._result_stamps() if fp != stamp]
        note = None
        if stale:
            count = f"{len(stale)} finished segment(s) are transcribed again"
            if not isinstance(old, dict):
                note = f"job {self.id} was made by an older version of video2srt: {count}"
            else:
                what = changes(segment_values(old), segment_values(values))
                why = ", ".join(what[:3]) + (f" and {len(what) - 3} more" if len(what) > 3 else "")
                note = f"job {self.id}: {why or 'its settings'} changed since its segments were made: {count}"
            for path in stale:
                path.unlink(missing_ok=True)
        fields: dict[str, Any] = {
            "settings_fingerprint": fingerprint(values),
            "fingerprint_values": values,
            "results_fingerprint": stamp,
        }
        if isinstance(old, dict) and any(old.get(k) != values.get(k) for k in PLAN_PARTS):
            fields["segment_plan"] = None
        self.update_job(**fields)
        self.results_fingerprint = stamp
        return note

    def _result_stamps(self) -> list[tuple[Path, str | None]]:
        out: list[tuple[Path, str | None]] = []
        for path in sorted(self.results_dir.glob("*.json")) if self.results_dir.is_dir() else []:
            try:
                out.append((path, json.loads(path.read_text(encoding="utf-8")).get("fingerprint")))
            except (OSError, ValueError, AttributeError):
                out.append((path, None))
        return out

    # checkpoint.json ------------------------------------------------------------------------------
    def read_checkpoint(self) -> dict[str, Any]:
        return read_json(self.dir / "checkpoint.json")

    def update_checkpoint(self, **fields: Any) -> dict[str, Any]:
        try:
            data = self.read_checkpoint()
        except CheckpointError:
            data = {}
        data.update(fields)
        data["updated"] = time.time()
        write_json(self.dir / "checkpoint.json", data)
        return data

    def append_history(self, entries: list[dict[str, Any]]) -> None:
        """Add retry/failure records to ``checkpoint.json``'s history."""
        data = self.read_checkpoint()
        self.update_checkpoint(history=list(data.get("history") or []) + entries)

    def summary(self) -> JobSummary:
        try:
            job = read_json(self.dir / "job.json")
            cp = self.read_checkpoint()
        except CheckpointError as exc:
            # A job killed while its folder was being set up has no times of its own: the folder's age is its age
            # (with 0 it would count as decades old and be expired by the next start).
            touched = self._touched()
            return JobSummary(self.id, "?", "corrupt", 0, None, touched, touched, str(exc))
        return JobSummary(
            job_id=self.id,
            input_name=str(job.get("input_name", "?")),
            state=str(cp.get("state", "?")),
            segments_done=int(cp.get("segments_done") or 0),
            segments_total=cp.get("segments_total"),
            created=float(job.get("created") or 0.0),
            updated=float(cp.get("updated") or job.get("created") or self._touched()),
            error=str(cp.get("error") or ""),
            model=cp.get("model_name"),
            model_reason=cp.get("model_reason"),
            language=cp.get("language"),
            language_probability=cp.get("language_probability"),
            language_warning=cp.get("language_warning"),
        )

    def _touched(self) -> float:
        try:
            return self.dir.stat().st_mtime
        except OSError:
            return 0.0

    # segment results ------------------------------------------------------------------------------
    def save_result(self, result: SegmentResult) -> None:
        body = result.to_dict()
        payload = json.dumps(body, ensure_ascii=False, sort_keys=True)
        record = {"checksum": hashlib.sha256(payload.encode()).hexdigest(), "result": body}
        if self.results_fingerprint is not None:
            record["fingerprint"] = self.results_fingerprint
        atomic_write_text(self.results_dir / f"{result.index:05d}.json", json.dumps(record, ensure_ascii=False))

    def load_results(self) -> dict[int, SegmentResult]:
        """Every stored result whose checksum holds; corrupt ones are ignored (and recomputed)."""
        out: dict[int, SegmentResult] = {}
        if not self.results_dir.is_dir():
            return out
        for path in sorted(self.results_dir.glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
                payload = json.dumps(record["result"], ensure_ascii=False, sort_keys=True)
                if hashlib.sha256(payload.encode()).hexdigest() != record["checksum"]:
                    continue
                if self.results_fingerprint is not None and record.get("fingerprint") != self.results_fingerprint:
                    continue  # made under other settings or code (match_settings sets these aside)
                result = SegmentResult.from_dict(record["result"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            out[result.index] = result
        return out

    # audio and outputs ----------------------------------------------------------------------------
    def audio_writer(self, sample_rate: int) -> WavWriter:
        return WavWriter(self.audio_path, sample_rate)

    def write_output(self, name: str, text: str) -> Path:
        path = self.output_dir / name
        atomic_write_text(path, text)
        return path

    def adopt_input(self) -> Path:
        """Move the job's input file into its folder (``input.<ext>``) and point ``job.json`` at it.

        For inputs the app received as uploads: the job then owns its media (review plays it, exports read
        it) and it goes with the job. A rename, so the input must be on the same file system.

        Raises:
            OSError: The input cannot be moved.
        """
        meta = self.read_job()
        source = Path(meta["input_path"])
        target = self.dir / f"input{source.suffix.lower()[:10]}"
        if source != target:
            os.replace(source, target)
            fsync_dir(self.dir)
            self.update_job(input_path=str(target))
        return target

    # review: edited cues, originals and exports ----------------------------------------------------
    def read_transcript(self) -> dict[str, Any]:
        """The finished job's transcript (``output/result.json``: segments, words, cues), edits included.

        Raises:
            CheckpointError: The job has no transcript (not done) or it is unreadable.
        """
        return read_json(self.output_dir / "result.json")

    def edited(self) -> bool:
        """Whether the cues were edited (the originals are kept as ``output/original.<ext>``)."""
        return (self.output_dir / "original.json").exists()

    def result_formats(self) -> list[str]:
        """The subtitle formats the job folder holds as ``output/result.<fmt>``."""
        return [fmt for fmt in EDITABLE_FORMATS if (self.output_dir / f"result.{fmt}").exists()]

    def save_edit(self, files: dict[str, str]) -> None:
        """Replace the job's subtitle outputs with edited ones (``{"srt": text, ...}``).

        On the first edit every ``result.<ext>`` is kept as ``original.<ext>``. All new files are written
        (and synced) under temp names before any is renamed into place, so a failure (a full disk) leaves
        the old set whole. Video exports made from the old cues are removed: they no longer match.
        """
        if not self.edited():
            originals = {}
            for fmt in self.result_formats():
                originals[self.output_dir / f"original.{fmt}"] = (self.output_dir / f"result.{fmt}").read_bytes()
            json_first = sorted(originals.items(), key=lambda kv: kv[0].name == "original.json")
            atomic_write_many(dict(json_first))  # original.json last: it marks the job as edited
        atomic_write_many({self.output_dir / f"result.{fmt}": text.encode("utf-8") for fmt, text in files.items()})
        self.remove_exports()

    def restore_original(self) -> bool:
        """Put the original outputs back and forget the edit; False when there was no edit."""
        if not self.edited():
            return False
        originals = {
            self.output_dir / f"result.{fmt}": (self.output_dir / f"original.{fmt}").read_bytes()
            for fmt in EDITABLE_FORMATS
            if (self.output_dir / f"original.{fmt}").exists()
        }
        atomic_write_many(originals)
        (self.output_dir / "original.json").unlink(missing_ok=True)
        for fmt in EDITABLE_FORMATS:
            (self.output_dir / f"original.{fmt}").unlink(missing_ok=True)
        self.remove_exports()
        return True

    def export_path(self, name: str) -> Path:
        """Where the job keeps the export ``name`` (one of :data:`EXPORT_NAMES`).

        Raises:
            CheckpointError: Not an export name.
        """
        if name not in EXPORT_NAMES:
            raise CheckpointError(f"{name!r} is not an export of a job: use one of {', '.join(EXPORT_NAMES)}")
        return self.output_dir / name

    def exports(self) -> dict[str, Path]:
        """The exports the job folder holds, by name."""
        return {name: self.output_dir / name for name in EXPORT_NAMES if (self.output_dir / name).exists()}

    def remove_exports(self) -> None:
        for path in self.exports().values():
            path.unlink(missing_ok=True)

    def cleanup_intermediates(self) -> None:
        """Remove what a finished job no longer needs: ``audio.wav`` and ``segments_results/``."""
        self.audio_path.unlink(missing_ok=True)
        shutil.rmtree(self.results_dir, ignore_errors=True)


class JobStore:
    """The jobs folder: creates, opens and lists jobs."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def create(
        self, input_path: Path, input_sha256: str, settings: dict[str, Any], fingerprint_of: dict[str, Any]
    ) -> Job:
        """A new job folder for ``input_path``, in state ``queued``.

        Args:
            input_path: The original input (referenced, not copied: a resume re-reads it only when the
                job's own audio.wav is incomplete).
            input_sha256: Its hash, checked before a resume trusts anything.
            settings: The job's full settings, as JSON values.
            fingerprint_of: The settings that change results; their hash must match on resume.
        """
        job_id = new_job_id()
        job = Job(job_id, self.root / job_id)
        try:
            job.dir.mkdir(parents=True)
            job.results_dir.mkdir()
        except OSError as exc:
            raise CheckpointError(f"cannot create job folder in {self.root}: {exc.strerror or exc}") from exc
        write_json(
            job.dir / "job.json",
            {
                "format_version": FORMAT_VERSION,
                "job_id": job_id,
                "input_name": input_path.name,
                "input_path": str(input_path.resolve()),
                "input_sha256": input_sha256,
                "settings": settings,
                "settings_fingerprint": fingerprint(fingerprint_of),
                "fingerprint_values": fingerprint_of,
                "results_fingerprint": fingerprint(segment_values(fingerprint_of)),
                "segment_plan": None,
                "created": time.time(),
            },
        )
        job.update_checkpoint(state=JobState.QUEUED, segments_total=None, segments_done=0, history=[])
        return job

    def open(self, job_id: str) -> Job:
        job = Job(validate_job_id(job_id), self.root / job_id)
        if not (job.dir / "job.json").exists():
            raise CheckpointError(f"no job {job_id} in {self.root}; list jobs with --list-jobs")
        return job

    def jobs(self) -> Iterator[Job]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.iterdir()):
            if JOB_ID_RE.match(path.name) and (path / "job.json").exists():
                yield Job(path.name, path)

    def summaries(self) -> list[JobSummary]:
        """Every job with its state, unfinished ones first, newest first within each group."""
        out = [job.summary() for job in self.jobs()]
        return sorted(out, key=lambda j: (j.state in FINISHED_STATES, -j.created))

    def unfinished(self) -> list[Job]:
        """Jobs a crash, a kill or a failure left behind (not done, not cancelled), oldest first."""
        return [job for job in self.jobs() if job.summary().state not in (*FINISHED_STATES, JobState.CANCELLED)]

    def delete(self, job_id: str) -> None:
        job = self.open(job_id)
        shutil.rmtree(job.dir, ignore_errors=True)

    def expire(self, max_age_days: float, now: float | None = None, keep: Collection[str] = ()) -> list[str]:
        """Remove unfinished jobs untouched for ``max_age_days``, except those in ``keep`` (jobs a service holds);
        return their ids. 0 keeps everything."""
        if max_age_days <= 0:
            return []
        now = time.time() if now is None else now
        removed = []
        for job in self.jobs():
            if job.id in keep:
                continue
            summary = job.summary()
            if summary.state != JobState.DONE and now - summary.updated > max_age_days * 86400:
                shutil.rmtree(job.dir, ignore_errors=True)
                removed.append(job.id)
        return removed


FINISHED_STATES = (JobState.DONE.value,)
#: Subtitle outputs an edit rewrites.
EDITABLE_FORMATS = ("srt", "vtt", "json", "ass")
#: Video exports a job folder can hold (``output/<name>``), as the API serves them.
EXPORT_NAMES = ("result.subtitled.mkv", "result.subtitled.mp4", "result.subtitled.mka", "result.burned.mp4")


@dataclass(frozen=True)
class JobSummary:
    """One line of ``--list-jobs``."""

    job_id: str
    input_name: str
    state: str
    segments_done: int
    segments_total: int | None
    created: float
    updated: float
    error: str = ""
    #: The model the job runs on and why (``auto`` picks per language), once decided.
    model: str | None = None
    model_reason: str | None = None
    #: The language (given, or detected with its probability; a warning when unsure or no speech).
    language: str | None = None
    language_probability: float | None = None
    language_warning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class VadCache:
    """Segment plans by (audio hash, VAD settings), so the same file is never run through VAD twice.

    Kept in ``<jobs dir>/vad_cache/<key>.json``; a corrupt or foreign entry is ignored.
    """

    def __init__(self, jobs_dir: Path) -> None:
        self.root = Path(jobs_dir) / "vad_cache"

    @staticmethod
    def key(input_sha256: str, audio: dict[str, Any], vad: dict[str, Any]) -> str:
        return fingerprint({"input": input_sha256, "audio": audio, "vad": vad, "v": FORMAT_VERSION})

    def get(self, key: str) -> list[Segment] | None:
        path = self.root / f"{key}.json"
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("key") != key:
                return None
            return [Segment.from_dict(s) for s in data["segments"]]
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, segments: list[Segment]) -> None:
        try:
            write_json(self.root / f"{key}.json", {"key": key, "segments": [s.to_dict() for s in segments]})
        except OSError:
            pass  # a cache that cannot be written only costs speed next time
