"""Language detection: the language of a few windows of speech, their probabilities averaged."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.asr.inputs import to_float
from pipeline.asr.models import LoadedModel, ModelRunner
from pipeline.core.constants import SAMPLE_RATE
from pipeline.core.settings import ModelSettings


@dataclass(frozen=True)
class LanguageGuess:
    """The language of some speech, its probability, and how many windows it was decided on (0: no speech)."""

    language: str | None
    probability: float
    windows: int
    #: Each language's probability summed over the windows (the best few), to combine guesses.
    totals: tuple[tuple[str, float], ...] = ()

    #: Below this, the guess is reported as unsure (log, JSON, UI).
    UNSURE = 0.5

    def combine(self, other: LanguageGuess) -> LanguageGuess:
        """The guess over both sets of windows: probability vectors averaged over all windows."""
        if not other.windows:
            return self
        if not self.windows:
            return other
        sums: dict[str, float] = dict(self.totals)
        for language, p in other.totals:
            sums[language] = sums.get(language, 0.0) + p
        return _guess(sums, self.windows + other.windows)

    @property
    def warning(self) -> str | None:
        """One line when the guess should not be trusted blindly; None when it is sure."""
        if self.language is None:
            return "no speech found: no language detected"
        if self.probability < self.UNSURE:
            return (
                f"language detection is unsure: {self.language} with probability {self.probability:.2f}; "
                "pass --language if it is wrong"
            )
        return None


def detect_language(model: LoadedModel, windows: np.ndarray | Sequence[np.ndarray]) -> LanguageGuess:
    """The language of up to a few windows of speech (each up to 30 s), their probabilities averaged.

    Each window gets its own pass of the encoder; the per-language probability vectors are averaged and the
    most probable language wins. English-only models answer ``en`` with probability 1.

    Args:
        model: A loaded model.
        windows: One window's samples, or several (int16 or float32; int16 is scaled to [-1, 1] first).
    """
    items = [windows] if isinstance(windows, np.ndarray) else list(windows)
    items = [w[: 30 * SAMPLE_RATE] for w in items if w.size >= SAMPLE_RATE // 10]
    if not items:
        return LanguageGuess(None, 0.0, 0)
    if not model.multilingual:
        return LanguageGuess("en", 1.0, len(items))
    totals: dict[str, float] = {}
    for samples in items:
        _, _, probabilities = model.model.detect_language(audio=to_float(samples), language_detection_segments=1)
        for language, p in probabilities:
            totals[language] = totals.get(language, 0.0) + float(p)
    return _guess(totals, len(items))


def _guess(totals: dict[str, float], windows: int) -> LanguageGuess:
    best = sorted(totals.items(), key=lambda kv: -kv[1])[:8]
    return LanguageGuess(best[0][0], round(best[0][1] / windows, 4), windows, tuple(best))


def detect_with(models: ModelRunner, windows: Sequence[np.ndarray], model: ModelSettings) -> LanguageGuess:
    """The language of ``windows`` with ``models``' model for ``model``, on one of its inference lanes."""
    return models.infer(model, lambda loaded: detect_language(loaded, windows)).result()
