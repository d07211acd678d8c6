"""Model folders for real loads: links to the bundled tiny.en's files, a broken one, and its fix."""

from __future__ import annotations

from pathlib import Path

from pipeline.asr.models import bundled_model_path


def model_folder(root: Path, name: str) -> Path:
    """A CTranslate2 folder of links to the bundled tiny.en's files: a distinct model path, loaded for real."""
    folder = root / name
    folder.mkdir(parents=True)
    for item in bundled_model_path().iterdir():
        (folder / item.name).symlink_to(item)
    return folder


def broken_folder(root: Path, name: str) -> Path:
    """Like :func:`model_folder`, with a ``model.bin`` that CTranslate2 cannot load."""
    folder = model_folder(root, name)
    (folder / "model.bin").unlink()
    (folder / "model.bin").write_bytes(b"this is not a CTranslate2 model")
    return folder


def fixed(folder: Path) -> None:
    """Repair a :func:`broken_folder` in place."""
    (folder / "model.bin").unlink()
    (folder / "model.bin").symlink_to(bundled_model_path() / "model.bin")
