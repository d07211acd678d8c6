"""Start the video2srt workbench: ``python app.py [--host H] [--port P] [--model M] [--jobs-dir D] ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.errors import PipelineError
from pipeline.settings import AUTO_MODEL, JobSettings, ModelSettings, Settings, default_jobs_dir


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="app.py", description="The video2srt workbench (Gradio UI + HTTP API).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="create a public Gradio share link (needs internet)")
    p.add_argument("--auth", help="USER:PASS protecting the UI")
    p.add_argument("--scheduler", help="a Dask scheduler address")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--model", default=AUTO_MODEL)
    p.add_argument("--jobs-dir", type=Path)
    p.add_argument("--no-preload", action="store_true")
    p.add_argument("--resume-unfinished", action="store_true", help="resume every unfinished job at start")
    ns = p.parse_args(argv)
    settings = Settings(
        model=ModelSettings(name=ns.model),
        jobs=JobSettings(jobs_dir=ns.jobs_dir or default_jobs_dir()),
    )
    try:
        import uvicorn

        from workbench.app import build_server

        server = build_server(settings, resume_unfinished=ns.resume_unfinished)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if ns.share:
        print("note: --share is not available in this version; serving locally", file=sys.stderr)
    print(f"video2srt workbench on http://{ns.host}:{ns.port}", file=sys.stderr)
    uvicorn.run(server, host=ns.host, port=ns.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
