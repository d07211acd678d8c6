"""Files written so that a crash never leaves half of one: atomic writes, hashes, the streamed audio.

Generic: they take paths and know nothing of a job folder's layout, which :mod:`pipeline.jobs.store` owns.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.core.errors import CheckpointError


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on folders; the rename is still atomic
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old file or the new one, never a mix."""
    atomic_write_many({path: data})


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text version of :func:`atomic_write_bytes`."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=1, sort_keys=True))


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path}: missing") from exc
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable or corrupt ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return data


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(values: dict[str, Any]) -> str:
    """A stable hash of JSON-able settings."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


class WavWriter:
    """Streams 16 kHz mono PCM16 into a job's ``audio.wav``: written under a temp name, renamed when done."""

    def __init__(self, path: Path, sample_rate: int) -> None:
        import soundfile

        self.path = path
        self._tmp = path.with_name(".audio.wav.partial")
        self._file = soundfile.SoundFile(
            str(self._tmp), mode="w", samplerate=sample_rate, channels=1, subtype="PCM_16", format="WAV"
        )

    def write(self, samples: np.ndarray) -> None:
        try:
            self._file.write(samples)
        except RuntimeError as exc:
            # libsndfile says only "System error"; a full disk must read as one, like every other write here.
            if shutil.disk_usage(self._tmp.parent).free < samples.nbytes + (1 << 16):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self._tmp)) from exc
            raise

    def close(self, keep: bool = True) -> None:
        """Finish the file; ``keep=False`` (a failed decode) removes it."""
        if not keep:
            try:
                self._file.close()  # may fail again on a full disk; the file goes either way
            except (RuntimeError, OSError):
                pass
            self._tmp.unlink(missing_ok=True)
            return
        self._file.close()
        with open(self._tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self._tmp, self.path)
        fsync_dir(self.path.parent)


def atomic_write_many(files: dict[Path, bytes]) -> None:
    """Write every file under a temp name first (synced), then rename them all into place."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            # At most 100 bytes of the name: a target whose own name is near the file system's 255-byte limit
            # (a long input name) must not fail on its longer temp name.
            short = path.name.encode("utf-8")[:100].decode("utf-8", "ignore")
            tmp = path.with_name(f".{short}.{secrets.token_hex(4)}.tmp")
            temps.append((tmp, path))
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
        for tmp, path in temps:
            os.replace(tmp, path)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    if temps:
        fsync_dir(temps[0][1].parent)


def check_free_space(folder: Path, need_bytes: int, what: str) -> None:
    """Refuse early when ``folder``'s file system cannot hold ``need_bytes`` (plus a 64 MiB margin).

    Raises:
        CheckpointError: Not enough free space, with both figures and what to do.
    """
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if free < need_bytes + (64 << 20):
        raise CheckpointError(
            f"not enough free space for {what} in {folder}: it needs about {need_bytes / 1e6:.0f} MB and "
            f"{free / 1e6:.0f} MB are free; free some space or use --jobs-dir on a bigger disk"
        )
