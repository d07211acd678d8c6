"""Language detection accuracy of the multilingual base (what ``--model auto`` detects with), per language.

Every clip of the shared test data with a known language: FLEURS English, German and Spanish (10 each), the
three Mandarin recordings, and jfk, LJ Speech and the Harvard sentences (English). Each clip goes through
:func:`pipeline.asr.detect.detect_language` as the runner uses it: int16 samples scaled to [-1, 1], one
encoder pass per 30-s window, up to three windows spread over the clip, probabilities averaged.

    python benchmarks/detect_languages.py --detect [--model base] [--data tests/data]

Prints one row per language (right/total, mean and lowest probability, seconds per detection) and the
clips it got wrong.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.asr.detect import detect_language  # noqa: E402
from pipeline.asr.models import load, placement_for, resolve  # noqa: E402
from pipeline.core.settings import AudioSettings, ModelSettings  # noqa: E402
from pipeline.jobs.plan import DETECT_WINDOWS, spread  # noqa: E402
from pipeline.lab.evaluation import LANGUAGES, language_clips  # noqa: E402
from pipeline.media.decode import decode  # noqa: E402

WINDOW = 30 * 16000


def clips(data: Path) -> list[tuple[Path, str]]:
    """Every clip with a known language, as (path, code)."""
    out = [(p, "en") for p in sorted((data / "fleurs_en").glob("*.ogg"))]
    out += [(clip.path, code) for code in LANGUAGES for clip in language_clips(code, data)]
    out += [(data / "jfk" / "jfk.wav", "en"), (data / "ljspeech" / "LJ001-0001.wav", "en")]
    out += [(p, "en") for p in sorted((data / "harvard").glob("*.mp3"))]
    return [(p, code) for p, code in out if p.exists()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detect", action="store_true", help="measure detection accuracy (the only mode)")
    parser.add_argument("--model", default="base", help="the detecting model (default: the packaged base)")
    parser.add_argument("--data", type=Path, default=REPO / "tests" / "data")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    settings = ModelSettings(name=args.model, device="cpu", compute_type="int8", cpu_threads=args.threads)
    model = load(resolve(settings), placement_for(settings))
    rows: dict[str, list[tuple[str, str | None, float, float]]] = {}
    for path, expected in clips(args.data):
        samples = np.concatenate(list(decode(path, AudioSettings())))
        windows = [samples[i : i + WINDOW] for i in range(0, samples.size, WINDOW)]
        t = time.perf_counter()
        guess = detect_language(model, spread(windows, DETECT_WINDOWS))
        took = time.perf_counter() - t
        rows.setdefault(expected, []).append((path.name, guess.language, guess.probability, took))
    print(f"model {model.spec.name} ({model.spec.source}), cpu int8, {args.threads} threads")
    print(f"{'language':10} {'right':>7} {'mean p':>7} {'min p':>6} {'s/detect':>9}")
    wrong = []
    for code, results in rows.items():
        right = sum(1 for _, got, _, _ in results if got == code)
        probs = [p for _, _, p, _ in results]
        seconds = sum(s for *_, s in results) / len(results)
        print(f"{code:10} {right:>3}/{len(results):<3} {np.mean(probs):7.3f} {min(probs):6.3f} {seconds:9.2f}")
        wrong += [(name, code, got, p) for name, got, p, _ in results if got != code]
    for name, code, got, p in wrong:
        print(f"wrong: {name}: {code} detected as {got} (p={p:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
