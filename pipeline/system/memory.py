"""Process memory housekeeping: handing the C heap's free pages back, and skipping the exit-time GC walk."""

from __future__ import annotations

import atexit
import ctypes
import functools
import gc
import os
import sys
import time
from typing import Any


@functools.lru_cache(maxsize=1)
def _libc() -> Any:  # noqa: ANN401 - a ctypes library, or None
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


#: Seconds between two heap trims (:func:`trim_heap`).
TRIM_EVERY_S = 20.0
_trimmed_at = [0.0]


def trim_heap(force: bool = False) -> None:
    """Hand the C heap's free pages back to the system now and then (glibc ``malloc_trim``; elsewhere nothing).

    Batches running side by side on several threads free their encoder activations into different malloc
    arenas, which glibc keeps, so a long input's process keeps growing. A trim after every batch costs time
    (the next batch faults the pages in again), so trims are at least ``TRIM_EVERY_S`` apart: fragmentation
    grows slowly. The measurements are in docs/benchmarks.md ("Against faster-whisper and WhisperX").

    Args:
        force: Trim whatever the time since the last trim (a benchmark's clean start).
    """
    libc = _libc()
    now = time.monotonic()
    if libc is None or (not force and now - _trimmed_at[0] < TRIM_EVERY_S):
        return
    _trimmed_at[0] = now
    libc.malloc_trim(0)


#: glibc's ``mallopt`` parameter for the largest number of heap arenas.
_M_ARENA_MAX = -8


@functools.cache
def share_one_heap_arena() -> None:
    """Let threads that start from now on share glibc's heap arenas instead of making new ones (elsewhere nothing).

    The inference lanes run side by side on threads, and glibc would give each its own arena and keep what
    each frees, so the process's peak depended on whether two lanes' encoder passes coincided. In a shared
    arena a block one lane frees is reused by the next that allocates: a lower and steadier peak, at no cost in
    time that we could measure (docs/benchmarks.md, "Process housekeeping"). Called before any other thread
    allocates (the CLI), every thread shares the one main arena; later (a Dask worker) they share those that
    exist. It acts once, however often it is called, and not where the environment sets ``MALLOC_ARENA_MAX``.
    """
    libc = _libc()
    # A MALLOC_ARENA_MAX of the user's own (glibc reads it at start) wins.
    if libc is not None and hasattr(libc, "mallopt") and "MALLOC_ARENA_MAX" not in os.environ:
        libc.mallopt(_M_ARENA_MAX, 1)


@functools.cache
def skip_heap_walk_at_exit() -> None:
    """Let this process exit without the interpreter's last garbage collection over every live object.

    With Dask and its bokeh dashboard imported that walk is a visible part of a CLI run's exit (figures in
    docs/benchmarks.md, "Process housekeeping"). Registered with :mod:`atexit` (once, however often this is
    called), so it only runs as the process ends, after the exit handlers registered later; files are flushed
    as usual.
    """
    atexit.register(gc.freeze)
