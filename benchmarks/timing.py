"""Timing and subtitle-rule benchmark: word times against forced alignment, cue starts, rule compliance.

Three tables (Markdown on stdout, also ``<out>/timing.md`` and ``<out>/timing.json``):

1. **Word timing** on ``mfa/*.TextGrid`` (every word's true start and end): the median and 90th percentile
   of |start error| and |end error| over the words both sides share (difflib on normalised words), for
   faster-whisper's own ``WhisperModel.transcribe(word_timestamps=True)`` and for ours — Whisper's times
   as our transcription gives them, then after each refinement step of :mod:`pipeline.asr.timing`.
2. **Cue starts inside speech**: the share of cues that start inside a VAD speech span (padding removed),
   built from Whisper's word times and from the refined ones.
3. **Rule compliance** of every cue of every input (the readability rules of ``SubtitleSettings``). Hard: line width, lines, duration, order, no
   overlap. Soft: reading speed and minimum duration; a soft break counts as "no room" when the cue already
   reaches the next cue or the next speech, so the speech left no room to meet the rule.

One :class:`pipeline.jobs.engine.Runner` transcribes every input (tiny.en, cpu, int8, batch 8, language en);
the job folders are kept, so Whisper's unrefined word times are read back from ``segments_results``.

    python benchmarks/timing.py                  # every set
    python benchmarks/timing.py --sets mfa,jfk --out bench-out
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import json
import logging
import re
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import DEFAULT_DATA_DIR, SET_NAMES, Clip, bundled_model_path, load_sets  # noqa: E402

from pipeline.core.settings import SubtitleSettings  # noqa: E402
from pipeline.core.types import Cue, SpeechSpan, TextSegment  # noqa: E402

_TOKEN = re.compile(r'"((?:[^"]|"")*)"|(?<![\w\[])(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w\]])')
_CJK = re.compile("[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")
#: Cues closer than one video frame to a limit count as touching it (s).
FRAME = 0.04

#: The refinement steps measured, each adding to the one before: (label, TimingSettings changes).
STEPS: tuple[tuple[str, dict[str, object]], ...] = (
    ("ours: Whisper's word times (no refinement)", {"enabled": False}),
    ("+ shift 0.09 s earlier", {"clamp": False, "snap_s": 0.0}),
    ("+ clamp out of silences", {"snap_s": 0.0}),
    ("+ snap first word to onset (= ours)", {}),
)


@dataclass(frozen=True)
class TimedWord:
    """A word and its times, from a TextGrid or a transcript."""

    text: str
    start: float
    end: float


def read_textgrid(path: Path, tier: str = "words") -> list[TimedWord]:
    """The non-empty intervals of one interval tier of a Praat TextGrid (short or long text format).

    Args:
        path: The ``.TextGrid`` file.
        tier: The tier's name; the first interval tier when no tier has it.

    Returns:
        The labelled intervals, in order.
    """
    tokens: list[str | float] = []
    for text, number in _TOKEN.findall(Path(path).read_text(encoding="utf-8")):
        tokens.append(float(number) if number else text.replace('""', '"'))
    tiers: dict[str, list[TimedWord]] = {}
    i = 0
    while i < len(tokens):
        if tokens[i] == "IntervalTier":
            name, count = str(tokens[i + 1]), int(tokens[i + 4])  # class, name, xmin, xmax, size
            j = i + 5
            words = []
            for _ in range(count):
                start, end, label = tokens[j], tokens[j + 1], str(tokens[j + 2])
                if label.strip():
                    words.append(TimedWord(label.strip(), float(start), float(end)))
                j += 3
            tiers.setdefault(name, words)
            i = j
        else:
            i += 1
    if not tiers:
        raise ValueError(f"{path}: no interval tier")
    return tiers.get(tier, next(iter(tiers.values())))


def normalise_word(text: str) -> str:
    """Lower case without punctuation ("I'm" and "im" match)."""
    return re.sub(r"[^\w]", "", text.lower())


def word_errors(hyp: Sequence[TimedWord], ref: Sequence[TimedWord]) -> tuple[list[float], list[float]]:
    """Signed start and end errors (hypothesis − reference) of the words both sides share.

    Args:
        hyp: Recognised words with times.
        ref: Reference words with times.

    Returns:
        (start errors, end errors) in seconds, one pair per matched word.
    """
    h = [w for w in hyp if normalise_word(w.text)]
    r = [w for w in ref if normalise_word(w.text)]
    matcher = difflib.SequenceMatcher(
        a=[normalise_word(w.text) for w in h], b=[normalise_word(w.text) for w in r], autojunk=False
    )
    starts, ends = [], []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            starts.append(h[block.a + k].start - r[block.b + k].start)
            ends.append(h[block.a + k].end - r[block.b + k].end)
    return starts, ends


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100), linear between the closest ranks, as numpy's default."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def error_summary(starts: Sequence[float], ends: Sequence[float]) -> dict[str, float]:
    """Median and p90 of |start error| and |end error|, and the median signed start error (bias)."""
    abs_s, abs_e = [abs(x) for x in starts], [abs(x) for x in ends]
    return {
        "words": len(starts),
        "start_median": statistics.median(abs_s),
        "start_p90": percentile(abs_s, 90),
        "end_median": statistics.median(abs_e),
        "end_p90": percentile(abs_e, 90),
        "start_bias": statistics.median(starts),
    }


@dataclass
class RuleCheck:
    """Rule compliance of a set of cues (the readability rules of ``SubtitleSettings``)."""

    cues: int = 0
    hard: dict[str, int] = field(default_factory=lambda: {"width": 0, "lines": 0, "duration": 0, "order": 0})
    soft_cps: int = 0
    soft_min_duration: int = 0
    soft_broken: int = 0
    no_room: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def hard_broken(self) -> int:
        """Cues breaking any hard rule (a cue breaking two counts twice)."""
        return sum(self.hard.values())

    def add(self, other: RuleCheck) -> None:
        """Add another check's counts to this one."""
        self.cues += other.cues
        for k, v in other.hard.items():
            self.hard[k] += v
        self.soft_cps += other.soft_cps
        self.soft_min_duration += other.soft_min_duration
        self.soft_broken += other.soft_broken
        self.no_room += other.no_room
        self.examples += other.examples


