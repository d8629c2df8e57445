"""Which files an archive run scores: a folder (recursive) or a CSV of paths, with truth labels
from a ``label`` column or from ``NORMAL``/``PNEUMONIA`` folder names."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from pneumonia.core.labels import LABELS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom"}
DICOM_MAGIC_OFFSET = 128
PATH_COLUMNS = ("path", "file", "filename")
_TRUE = {"1", "pneumonia", "true", "yes", "positive"}
_FALSE = {"0", "normal", "false", "no", "negative"}


class Item(NamedTuple):
    """One file to score: its name in the results (relative to the input), where it is, its truth."""

    file: str
    path: str
    truth: int | None


class InputError(ValueError):
    """The input cannot be used; ``str(err)`` says why in plain words."""


def is_dicom_file(path: str | Path) -> bool:
    """True when the file carries the DICOM preamble marker 'DICM' at byte 128 (any file name)."""
    try:
        with open(path, "rb") as f:
            f.seek(DICOM_MAGIC_OFFSET)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def is_image_candidate(path: Path) -> bool:
    """An image by its suffix, or DICOM by its content (DICOM files often have no extension)."""
    if path.name.startswith("."):
        return False
    return path.suffix.lower() in IMAGE_SUFFIXES or is_dicom_file(path)


def truth_from_folders(relative: str) -> int | None:
    """1 under a PNEUMONIA folder, 0 under NORMAL (the nearest such folder wins), else None."""
    for part in reversed(PurePosixPath(relative).parts[:-1]):
        if part.upper() in LABELS:
            return LABELS.index(part.upper())
    return None


def parse_label(value: str | None) -> int | None:
    """A CSV label: 1/0, PNEUMONIA/NORMAL, true/false; blank means unknown."""
    text = (value or "").strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise InputError(f"The label {value!r} is not understood; use 1 or PNEUMONIA, 0 or NORMAL, or leave it blank.")


def walk_folder(root: Path) -> Iterator[Item]:
    """Every image under ``root`` in a stable (sorted) order, without holding the listing."""
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(folder) / name
            if is_image_candidate(path):
                rel = path.relative_to(root).as_posix()
                yield Item(rel, str(path), truth_from_folders(rel))


def read_csv_list(csv_path: Path) -> Iterator[Item]:
    """Rows of a CSV with a path column (``path``, ``file`` or the first column) and an optional ``label``;
    relative paths are taken from the CSV's folder."""
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise InputError(f"{csv_path.name} is empty: it needs a header row with a 'path' column.")
        lower = {c.strip().lower(): c for c in reader.fieldnames}
        path_col = next((lower[c] for c in PATH_COLUMNS if c in lower), reader.fieldnames[0])
        label_col = lower.get("label")
        for row in reader:
            written = (row.get(path_col) or "").strip()
            if not written:
                continue
            path = Path(written) if Path(written).is_absolute() else csv_path.parent / written
            truth = parse_label(row.get(label_col)) if label_col else None
            rel = PurePosixPath(Path(written).as_posix()).as_posix()
            yield Item(rel, str(path), truth if label_col else truth_from_folders(rel))


def discover(source: str | Path) -> Iterator[Item]:
    """The files of a folder, or those listed in a ``.csv`` file."""
    src = Path(source)
    if src.is_dir():
        return walk_folder(src)
    if src.is_file() and src.suffix.lower() == ".csv":
        return read_csv_list(src)
    if not src.exists():
        raise InputError(f"{src} does not exist.")
    raise InputError(f"{src} is neither a folder nor a .csv list of files.")
