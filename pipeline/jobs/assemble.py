"""From a job's segment results to its transcript and files: lines repeated across windows dropped, word
times refined with the speech edges, optional alignment, CJK words and script, cues, and the outputs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.asr.guard import drop_repeated_lines
from pipeline.asr.models import placement_for
from pipeline.asr.timing import refine_words, speech_edges
from pipeline.core.errors import PipelineError
from pipeline.core.settings import Settings
from pipeline.core.types import Cue, SegmentResult, SpeechSpan, TextSegment, Transcript
from pipeline.jobs.feed import Produced
from pipeline.jobs.files import atomic_write_text
from pipeline.jobs.store import Job
from pipeline.media import decode as audio_mod
from pipeline.text import cjk, writers
from pipeline.text import cues as subtitles
from pipeline.text.cue_edit import transcript_from_dict, with_cues
from pipeline.text.mux import probe_media

log = logging.getLogger(__name__)


@dataclass
class Assembled:
    """The transcript's parts before it is made: its text segments, cues, translation and notes."""

    segments: list[TextSegment]
    cues: list[Cue]
    language: str | None
    translation: Transcript | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def assemble(
    job: Job,
    source: Path,
    results: dict[int, SegmentResult],
    s: Settings,
    produced: Produced,
    language: str | None,
    model_name: str,
    input_name: str,
) -> Assembled:
    """The transcript's segments and cues (and the translation's) from the results, in segment order.

    ``language`` is the spoken language (None: no speech and none forced); the written one is English when
    the task translates.
    """
    text_segments = _clean(results, "segments", s)
    speech = speech_edges(produced.spans, s.vad.speech_pad_ms / 1000, produced.audio_seconds)
    text_segments = refine_words(text_segments, speech, s.timing)
    task = s.transcribe.task
    written = "en" if task == "translate" else language
    if s.transcribe.align != "off" and text_segments:
        text_segments = align(job, source, text_segments, written or "en", s)
    extra: dict[str, Any] = {}
    script, note = cjk.script_for(s.subtitles.chinese, written)
    if note:
        log.warning("%s: %s", input_name, note)
        extra["chinese_note"] = note
    if cjk.is_chinese(written):
        # Tokens joined into words and the script converted before cues: lines break between words only,
        # and their lengths are the lengths shown.
        text_segments = cjk.prepare(text_segments, script)
        extra["chinese"] = script or "keep"
    cues = subtitles.build_cues(text_segments, s.subtitles, produced.spans)
    translation = None
    if s.transcribe.translate and task == "transcribe":
        translation = translate(results, speech, s, produced, model_name, written)
    return Assembled(text_segments, cues, written, translation, extra)


def _clean(results: dict[int, SegmentResult], part: str, s: Settings) -> list[TextSegment]:
    """The results' segments (or translation) in order, without lines repeated across windows (each window
    already removed its own)."""
    segments = [seg for i in sorted(results) for seg in getattr(results[i], part)]
    return [seg for seg in drop_repeated_lines(segments, s.guard)[0] if seg is not None]


def translate(
    results: dict[int, SegmentResult],
    speech: list[SpeechSpan],
    s: Settings,
    produced: Produced,
    model_name: str,
    language: str | None,
) -> Transcript | None:
    """The English translation decoded beside the transcription, as a transcript of its own."""
    if language in (None, "en"):
        log.warning("--translate: the speech is English already (or there is none); no translation written")
        return None
    segments = refine_words(_clean(results, "translation", s), speech, s.timing)
    cues = subtitles.build_cues(segments, s.subtitles, produced.spans)
    return Transcript(
        language="en",
        duration=round(produced.audio_seconds, 3),
        model=model_name,
        segments=segments,
        cues=cues,
        task="translate",
    )


def align(job: Job, source: Path, segments: list[TextSegment], language: str, s: Settings) -> list[TextSegment]:
    """Optional WhisperX alignment (``--align``); its note goes to the log, the transcript is never lost."""
    from pipeline.asr.align import align_segments, find_model

    name, note = find_model(language, s.transcribe.align)
    if name is None:
        (log.info if s.transcribe.align == "auto" else log.warning)("%s", note)
        return segments
    wav = job.audio_path if job.audio_path.exists() else source
    with audio_mod.MemoryMappedAudio(wav) as audio:
        samples = audio.read(0.0, None)
    aligned, note = align_segments(segments, samples, language, name, placement_for(s.model).device)
    job.update_checkpoint(alignment=note)
    return aligned