def check_cues(cues: Sequence[Cue], settings: SubtitleSettings, speech: Sequence[SpeechSpan] = ()) -> RuleCheck:
    """Check every cue against the hard and soft rules.

    Args:
        cues: The cues, as built.
        settings: The rules.
        speech: The padded VAD spans the cue builder was given: a cue reaching the start of one has no room
            to grow.

    Returns:
        The counts of cues breaking each rule; ``no_room`` counts soft breaks where the cue already
        reaches the next cue, the next speech or the longest duration.
    """
    out = RuleCheck(cues=len(cues))
    onsets = [s.start for s in speech]
    for k, cue in enumerate(cues):
        nxt = cues[k + 1] if k + 1 < len(cues) else None
        duration = cue.end - cue.start
        if any(
            len(line) > (settings.cjk_line_width if _CJK.search(line) else settings.max_line_width)
            for line in cue.lines
        ):
            out.hard["width"] += 1
            out.examples.append(f"width {max(len(line) for line in cue.lines)}: {cue.text!r}")
        if len(cue.lines) > settings.max_lines:
            out.hard["lines"] += 1
        if duration > settings.max_duration + 1e-6:
            out.hard["duration"] += 1
        if duration <= 0 or (nxt is not None and (nxt.start < cue.start or nxt.start < cue.end - 1e-6)):
            out.hard["order"] += 1
        chars = len(" ".join(cue.lines))
        fast = chars / max(duration, 1e-3) > settings.max_cps + 1e-6
        short = duration < settings.min_duration - 1e-6
        out.soft_cps += fast
        out.soft_min_duration += short
        if fast or short:
            out.soft_broken += 1
            touches_next = nxt is not None and nxt.start - cue.end < FRAME
            reaches_speech = any(cue.end - FRAME < t <= cue.end + FRAME for t in onsets)
            longest = duration >= settings.max_duration - FRAME
            if touches_next or reaches_speech or longest:
                out.no_room += 1
            else:
                out.examples.append(f"soft ({chars} chars, {duration:.2f} s) with room: {cue.text!r}")
    return out


def inside(t: float, speech: Sequence[SpeechSpan]) -> bool:
    """Whether time ``t`` lies inside one of the (sorted) spans."""
    return any(s.start <= t <= s.end for s in speech)


@dataclass
class Run:
    """One input through our pipeline: its final transcript, Whisper's raw segments and the VAD spans."""

    clip: Clip
    cues: list[Cue]
    segments: list[TextSegment]
    raw_segments: list[TextSegment]
    spans: list[SpeechSpan]
    speech: list[SpeechSpan]


