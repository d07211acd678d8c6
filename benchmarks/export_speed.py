"""Export speed: embedding a subtitle track (stream copy) and burning subtitles in (libass + libx264).

Takes a video and a transcript JSON that video2srt wrote for it (``-f json``), runs each export once, and
prints wall seconds, seconds per hour of video (embed) and the speed as a multiple of real time (burn).

Usage::

    python benchmarks/export_speed.py VIDEO TRANSCRIPT.json [--kinds embed,burn] [--out bench-out]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from pipeline.text import mux
from pipeline.text.cue_edit import transcript_from_dict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("video", type=Path)
    p.add_argument("transcript", type=Path)
    p.add_argument("--kinds", default="embed,burn")
    p.add_argument("--out", type=Path, default=None, help="where to keep the files (default: a temp folder)")
    ns = p.parse_args()
    transcript = transcript_from_dict(json.loads(ns.transcript.read_text(encoding="utf-8")))
    info = mux.probe_media(ns.video)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = ns.out or Path(tmp)
        for kind in ns.kinds.split(","):
            t = time.monotonic()
            done = mux.export_video(kind, ns.video, transcript, out)
            wall = time.monotonic() - t
            rows.append(
                {
                    "kind": kind,
                    "video_s": round(info.duration, 1),
                    "size": f"{info.width}x{info.height}",
                    "wall_s": round(wall, 2),
                    "s_per_hour": round(wall * 3600 / info.duration, 1),
                    "x_realtime": round(info.duration / wall, 1),
                    "file": done.path.name,
                    "mb": round(done.path.stat().st_size / 1e6, 1),
                }
            )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
