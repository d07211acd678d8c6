"""Finishing a video with ffmpeg: a soft subtitle track (embed) and hard subtitles (burn).

The styled ASS file comes from :mod:`pipeline.text.ass`. The video work is done by the ``ffmpeg`` program in a
subprocess: its stream copy keeps every video and audio packet as it is (PyAV could remux too, but would need
its own subtitle encoder set-up per container and gives no libass), and its ``ass`` filter renders the very
same ASS file through libass for burning, so the hard subtitles look like the styled file. Progress comes from
``ffmpeg -progress``; a cancel stops the process. Every file is written under a temp name beside its target
and renamed when complete, so a failure (a full disk, a cancel, a bad codec) leaves nothing half-written.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.core.errors import CancelledError, ExportError, InputError
from pipeline.core.settings import ExportSettings
from pipeline.core.types import Transcript
from pipeline.text.ass import ass_text
from pipeline.text.writers import render

log = logging.getLogger(__name__)

#: Export kinds and the file name each writes beside the subtitles (``<stem>.<suffix>``).
KINDS = ("embed", "burn")
#: Audio codecs an MP4 file takes as they are; others are re-encoded to AAC when burning.
MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
#: ffmpeg's words for a stream its chosen container cannot hold.
_NOT_IN_CONTAINER = re.compile(
    r"could not find tag for codec|not currently supported in container|codec not supported|"
    r"incompatible with|could not write header",
    re.IGNORECASE,
)
#: Subtitle codecs that are pictures, not text.
BITMAP_SUBTITLES = frozenset({"dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle", "xsub"})
_WRITE_FAILED = re.compile(r"error writing trailer|error closing file", re.IGNORECASE)
_NO_SPACE = re.compile(r"no space left on device|disk quota exceeded", re.IGNORECASE)

#: ISO 639-1 (Whisper's codes) → ISO 639-2/T, the language tag of a subtitle stream.
ISO639_2 = dict(
    pair.split(":")
    for pair in (
        "en:eng zh:zho de:deu es:spa ru:rus ko:kor fr:fra ja:jpn pt:por tr:tur pl:pol ca:cat nl:nld ar:ara "
        "sv:swe it:ita id:ind hi:hin fi:fin vi:vie he:heb uk:ukr el:ell ms:msa cs:ces ro:ron da:dan hu:hun "
        "ta:tam no:nor th:tha ur:urd hr:hrv bg:bul lt:lit la:lat mi:mri ml:mal cy:cym sk:slk te:tel fa:fas "
        "lv:lav bn:ben sr:srp az:aze sl:slv kn:kan et:est mk:mkd br:bre eu:eus is:isl hy:hye ne:nep mn:mon "
        "bs:bos kk:kaz sq:sqi sw:swa gl:glg mr:mar pa:pan si:sin km:khm sn:sna yo:yor so:som af:afr oc:oci "
        "ka:kat be:bel tg:tgk sd:snd gu:guj am:amh yi:yid lo:lao uz:uzb fo:fao ht:hat ps:pus tk:tuk nn:nno "
        "mt:mlt sa:san lb:ltz my:mya bo:bod tl:tgl mg:mlg as:asm tt:tat haw:haw ln:lin ha:hau ba:bak jw:jav "
        "su:sun yue:yue"
    ).split()
)
ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class MediaInfo:
    """What the exporters need to know about an input's streams."""

    has_video: bool
    width: int
    height: int
    video_codec: str
    audio_codecs: tuple[str, ...]
    subtitle_codecs: tuple[str, ...]
    duration: float


def language_tag(language: str | None) -> str:
    """The ISO 639-2 tag of a Whisper language code (``en`` → ``eng``); ``und`` when unknown."""
    code = (language or "").strip().lower()
    if len(code) == 3 and code.isalpha():
        return code
    return ISO639_2.get(code, "und")


def language_title(language: str | None) -> str:
    """A human title for a subtitle stream, such as ``English (video2srt)``."""
    name = _NAMES.get((language or "").lower(), language or "subtitles")
    return f"{name} (video2srt)"