def run_ours(sets: dict[str, list[Clip]], scratch: Path) -> list[Run]:
    """Transcribe every clip with one Runner, keeping the job folders to read Whisper's own word times."""
    from pipeline.asr.timing import speech_edges
    from pipeline.core.settings import JobSettings, ModelSettings, OutputSettings, Settings, TranscribeSettings
    from pipeline.core.types import Segment
    from pipeline.jobs.engine import Runner
    from pipeline.jobs.store import JobStore

    settings = Settings(
        output=OutputSettings(output_dir=scratch / "timing-out", formats=("srt",)),
        jobs=JobSettings(jobs_dir=scratch / "timing-jobs", keep_checkpoints=True),
        model=ModelSettings(name="tiny.en", device="cpu", compute_type="int8"),
        transcribe=TranscribeSettings(language="en", batch_size=8),
    )
    # A fresh jobs folder: a job left by an earlier run must not be resumed or replayed.
    shutil.rmtree(settings.jobs.jobs_dir, ignore_errors=True)
    runner = Runner(settings)
    store = JobStore(settings.jobs.jobs_dir)
    runs = []
    try:
        for clips in sets.values():
            for clip in clips:
                result = runner.run(clip.path, settings)
                job = store.open(result.job_id)
                plan = [Segment.from_dict(s) for s in job.read_job()["segment_plan"]]
                spans = [span for seg in plan for span in seg.spans]
                results = job.load_results()
                raw = [seg for i in sorted(results) for seg in results[i].segments]
                t = result.transcript
                speech = speech_edges(spans, settings.vad.speech_pad_ms / 1000, t.duration)
                runs.append(Run(clip, t.cues, t.segments, raw, spans, speech))
    finally:
        runner.close()
    return runs


def fw_words(path: Path) -> list[TimedWord]:
    """faster-whisper's own word timestamps: ``WhisperModel.transcribe(word_timestamps=True)``, tiny.en."""
    from faster_whisper import WhisperModel

    model = WhisperModel(str(bundled_model_path()), device="cpu", compute_type="int8")
    segments, _ = model.transcribe(str(path), language="en", word_timestamps=True)
    return [TimedWord(w.word, w.start, w.end) for s in segments for w in s.words or ()]


def words_of(segments: Sequence[TextSegment]) -> list[TimedWord]:
    """The words of text segments with their times."""
    return [TimedWord(w.word, w.start, w.end) for s in segments for w in s.words]


def timing_table(runs: Sequence[Run], data_dir: Path) -> tuple[str, list[dict[str, object]]]:
    """Table 1: word errors on mfa for faster-whisper and each refinement step."""
    from pipeline.asr.timing import refine_words
    from pipeline.core.settings import TimingSettings

    mfa = [r for r in runs if r.clip.set == "mfa"]
    if not mfa:
        return "", []
    refs = {r.clip.path: read_textgrid(r.clip.path.with_suffix(".TextGrid")) for r in mfa}
    rows: list[dict[str, object]] = []

    def add(label: str, hyps: dict[Path, list[TimedWord]]) -> None:
        starts: list[float] = []
        ends: list[float] = []
        per_file = {}
        for path, hyp in hyps.items():
            s, e = word_errors(hyp, refs[path])
            starts += s
            ends += e
            per_file[path.stem] = error_summary(s, e)
        rows.append({"method": label, **error_summary(starts, ends), "files": per_file})

    add("faster-whisper word_timestamps (plain, tiny.en)", {r.clip.path: fw_words(r.clip.path) for r in mfa})
    for label, changes in STEPS:
        ts = dataclasses.replace(TimingSettings(), **changes)
        add(label, {r.clip.path: words_of(refine_words(r.raw_segments, r.speech, ts)) for r in mfa})
    add("ours: final transcript", {r.clip.path: words_of(r.segments) for r in mfa})
    stems = sorted({stem for row in rows for stem in row["files"]})  # type: ignore[union-attr]
    lines = [
        "| method | words | start median | start p90 | end median | end p90 | start bias | "
        + " | ".join(f"{s} start median / p90" for s in stems)
        + " |",
        "|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(stems),
    ]
    for row in rows:
        files = row["files"]
        per = " | ".join(
            f"{files[s]['start_median']:.3f} / {files[s]['start_p90']:.3f}"
            for s in stems  # type: ignore[index]
        )
        lines.append(
            f"| {row['method']} | {row['words']} | {row['start_median']:.3f} | {row['start_p90']:.3f} | "
            f"{row['end_median']:.3f} | {row['end_p90']:.3f} | {row['start_bias']:+.3f} | {per} |"
        )
    return "\n".join(lines), rows


