"""Two revisions of ours side by side: the CLI of each on the same benchmark inputs, interleaved.

Each revision is checked out as a git worktree (under ``--out``), and its CLI runs as ``python -m pipeline`` from
that worktree with this checkout's virtual environment (its packages; the ``pipeline`` package is the
worktree's, first on the path). Every run is measured as ``compare.py`` measures ours: wall and CPU seconds of
the process tree, its peak RSS, and the WER of the SRT against the input's reference. The order of the two
revisions flips from one round to the next, so a host that slows down during the run costs both alike.

Usage::

    python benchmarks/revisions.py 1d8d1b0 HEAD --inputs dense,pauses,silences,speakers --repeat 2
    python benchmarks/revisions.py 1d8d1b0 HEAD --inputs 2h --repeat 1
"""

from __future__ import annotations

import argparse
import subprocess
from collections.abc import Sequence
from pathlib import Path

import compare

REPO = Path(__file__).resolve().parent.parent


def worktree(rev: str, out: Path) -> Path:
    """A worktree of ``rev`` under ``out`` (the working tree itself for ``.``)."""
    if rev == ".":
        return REPO
    found = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"], cwd=REPO, capture_output=True, text=True
    )
    if found.returncode != 0:
        raise SystemExit(f"error: {rev!r} is not a commit of {REPO}; give a hash, a branch, a tag or '.'")
    sha = found.stdout
    path = out / "trees" / sha.strip()[:12]
    if not path.exists():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), rev], cwd=REPO, check=True, capture_output=True
        )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", help="git revision measured first in the first round")
    p.add_argument("after", help="git revision to compare with it ('.': the working tree, uncommitted changes too)")
    p.add_argument("--inputs", default="dense,pauses,silences,speakers", help="benchmark inputs (compare.py's)")
    p.add_argument("--repeat", type=int, default=2, help="rounds")
    p.add_argument("--out", type=Path, default=Path("bench-out/revisions"), help="inputs, worktrees and runs")
    ns = p.parse_args(argv)
    out = ns.out.resolve()
    model = compare.bundled_model_path().resolve()
    items = compare.prepare_inputs(ns.inputs.split(","), out / "inputs", compare.DEFAULT_DATA_DIR)
    trees = [(rev, worktree(rev, out)) for rev in (ns.before, ns.after)]
    print("| input | revision | wall s | CPU s | peak RSS MB | WER |\n|---|---|---:|---:|---:|---:|", flush=True)
    for r in range(ns.repeat):
        for item in items:
            for rev, tree in trees if r % 2 == 0 else trees[::-1]:
                run_out = out / rev.replace("/", "_")
                res = compare.run_tool("ours", item, r + 1, run_out, model, 0, ours_tree=tree)
                wer = f"{res.wer:.2%}" if res.wer is not None else (res.error or "—")
                print(
                    f"| {item.name} | {rev} | {res.wall_s:.1f} | {res.cpu_s:.1f} | {res.peak_rss_mb:.0f} | {wer} |",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
