"""Uploads into the job service: which files are accepted, under which name, up to which size, and which
upload folders no job uses any more.

Uploads live in ``<jobs dir>/uploads/<16 hex digits>/<safe name>``, inside the jobs folder, so that moving one
into its job folder when the job is done is a rename.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
import unicodedata
from pathlib import Path
from typing import BinaryIO

from pipeline.core.errors import CheckpointError
from pipeline.jobs.store import Job, JobStore
from workbench.errors import UnsupportedMediaError, UploadTooLargeError, one_line

log = logging.getLogger(__name__)

#: File name extensions accepted for upload (checked before anything is stored; the real probe follows).
MEDIA_EXTENSIONS = (
    "mp4",
    "mkv",
    "webm",
    "mov",
    "avi",
    "mp3",
    "m4a",
    "ogg",
    "opus",
    "flac",
    "wav",
    "aac",
    "wma",
    "mpg",
    "mpeg",
    "ts",
    "m4v",
    "3gp",
)
#: Default upload size limit: 2 GiB.
MAX_UPLOAD_BYTES = 2 << 30
#: An upload folder that no job uses is removed once it is this old: a younger one may be mid-upload.
ORPHAN_AGE_S = 86400.0
_CHUNK = 1 << 20
_TOKEN_RE = re.compile(r"^[0-9a-f]{16}$")


def safe_file_name(filename: str | None) -> str:
    """The upload's base name reduced to safe characters, keeping its extension.

    Raises:
        UnsupportedMediaError: The extension is not one of :data:`MEDIA_EXTENSIONS`.
    """
    # Browsers and clients may send a full client-side path (either slash); only the last part counts.
    base = re.split(r"[\\/]", unicodedata.normalize("NFC", filename or ""))[-1]
    base = re.sub(r"[^\w.\- ]+", "_", base).strip(" .")
    stem, dot, ext = base.rpartition(".")
    ext = ext.lower()
    if not dot or ext not in MEDIA_EXTENSIONS:
        shown = one_line(filename or "") or "the upload"
        raise UnsupportedMediaError(
            f"{shown}: not a known video or audio file type; upload one of: {', '.join(MEDIA_EXTENSIONS)}"
        )
    stem = stem.strip(" .")[:100] or "upload"
    return f"{stem}.{ext}"


def copy_upload(stream: BinaryIO, path: Path, max_bytes: int) -> None:
    """Copy ``stream`` to ``path`` in chunks, refusing it as soon as it passes ``max_bytes``.

    Raises:
        UploadTooLargeError: The stream is longer than ``max_bytes``.
        OSError: ``path`` cannot be written.
    """
    size = 0
    with open(path, "wb") as out:
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise UploadTooLargeError(
                    f"{path.name}: the upload is larger than the limit of {human_bytes(max_bytes)}; "
                    "send a smaller file or cut it into parts"
                )
            out.write(chunk)


def is_upload_folder(folder: Path) -> bool:
    """Whether ``folder``'s name is one :func:`copy_upload`'s callers make (a random token)."""
    return bool(_TOKEN_RE.match(folder.name))


def upload_dir_of(job: Job, uploads_root: Path) -> Path | None:
    """The upload folder holding ``job``'s input, when the service made it; None for a CLI job's own file."""
    try:
        folder = Path(job.read_job()["input_path"]).parent
    except (CheckpointError, KeyError, TypeError):
        return None
    try:
        root = uploads_root.resolve()
    except OSError:
        return None
    return folder if folder.parent == root and is_upload_folder(folder) else None


def prune_uploads(uploads_root: Path, store: JobStore, min_age_s: float = ORPHAN_AGE_S) -> list[str]:
    """Remove upload folders older than ``min_age_s`` that no job uses; return their names.

    They are left by jobs that expired or were removed outside the service, and by a crash between an upload
    and its job folder.
    """
    if not uploads_root.is_dir():
        return []
    used = {folder for folder in (upload_dir_of(job, uploads_root) for job in store.jobs()) if folder is not None}
    now, removed = time.time(), []
    for folder in uploads_root.iterdir():
        try:
            old = now - folder.stat().st_mtime > min_age_s
        except OSError:
            continue
        if old and is_upload_folder(folder) and folder.resolve() not in used:
            shutil.rmtree(folder, ignore_errors=True)
            log.info("removed upload %s: no job uses it", folder.name)
            removed.append(folder.name)
    return removed


def human_bytes(n: int) -> str:
    """``2147483648`` → ``2.0 GiB``."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"