def speech_table(runs: Sequence[Run]) -> tuple[str, list[dict[str, object]]]:
    """Table 2: the share of cue starts inside speech, before and after refinement."""
    from pipeline.asr.timing import refine_words
    from pipeline.core.settings import TimingSettings
    from pipeline.text import cues as subtitles

    settings = SubtitleSettings()
    rows = []
    by_set: dict[str, list[Run]] = {}
    for r in runs:
        by_set.setdefault(r.clip.set, []).append(r)
    for name, group in list(by_set.items()) + [("all", list(runs))]:
        before = after = total_before = total_after = 0
        for r in group:
            raw = refine_words(r.raw_segments, r.speech, TimingSettings(enabled=False))
            raw_cues = subtitles.build_cues(raw, settings, r.spans)
            total_before += len(raw_cues)
            before += sum(inside(c.start, r.speech) for c in raw_cues)
            total_after += len(r.cues)
            after += sum(inside(c.start, r.speech) for c in r.cues)
        rows.append(
            {
                "set": name,
                "cues_before": total_before,
                "inside_before": before / max(total_before, 1),
                "cues": total_after,
                "inside": after / max(total_after, 1),
            }
        )
    lines = [
        "| set | cues (Whisper's times) | starts inside speech | cues (refined) | starts inside speech |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['set']} | {row['cues_before']} | {row['inside_before']:.1%} | {row['cues']} | "
            f"{row['inside']:.1%} |"
        )
    return "\n".join(lines), rows


def rules_table(runs: Sequence[Run]) -> tuple[str, list[dict[str, object]], RuleCheck]:
    """Table 3: hard and soft rule compliance per set and over everything."""
    settings = SubtitleSettings()
    by_set: dict[str, RuleCheck] = {}
    for r in runs:
        by_set.setdefault(r.clip.set, RuleCheck()).add(check_cues(r.cues, settings, r.spans))
    total = RuleCheck()
    for check in by_set.values():
        total.add(check)
    rows = []
    lines = [
        "| set | cues | hard broken | > 20 cps | < 0.8 s | soft broken | of which no room | soft met "
        "| soft met or no room |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in list(by_set.items()) + [("all", total)]:
        met = 1 - c.soft_broken / max(c.cues, 1)
        met_or_forced = 1 - (c.soft_broken - c.no_room) / max(c.cues, 1)
        rows.append(
            {
                "set": name,
                "cues": c.cues,
                "hard": dict(c.hard),
                "cps": c.soft_cps,
                "min_duration": c.soft_min_duration,
                "soft_broken": c.soft_broken,
                "no_room": c.no_room,
                "soft_met": met,
                "soft_met_or_no_room": met_or_forced,
            }
        )
        lines.append(
            f"| {name} | {c.cues} | {c.hard_broken} | {c.soft_cps} | {c.soft_min_duration} | "
            f"{c.soft_broken} | {c.no_room} | {met:.1%} | {met_or_forced:.1%} |"
        )
    return "\n".join(lines), rows, total


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(description="Word and cue timing against forced alignment; subtitle rules.")
    p.add_argument("--sets", default=",".join(SET_NAMES), help=f"comma-separated, from {','.join(SET_NAMES)}")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="scratch and results folder")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA_DIR, help="the test data folder (default: tests/data)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the tables."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
    sets = {k: v for k, v in load_sets(args.data).items() if k in wanted}
    args.out.mkdir(parents=True, exist_ok=True)
    runs = run_ours(sets, args.out)
    timing_md, timing_rows = timing_table(runs, args.data)
    speech_md, speech_rows = speech_table(runs)
    rules_md, rules_rows, total = rules_table(runs)
    parts = []
    if timing_md:
        parts.append("## Word timing on mfa (|error| in seconds, against the TextGrid word times)\n\n" + timing_md)
    parts.append("## Cue starts inside speech (VAD spans, padding removed)\n\n" + speech_md)
    parts.append("## Subtitle rules\n\n" + rules_md)
    if total.examples:
        parts.append(
            "Cues breaking a rule with room to spare, or a hard rule:\n\n"
            + "\n".join(f"- {e}" for e in total.examples[:20])
        )
    text = "\n\n".join(parts) + "\n"
    print(text)
    (args.out / "timing.md").write_text(text, encoding="utf-8")
    (args.out / "timing.json").write_text(
        json.dumps({"timing": timing_rows, "speech": speech_rows, "rules": rules_rows}, indent=2, default=str),
        encoding="utf-8",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
