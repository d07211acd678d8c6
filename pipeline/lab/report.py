"""Reports: short Markdown texts and tables that Jupyter renders and a script prints."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


Progress = Callable[[str], None]


@dataclass
class Report:
    """A short Markdown text: rendered in Jupyter, printed as is elsewhere; ``rows`` holds the figures."""

    text: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def _repr_markdown_(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text


@dataclass
class Recommendation(Report):
    """Settings picked from sweep rows, with the figures behind the choice.

    Attributes:
        kind: ``vad`` or ``throughput``.
        row: The chosen row.
        baseline: The row of the current defaults (VAD) or of the optimizer's choice (throughput), if measured.
        settings: For ``vad`` the :class:`VadSettings` to use; for ``throughput`` a dict of ``batch_size``,
            ``cpu_threads`` and ``workers``.
        reason: One line saying why.
    """

    kind: str = ""
    row: dict[str, Any] = field(default_factory=dict)
    baseline: dict[str, Any] | None = None
    settings: Any = None
    reason: str = ""


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, digits: int = 3) -> Report:
    """A Markdown table of ``rows`` (lists and dicts left out unless named in ``columns``).

    Args:
        rows: Sweep rows.
        columns: Which keys, in order (default: every scalar key of the first row).
        digits: Decimals for floats.
    """
    if not rows:
        return Report("(no rows)")
    cols = list(columns) if columns else [k for k, v in rows[0].items() if not isinstance(v, (list, dict))]

    def cell(value: Any) -> str:
        if value is None:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else ""
        if isinstance(value, float):
            return f"{value:.{digits}f}"
        if isinstance(value, dict):
            return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
        return str(value)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in cols) + " |" for row in rows]
    return Report("\n".join(lines), [dict(r) for r in rows])


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def say(callback: Progress | None, line: str) -> None:
    if callback is not None:
        callback(line)
    else:
        log.info("%s", line)