_NAMES = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "es": "Spanish",
    "fr": "French",
    "ja": "Japanese",
    "ko": "Korean",
    "pt": "Portuguese",
    "ru": "Russian",
    "it": "Italian",
    "nl": "Dutch",
    "ar": "Arabic",
    "hi": "Hindi",
    "yue": "Cantonese",
}


def probe_media(path: Path) -> MediaInfo:
    """Streams of ``path`` (PyAV).

    Raises:
        InputError: The file cannot be opened as media.
    """
    import av

    try:
        with av.open(str(path)) as container:
            video = next((s for s in container.streams.video if not _is_cover(s)), None)
            audio = tuple(s.codec_context.name for s in container.streams.audio)
            subs = tuple(s.codec_context.name for s in container.streams.subtitles)
            duration = float(container.duration or 0) / 1e6
            if video is not None:
                return MediaInfo(
                    True, int(video.width or 0), int(video.height or 0), video.codec_context.name, audio, subs, duration
                )
            return MediaInfo(False, 0, 0, "", audio, subs, duration)
    except (OSError, av.FFmpegError) as exc:
        raise InputError(f"{path}: cannot be read as video or audio ({exc})") from exc


def _is_cover(stream: Any) -> bool:  # noqa: ANN401 - an av stream of any kind
    # An MP3's or M4A's cover picture is a one-frame "video" stream; it is not a video to burn into.
    return bool(stream.disposition & 0x400) if hasattr(stream, "disposition") else False  # attached_pic


# --- ffmpeg --------------------------------------------------------------------------------------------


def ffmpeg_path() -> str:
    """The ``ffmpeg`` program.

    Raises:
        ExportError: It is not installed.
    """
    path = shutil.which("ffmpeg")
    if path is None:
        raise ExportError(
            "ffmpeg is not installed: install it (apt-get install ffmpeg, brew install ffmpeg) to export video"
        )
    return path


@functools.cache
def _filters(ffmpeg: str) -> str:
    try:
        return subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def has_libass(ffmpeg: str | None = None) -> bool:
    """Whether this ffmpeg has the libass ``ass`` filter (``ffmpeg -filters | grep ass``)."""
    listing = _filters(ffmpeg or ffmpeg_path())
    return any(line.split()[1:2] == ["ass"] for line in listing.splitlines() if line.strip())


