"""Whisper's languages: one validator for ``--language``, the HTTP API and the UI, and their display names.

Codes and names come from Whisper's own table (``whisperx.utils.LANGUAGES`` / ``TO_LANGUAGE_CODE``, the
same 100 entries as faster-whisper's tokenizer, Cantonese ``yue`` included); each language's name in its own
script (中文, Deutsch, 日本語 ...) from the CLDR data of Babel.
"""

from __future__ import annotations

import difflib
import unicodedata
from functools import cache, lru_cache

from pipeline.core.errors import UsageError

#: Whisper's code for Javanese is not the ISO one; CLDR knows it as ``jv``.
_CLDR_CODE = {"jw": "jv", "haw": "haw", "yue": "yue"}
#: Extra names people type, beyond Whisper's own aliases (mandarin, castilian, ...).
_EXTRA_ALIASES = {
    "mandarin": "zh",
    "cantonese": "yue",
    "farsi": "fa",
    "filipino": "tl",
    "mandarin chinese": "zh",
    "putonghua": "zh",
}


def _fold(text: str) -> str:
    """Lower case without accents, so ``Español``, ``espanol`` and ``ESPAÑOL`` meet."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def whisper_languages() -> dict[str, str]:
    """Whisper's languages, code → English name (lower case, as Whisper spells them)."""
    from whisperx.utils import LANGUAGES

    return dict(LANGUAGES)


@cache
def native_name(code: str) -> str:
    """The language's name in its own language and script (``zh`` → 中文), else its English name."""
    try:
        from babel import Locale, UnknownLocaleError

        try:
            locale = Locale.parse(_CLDR_CODE.get(code, code))
            name = locale.get_language_name(locale)
        except (UnknownLocaleError, ValueError):
            name = None
    except ImportError:
        name = None
    english = english_name(code)
    if not name:
        return english
    return name[0].upper() + name[1:]


def english_name(code: str) -> str:
    """The English name (``zh`` → Chinese)."""
    return whisper_languages().get(code, code).title()


@lru_cache(maxsize=1)
def _basic() -> dict[str, str]:
    """Codes, English names and Whisper's aliases (folded) → code: no CLDR data needed, so it is quick."""
    from whisperx.utils import TO_LANGUAGE_CODE

    table: dict[str, str] = {}
    for code, name in whisper_languages().items():
        table[_fold(code)] = code
        table[_fold(name)] = code
    for alias, code in {**TO_LANGUAGE_CODE, **_EXTRA_ALIASES}.items():
        table.setdefault(_fold(alias), code)
    return table


@lru_cache(maxsize=1)
def _lookup() -> dict[str, str]:
    """Every accepted spelling (folded) → code: :func:`_basic` plus each language's own name (CLDR, slower)."""
    table = dict(_basic())
    for code in whisper_languages():
        table.setdefault(_fold(native_name(code)), code)
    return table


def normalize_language(value: str | None, what: str = "--language") -> str | None:
    """A Whisper language code from a code or a name (``zh``, ``chinese``, ``Mandarin``, ``Deutsch``); blank or
    ``auto`` means "detect" (None).

    Raises:
        UsageError: Not a Whisper language; the one-line message names the nearest matches.
    """
    raw = (value or "").strip()
    if not raw or raw.lower() in ("auto", "detect"):
        return None
    key = _fold(raw).replace("_", "-")
    # Codes and English names first (the usual case, and no CLDR data to load), then names in any language.
    for tables in (_basic, _lookup):
        table = tables()
        code = table.get(key) or table.get(key.split("-")[0])  # zh-CN, en_US: the language part
        if code is not None:
            return code
    table = _lookup()
    near = difflib.get_close_matches(key, list(table), n=6, cutoff=0.6)
    seen: list[str] = []
    for match in near:
        label = f"{table[match]} ({english_name(table[match])})"
        if label not in seen:
            seen.append(label)
    hint = f"did you mean {', '.join(seen[:3])}?" if seen else "use a code such as en, de, zh or a name such as German"
    raise UsageError(f"unknown {what} {raw!r}: {hint} (Whisper knows {len(whisper_languages())} languages)")


def language_choices() -> list[tuple[str, str]]:
    """(label, code) for a language picker: "Detect automatically" first, then each language as
    ``中文 — Chinese``, in English alphabetical order so that typing the English name finds it."""
    rows = sorted(whisper_languages(), key=english_name)
    choices = [("Detect automatically", "auto")]
    for code in rows:
        native, english = native_name(code), english_name(code)
        choices.append((english if _fold(native) == _fold(english) else f"{native} — {english}", code))
    return choices


__all__ = ["english_name", "language_choices", "native_name", "normalize_language", "whisper_languages"]