def write_partial(
    job: Job, results: dict[int, SegmentResult], s: Settings, spans: list[SpeechSpan], language: str | None = None
) -> None:
    """The partial SRT: the cues of the finished prefix of segments."""
    prefix: list[TextSegment] = []
    i = 0
    while i in results:
        prefix.extend(results[i].segments)
        i += 1
    if s.transcribe.task == "transcribe" and cjk.is_chinese(language):
        prefix = cjk.prepare(prefix, cjk.script_for(s.subtitles.chinese, language)[0])
    cues = subtitles.build_cues(prefix, s.subtitles, spans)
    partial = Transcript("", 0.0, "", prefix, cues)
    job.write_output("partial.srt", writers.render(partial, "srt"))


def write_outputs(
    job: Job, input_path: Path, transcript: Transcript, s: Settings, translation: Transcript | None = None
) -> dict[str, Path]:
    """Write the result files; returns them by key: ``srt`` ..., ``en.srt`` ... (translation) and
    ``bilingual.srt`` ... (original above English).

    File names are ``<stem>.<fmt>``, or ``<stem>.<lang>.<fmt>`` with the language named
    (``OutputSettings.name_language``; by default when a translation is written); the bilingual file is
    ``<stem>.<lang>-en.<fmt>``.
    """
    out_dir = s.output.output_dir or input_path.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PipelineError(f"cannot create output folder {out_dir}: {exc.strerror or exc}") from exc
    several = translation is not None
    named = s.output.name_language if s.output.name_language is not None else several
    stem = f"{input_path.stem}.{transcript.language}" if named and transcript.language else input_path.stem
    if job.edited():
        # A resume of a reviewed job never undoes the review: the edited cues are what gets written.
        transcript = with_cues(transcript, transcript_from_dict(job.read_transcript()).cues)
    video_size = None
    if "ass" in s.output.formats:
        try:
            info = probe_media(input_path)
            video_size = (info.width, info.height) if info.has_video else None
        except PipelineError:
            video_size = None  # the input is gone (a resume from audio.wav): a 16:9 canvas
    files: list[tuple[str, str, str, Path | None]] = []  # (key, job file, text, target or None)
    # The job folder always keeps the JSON: the transcript with its words, which review edits start from.
    for fmt in (*s.output.formats, *(() if "json" in s.output.formats else ("json",))):
        target = out_dir / f"{stem}.{fmt}" if fmt in s.output.formats else None
        files.append((fmt, f"result.{fmt}", writers.render(transcript, fmt, s.export, video_size), target))
    if translation is not None:
        en_stem = f"{input_path.stem}.en"
        for fmt in s.output.formats:
            text = writers.render(translation, fmt, s.export, video_size)
            files.append((f"en.{fmt}", f"result.en.{fmt}", text, out_dir / f"{en_stem}.{fmt}"))
        if s.output.bilingual:
            both = subtitles.bilingual(transcript, translation, s.subtitles)
            for fmt in s.output.formats:
                if fmt == "json":
                    continue  # the two JSON files hold both texts with their times
                target = out_dir / f"{input_path.stem}.{transcript.language}-en.{fmt}"
                text = writers.render(both, fmt, s.export, video_size)
                files.append((f"bilingual.{fmt}", f"result.bilingual.{fmt}", text, target))
    outputs: dict[str, Path] = {}
    for key, name, text, target in files:
        job.write_output(name, text)
        if target is None:
            continue
        try:
            atomic_write_text(target, text)
        except OSError as exc:
            raise PipelineError(f"cannot write {target}: {exc.strerror or exc}; check the folder") from exc
        outputs[key] = target
    (job.output_dir / "partial.srt").unlink(missing_ok=True)
    return outputs


def call_figures(calls: list[dict[str, Any]], lanes: bool = True) -> dict[str, float]:
    """Totals over a job's Whisper calls, for its ``timings``.

    ``windows``, ``audio_fed_s`` (the windows' own audio), ``padded_s`` (what the encoder sees: 30 s a
    window), ``infer_s`` (wall time of the calls, summed over lanes), ``guard_redecodes`` and ``guard_s``,
    ``calls``, and when the calls ran on lanes in this process, ``lanes`` and ``lane_tail_s``: how long the
    last lane ran on after the first one had finished its last call (0 when the lanes end together).
    ``lanes`` false (calls on cluster workers, whose clocks differ) leaves those two out.
    """
    out: dict[str, float] = {}
    for key in ("windows", "calls", "guard_redecodes", "coverage_redecodes"):
        out[key] = int(sum(c.get(key, 0) for c in calls))
    for key in ("audio_fed_s", "padded_s", "infer_s", "guard_s"):
        out[key] = round(sum(float(c.get(key, 0.0)) for c in calls), 3)
    ends: dict[str, float] = {}
    for c in calls if lanes else ():
        if "lane" in c:
            ends[c["lane"]] = max(ends.get(c["lane"], 0.0), float(c["ended"]))
    if ends:
        out["lanes"] = len(ends)
        out["lane_tail_s"] = round(max(ends.values()) - min(ends.values()), 3)
    return out