def _run_ffmpeg(
    args: list[str],
    target: Path,
    fmt: str,
    duration: float,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None,
    cwd: Path | None = None,
) -> None:
    """Run ffmpeg writing ``target`` (format ``fmt``) through a temp file renamed at the end.

    Raises:
        CancelledError: ``cancel`` was set; the temp file is removed.
        ExportError: ffmpeg failed (its last line says why); the temp file is removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name[:100]}.{secrets.token_hex(4)}.tmp")
    cmd = [ffmpeg_path(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args]
    cmd += ["-progress", "pipe:1", "-nostats", "-f", fmt, str(tmp)]
    log.debug("ffmpeg: %s", " ".join(cmd))
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=cwd)
        watcher = None
        if cancel is not None:
            # ffmpeg reports every half second, but a cancel must not wait for a report.
            watcher = threading.Thread(target=_stop_on, args=(cancel, proc), daemon=True)
            watcher.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                key, _, value = line.strip().partition("=")
                if key == "out_time_us" and value.isdigit() and duration > 0 and on_progress is not None:
                    on_progress(min(1.0, int(value) / 1e6 / duration))
            code = proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            tmp.unlink(missing_ok=True)
            raise
        if watcher is not None:
            watcher.join()
        errors.seek(0)
        message = errors.read().decode("utf-8", "replace")
    if cancel is not None and cancel.is_set():
        tmp.unlink(missing_ok=True)
        raise CancelledError(f"export of {target.name} cancelled")
    # ffmpeg 5 exits 0 when only its trailer or the file's close fails (a disk that filled at the end):
    # its error lines are the only sign that the file is incomplete.
    if code != 0 or _NO_SPACE.search(message) or _WRITE_FAILED.search(message):
        tmp.unlink(missing_ok=True)
        raise _ffmpeg_error(message, target)
    try:
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {target}: {exc.strerror or exc}") from exc
    if on_progress is not None:
        on_progress(1.0)


def _stop_on(cancel: threading.Event, proc: subprocess.Popen) -> None:
    while proc.poll() is None:
        if cancel.wait(0.2):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
            return


class _ContainerError(ExportError):
    """A stream cannot go into the chosen container."""


def _ffmpeg_error(message: str, target: Path) -> ExportError:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    last = lines[-1] if lines else "no message"
    if _NO_SPACE.search(message):
        return ExportError(
            f"{target.parent}: the disk filled while writing {target.name}; the partial file was removed — "
            "free some space and export again"
        )
    if _NOT_IN_CONTAINER.search(message):
        return _ContainerError(f"{target.name}: a stream cannot go into this container ({last})")
    return ExportError(f"ffmpeg could not write {target.name}: {last}")


# --- embed ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportResult:
    """A written export and what the user should know about it (a container fallback)."""

    kind: str
    path: Path
    note: str = ""


def embed_target(input_path: Path, out_dir: Path, info: MediaInfo, container: str | None = None) -> Path:
    """``<stem>.subtitled.mkv`` (``.mp4`` for an MP4 input, ``.mka`` without video)."""
    if not info.has_video:
        ext = "mka"
    else:
        ext = container or ("mp4" if input_path.suffix.lower() in (".mp4", ".m4v") else "mkv")
    return out_dir / f"{input_path.stem}.subtitled.{ext}"


def embed(
    input_path: Path,
    tracks: Sequence[Transcript],
    target: Path,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    info: MediaInfo | None = None,
) -> ExportResult:
    """Copy every video and audio stream of ``input_path`` into ``target`` with one subtitle stream per transcript.

    Nothing is re-encoded; existing subtitle streams are kept. Each new stream gets its ISO 639-2
    language tag and a title. An MP4 target whose streams MP4 cannot hold falls back to MKV (``note`` says so).

    Args:
        input_path: The original video or audio.
        tracks: One transcript per language to add.
        target: ``.mkv``, ``.mp4`` or ``.mka``; written through a temp file.
        on_progress: Called with 0–1.
        cancel: Set to stop; nothing is left behind.
        info: The input's streams, when already probed.

    Raises:
        ExportError: ffmpeg is missing or fails (a full disk: the partial file is removed).
        CancelledError: ``cancel`` was set.
    """
    info = info or probe_media(input_path)
    ext = target.suffix.lower().lstrip(".")
    with tempfile.TemporaryDirectory(prefix="v2s-embed-") as tmp:
        args = ["-i", str(input_path)]
        for n, transcript in enumerate(tracks):
            sub = Path(tmp) / f"track{n}.srt"
            sub.write_text(render(transcript, "srt"), encoding="utf-8")
            args += ["-f", "srt", "-i", str(sub)]
        try:
            _run_ffmpeg(args + _embed_maps(ext, info, tracks), target, _MUXERS[ext], info.duration, on_progress, cancel)
            return ExportResult("embed", target)
        except _ContainerError as exc:
            if ext != "mp4":
                raise
            fallback = target.with_suffix(".mkv")
            _run_ffmpeg(
                args + _embed_maps("mkv", info, tracks), fallback, "matroska", info.duration, on_progress, cancel
            )
            note = f"{input_path.name}: wrote {fallback.name} instead of {target.name} ({exc})"
            log.warning("%s", note)
            return ExportResult("embed", fallback, note)


_MUXERS = {"mkv": "matroska", "mka": "matroska", "mp4": "mp4"}


def _embed_maps(ext: str, info: MediaInfo, tracks: Sequence[Transcript]) -> list[str]:
    maps = ["-map", "0:v?", "-map", "0:a?", "-map", "0:s?"]
    if ext in ("mkv", "mka"):
        maps += ["-map", "0:t?"]  # fonts and other attachments of an MKV input
    for n in range(len(tracks)):
        maps += ["-map", f"{n + 1}:0"]
    codec = "mov_text" if ext == "mp4" else "srt"
    args = [*maps, "-c", "copy"]
    for k, existing in enumerate(info.subtitle_codecs):
        # MP4 holds text subtitles only as mov_text, and Matroska cannot hold mov_text: text tracks are
        # converted, bitmap ones (DVD, Blu-ray) copied; MP4 cannot hold those at all.
        if ext == "mp4" and existing in BITMAP_SUBTITLES:
            raise _ContainerError(f"its {existing} subtitle track cannot go into MP4")
        if ext == "mp4" and existing != "mov_text":
            args += [f"-c:s:{k}", "mov_text"]
        elif ext != "mp4" and existing == "mov_text":
            args += [f"-c:s:{k}", "srt"]
    for n, transcript in enumerate(tracks):
        k = len(info.subtitle_codecs) + n
        args += [
            f"-c:s:{k}",
            codec,
            f"-metadata:s:s:{k}",
            f"language={language_tag(transcript.language)}",
            f"-metadata:s:s:{k}",
            f"title={language_title(transcript.language)}",
        ]
        if ext == "mp4":
            # MP4 has no track title; players show the handler name instead.
            args += [f"-metadata:s:s:{k}", f"handler_name={language_title(transcript.language)}"]
    if ext == "mp4":
        args += ["-movflags", "+faststart"]
    return args


# --- burn -------------------------------------------------------------------------------------------------


def burn_target(input_path: Path, out_dir: Path) -> Path:
    """``<stem>.burned.mp4``."""
    return out_dir / f"{input_path.stem}.burned.mp4"


def burn(
    input_path: Path,
    transcript: Transcript,
    target: Path,
    settings: ExportSettings | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    info: MediaInfo | None = None,
) -> ExportResult:
    """Render the styled subtitles into the video (libass): H.264 MP4, audio copied.

    Raises:
        InputError: The input has no video.
        ExportError: ffmpeg is missing, has no libass, or fails (the partial file is removed).
        CancelledError: ``cancel`` was set.
    """
    settings = settings or ExportSettings()
    info = info or probe_media(input_path)
    if not info.has_video:
        raise InputError(f"{input_path.name} has no video to burn subtitles into; use embed (a .mka) or the SRT")
    ffmpeg = ffmpeg_path()
    if not has_libass(ffmpeg):
        raise ExportError(
            "this ffmpeg cannot burn subtitles: it lacks libass (`ffmpeg -filters` lists no 'ass' filter); "
            "install an ffmpeg built with --enable-libass"
        )
    copy_audio = all(codec in MP4_AUDIO for codec in info.audio_codecs)
    with tempfile.TemporaryDirectory(prefix="v2s-burn-") as tmp:
        # The filter reads the ASS file by a plain relative name from the temp folder: no path escaping.
        Path(tmp, "subs.ass").write_text(ass_text(transcript, settings, (info.width, info.height)), encoding="utf-8")
        args = ["-i", str(input_path.resolve()), "-map", "0:v:0", "-map", "0:a?", "-vf", "ass=subs.ass"]
        args += ["-c:v", "libx264", "-crf", str(settings.crf), "-preset", settings.preset, "-pix_fmt", "yuv420p"]
        args += ["-c:a", "copy"] if copy_audio else ["-c:a", "aac", "-b:a", "192k"]
        args += ["-movflags", "+faststart"]
        _run_ffmpeg(args, target, "mp4", info.duration, on_progress, cancel, cwd=Path(tmp))
    return ExportResult("burn", target)


def export_video(
    kind: str,
    input_path: Path,
    transcript: Transcript,
    out_dir: Path,
    settings: ExportSettings | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> ExportResult:
    """One export of ``input_path`` into ``out_dir``: ``embed`` or ``burn`` (file names as in :func:`embed_target`)."""
    info = probe_media(input_path)
    if kind == "embed":
        return embed(input_path, [transcript], embed_target(input_path, out_dir, info), on_progress, cancel, info)
    if kind == "burn":
        return burn(input_path, transcript, burn_target(input_path, out_dir), settings, on_progress, cancel, info)
    raise ExportError(f"unknown export {kind!r}: use one of {', '.join(KINDS)}")
