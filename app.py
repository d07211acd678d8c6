"""Start the video2srt workbench: ``python app.py [--host H] [--port P] [--share] [--auth USER:PASS] ...``.

Thin: flags → Settings → :func:`workbench.server.build_server` → uvicorn. ``--share`` adds a public Gradio link
once the server is up; without internet it says so in one line and keeps serving locally.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from pathlib import Path

from pipeline.core.errors import PipelineError, UsageError
from pipeline.core.settings import AUTO_MODEL, JobSettings, ModelSettings, Settings, default_jobs_dir
from pipeline.parse import (
    add_cluster_args,
    add_model_manager_args,
    cluster_from_args,
    model_manager_from_args,
    settings_from_env,
)

SHARE_WITHOUT_AUTH = (
    "\n" + "!" * 100 + "\n"
    "WARNING: --share without --auth: ANYONE who gets the link can upload files, run jobs on this machine,\n"
    "read every job's subtitles and delete jobs. Add --auth USER:PASS to protect the UI and the API.\n"
    + "!" * 100
    + "\n"
)


def build_parser() -> argparse.ArgumentParser:
    """The ``python app.py`` flags."""
    p = argparse.ArgumentParser(prog="app.py", description="The video2srt workbench (Gradio UI + HTTP API).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="also create a public Gradio share link (needs internet)")
    p.add_argument(
        "--auth",
        metavar="USER:PASS",
        help="protect the UI and the /api routes with this login (or set VIDEO2SRT_AUTH, which other "
        "users of the machine cannot read from the process list)",
    )
    add_cluster_args(p)
    p.add_argument(
        "--require-cluster",
        action="store_true",
        help="fail instead of running jobs inside the app when --scheduler cannot be reached",
    )
    p.add_argument("--model", default=AUTO_MODEL, help="tiny.en (bundled), a Whisper name, or a CTranslate2 folder")
    p.add_argument("--jobs-dir", type=Path, help="job folders (default: $VIDEO2SRT_JOBS_DIR or the user cache)")
    p.add_argument("--no-preload", action="store_true", help="load the model with the first job, not at start")
    p.add_argument("--resume-unfinished", action="store_true", help="resume every unfinished job at start")
    add_model_manager_args(p)
    return p


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    ns = p.parse_args(argv)
    try:
        from workbench.auth import parse_auth

        auth = parse_auth(ns.auth or os.environ.get("VIDEO2SRT_AUTH") or None)
        models = model_manager_from_args(ns)
        cluster = cluster_from_args(ns, fallback_local=not ns.require_cluster)
        # The stage settings a user sets through the environment (VIDEO2SRT_GUARD_*, VIDEO2SRT_TIMING_*).
        settings = settings_from_env(
            Settings(
                model=ModelSettings(name=ns.model.strip() or AUTO_MODEL),
                models=models,
                cluster=cluster,
                jobs=JobSettings(
                    jobs_dir=(ns.jobs_dir.expanduser() if ns.jobs_dir else default_jobs_dir()), priority=ns.priority
                ),
            )
        )
    except UsageError as exc:
        p.error(str(exc))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import uvicorn

        from workbench.server import build_server

        server_app = build_server(
            settings, resume_unfinished=ns.resume_unfinished, preload=not ns.no_preload, auth=auth
        )
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    server = uvicorn.Server(uvicorn.Config(server_app, host=ns.host, port=ns.port, log_level="warning"))
    local = f"http://{'127.0.0.1' if ns.host in ('0.0.0.0', '::', '') else ns.host}:{ns.port}"
    print(f"video2srt workbench on {local}" + (" (login required)" if auth else ""), file=sys.stderr, flush=True)
    if ns.share:
        if auth is None:
            print(SHARE_WITHOUT_AUTH, file=sys.stderr, flush=True)
        threading.Thread(target=_share, args=(server, server_app, local), name="share-link", daemon=True).start()
    server.run()
    return 0


def _share(server: object, server_app: object, local: str) -> None:
    """Once the server is up, open the Gradio share tunnel and print the link, or say why there is none."""
    from urllib.parse import urlparse

    from workbench.server import create_share_link

    while not getattr(server, "started", False):
        if getattr(server, "should_exit", False):
            return
        time.sleep(0.1)
    url = urlparse(local)
    try:
        link = create_share_link(server_app, url.hostname or "127.0.0.1", url.port or 80)
    except Exception as exc:  # noqa: BLE001 - every failure is the same for the user: no public link
        reason = " ".join(str(exc).split()) or type(exc).__name__
        print(
            f"note: no share link ({reason} — is this machine offline?); still serving locally at {local}",
            file=sys.stderr,
            flush=True,
        )
        return
    print(f"public share link: {link} (valid while this process runs)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
