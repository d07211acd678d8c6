"""Word timing refinement: Whisper's cross-attention word times, corrected with the VAD's speech edges.

No extra model and no audio: the refinement needs only the words and the speech spans VAD already found,
so it costs a few microseconds per word and works the same in process, on a cluster or after a resume.

Whisper (faster-whisper ``word_timestamps``) times words from the decoder's cross-attention. Measured
against the forced-aligned word times of ``tests/data/mfa`` (``benchmarks/timing.py``), its times have
three faults, each corrected by one step here:

1. **Late by a constant.** Starts and ends come out late by about the same amount on every recording.
   Every word is moved earlier by ``shift_s``.
2. **Words in silence.** A window starts a little before its first speech (the VAD padding) and Whisper puts
   the first word at the window's start; a word after a pause often starts in the pause, and a word before
   one runs into it. A word's start inside a silence moves to the speech onset after it, an end inside a
   silence to the speech offset before it.
3. **First word after a pause, late.** The first word after a silence starts at the speech onset when
   Whisper puts it less than ``snap_s`` after it (an untranscribed "um" is usually longer than that).

The errors after each step, and what was tried and not kept (snapping the last word's end to the VAD
offset, word onsets from RMS energy rises, a minimum duration for every word), are in docs/benchmarks.md
("Word timing refinement").
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import replace

from pipeline.core.settings import TimingSettings
from pipeline.core.types import SpeechSpan, TextSegment, Word

#: A token of CJK characters (Han, kana, Hangul, CJK punctuation) and nothing else.
_CJK_WORD = re.compile("[\u3000-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef\U00020000-\U0003ffff]+")
_PUNCT = re.compile("[\u3000-\u303f\uff00-\uff0f\uff1a-\uff20]")

#: A span end this close to the end of the file was clipped there by the padding (seconds).
_EPS = 1e-3


def speech_edges(spans: Sequence[SpeechSpan], pad: float, duration: float | None = None) -> list[SpeechSpan]:
    """The speech itself inside padded VAD spans: the padding taken off where it was added.

    :func:`pipeline.media.vad.pad_spans` pads every span by ``pad`` on both sides, never past the midpoint to a
    neighbour, the start of the file or ``duration``. Spans cut out of one stretch of speech (too long for a
    window) touch and are joined here; a side clipped at the file's start or end keeps its padded edge,
    where the true edge is unknown. Fixed cuts (VAD off) touch each other and cover the file, so they give
    one span and no silence.

    Args:
        spans: Padded speech spans in file time, in order.
        pad: The padding, in seconds (``VadSettings.speech_pad_ms / 1000``).
        duration: Length of the file; None when unknown (the last span is then taken as padded).

    Returns:
        Disjoint speech spans, in order, with silence between consecutive ones.
    """
    merged: list[list[float]] = []
    for span in spans:
        if merged and span.start <= merged[-1][1] + _EPS:
            merged[-1][1] = max(merged[-1][1], span.end)
        else:
            merged.append([span.start, span.end])
    out: list[SpeechSpan] = []
    for start, end in merged:
        if start > _EPS:
            start += pad
        if duration is None or end < duration - _EPS:
            end -= pad
        if end > start:
            out.append(SpeechSpan(round(start, 3), round(end, 3)))
    return out


def refine_words(
    segments: Sequence[TextSegment],
    speech: Sequence[SpeechSpan],
    settings: TimingSettings | None = None,
) -> list[TextSegment]:
    """Refine the word times of ``segments`` with the speech edges (see the module notes).

    Args:
        segments: Whisper's text segments in file time, in order.
        speech: Unpadded speech spans in file time (:func:`speech_edges`); empty skips the VAD steps.
        settings: Which steps to apply; defaults to :class:`TimingSettings`.

    Returns:
        The segments with refined word times; each segment's start and end follow its words. Word times
        stay in order and never end before they start.
    """
    settings = settings or TimingSettings()
    if not settings.enabled:
        return list(segments)
    reach = [w.end for s in segments for w in s.words]
    starts = [w.start - settings.shift_s for s in segments for w in s.words]
    ends = [end - settings.shift_s for end in reach]
    if speech and settings.clamp:
        _clamp(starts, ends, reach, speech, settings.min_word_s)
    if speech and settings.snap_s > 0:
        _snap(starts, ends, speech, settings.snap_s)
    if settings.cjk_char_max_s > 0:
        texts = [w.word.strip() for s in segments for w in s.words]
        for k, text in enumerate(texts):
            if text and _CJK_WORD.fullmatch(text):
                most = settings.cjk_char_max_s * sum(1 for ch in text if not _PUNCT.match(ch))
                if most > 0 and ends[k] - starts[k] > most:
                    starts[k] = ends[k] - most
    out: list[TextSegment] = []
    k, prev_start = 0, 0.0
    for seg in segments:
        words: list[Word] = []
        for w in seg.words:
            start = round(max(starts[k], prev_start, 0.0), 3)
            end = round(max(ends[k], start), 3)
            words.append(replace(w, start=start, end=end))
            prev_start = start
            k += 1
        if words:
            seg = replace(seg, start=words[0].start, end=words[-1].end, words=tuple(words))
        out.append(seg)
    return out


def _clamp(
    starts: list[float], ends: list[float], reach: list[float], speech: Sequence[SpeechSpan], min_word: float
) -> None:
    """Move starts and ends that fall in a silence to the nearest speech edge on the word's side.

    ``reach`` is each word's end before the shift: a word that reached into the speech after a silence
    belongs to it even when the shift moved it wholly into the silence (the first word of a window, which
    Whisper starts at the window's padded start). A word wholly inside a silence even so is left alone:
    VAD drops bursts shorter than ``min_speech_ms``, so a short quiet word may really be there.
    """
    onsets = [s.start for s in speech]
    for k, (start, end) in enumerate(zip(starts, ends)):
        # The span at or before the start; a start past its end (or before the first span) is in silence.
        i = bisect.bisect_right(onsets, start) - 1
        if (i < 0 or start >= speech[i].end) and i + 1 < len(speech) and reach[k] > onsets[i + 1]:
            starts[k] = start = onsets[i + 1]
            ends[k] = end = max(end, start + min_word)
        # The span the end belongs to: the last one starting before it.
        j = bisect.bisect_left(onsets, end) - 1
        if j >= 0 and end > speech[j].end and start < speech[j].end:
            ends[k] = speech[j].end


def _snap(starts: list[float], ends: list[float], speech: Sequence[SpeechSpan], snap: float) -> None:
    """Start the first word after each silence at the speech onset when it starts just after it."""
    k = 0
    for span in speech:
        if span.start <= _EPS:
            continue  # clipped at the file's start: the true onset is unknown
        # The first word still sounding at the onset: words ending before it belong to earlier speech.
        while k < len(starts) and ends[k] <= span.start:
            k += 1
        if k == len(starts):
            return
        if span.start <= starts[k] <= span.start + snap and starts[k] < span.end:
            starts[k] = span.start
