"""Where an archive run's rows go: parts committed atomically, then merged into the one parquet
file the user named.

While a run is going, rows sit in ``OUT.parts/part-*.parquet``; each part is written to a hidden
temporary file, flushed to disk and only then renamed into place, so a run killed at any moment
leaves whole parts or none. At the end the parts (and the rows of an earlier ``OUT``) are merged
into ``OUT`` row group by row group, and a file already in ``OUT`` is never written twice.
A lock file keeps two runs from writing to the same ``OUT`` at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pneumonia.serving.archive.discover import InputError
from pneumonia.serving.archive.rows import RowSpec

META_FILE = "_meta.json"
PENDING_DIR = "_pending"
LOCK_FILE = ".lock"
SCHEMA_META_KEY = b"pneumonia.results"
READ_BATCH = 65_536


def keys_of(files: Iterable[str]) -> np.ndarray:
    """A 64-bit key per results ``file`` value (8 bytes a file: a million files hold in 8 MB)."""
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little") for f in files),
        dtype=np.uint64,
    )


class KeySet:
    """A set of 64-bit keys kept as a sorted array, with a small buffer of recent additions."""

    def __init__(self) -> None:
        self._sorted = np.zeros(0, np.uint64)
        self._recent: list[np.ndarray] = []
        self._n_recent = 0

    def add(self, keys: np.ndarray) -> None:
        self._recent.append(np.asarray(keys, np.uint64))
        self._n_recent += len(keys)
        if self._n_recent > 65_536:
            self._sorted = np.union1d(self._sorted, np.concatenate(self._recent)).astype(np.uint64)
            self._recent, self._n_recent = [], 0

    def contains(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, np.uint64)
        found = np.zeros(len(keys), bool)
        if len(self._sorted):
            pos = np.minimum(np.searchsorted(self._sorted, keys), len(self._sorted) - 1)
            found |= self._sorted[pos] == keys
        for recent in self._recent:
            found |= np.isin(keys, recent)
        return found

    def __len__(self) -> int:
        return len(self._sorted) + self._n_recent


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(table: pa.Table, dest: Path) -> None:
    """Write ``table`` to a hidden temporary file beside ``dest``, flush it, then rename it into place."""
    tmp = dest.with_name(f".tmp-{uuid.uuid4().hex}-{dest.name}")
    pq.write_table(table, tmp)
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, dest)
    _fsync_dir(dest.parent)


def _iter_file_column(path: Path) -> Iterable[np.ndarray]:
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=READ_BATCH, columns=["file"]):
        yield keys_of(batch.column(0).to_pylist())


class ResultStore:
    """The results file ``out`` and its work folder ``out.parts`` (see the module docstring)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.parts_dir = self.out.with_name(self.out.name + ".parts")
        self.pending_path = self.parts_dir / PENDING_DIR
        self._lock = None

    def open(self, spec: RowSpec) -> RowSpec:
        """Lock the work folder, tidy what a killed run left, and return the row spec to use: an
        earlier run's (so a resumed run writes the same columns), or ``spec`` for a new file."""
        if self.out.is_dir():
            raise InputError(f"{self.out} is a folder; name a file such as results.parquet.")
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.parts_dir / LOCK_FILE, "w")  # noqa: SIM115 - released in close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            self._lock = None
            raise InputError(f"Another scoring run is writing to {self.out.name}; wait for it to finish.") from None
        for tmp in self.parts_dir.glob(".tmp-*"):
            tmp.unlink()
        stored = self.stored_spec()
        if stored is None:
            (self.parts_dir / META_FILE).write_text(json.dumps(spec_to_dict(spec)))
            return spec
        check_same_model(stored, spec, self.out.name)
        return stored

    def stored_spec(self) -> RowSpec | None:
        meta = self.parts_dir / META_FILE
        if meta.exists():
            return spec_from_dict(json.loads(meta.read_text()))
        if self.out.exists():
            raw = pq.read_schema(self.out).metadata or {}
            if SCHEMA_META_KEY in raw:
                spec = spec_from_dict(json.loads(raw[SCHEMA_META_KEY]))
                meta.write_text(json.dumps(spec_to_dict(spec)))
                return spec
        return None

    def part_files(self) -> list[Path]:
        return sorted(self.parts_dir.glob("part-*.parquet"))

    def done_keys(self) -> KeySet:
        """The keys of every file already in ``out`` or in a committed part."""
        done = KeySet()
        for path in ([self.out] if self.out.exists() else []) + self.part_files():
            for keys in _iter_file_column(path):
                done.add(keys)
        return done

    def commit(self, table: pa.Table) -> None:
        """Add rows as a new part; a part is either wholly there or not at all."""
        if table.num_rows:
            write_atomically(table, self.parts_dir / f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet")

    def finish(self, spec: RowSpec) -> None:
        """Merge ``out`` and the parts into a new ``out`` (atomically), then remove the work folder."""
        schema = spec.schema().with_metadata({SCHEMA_META_KEY: json.dumps(spec_to_dict(spec))})
        parts = self.part_files()
        if parts or not self.out.exists():
            tmp = self.out.with_name(f".tmp-{uuid.uuid4().hex}-{self.out.name}")
            with pq.ParquetWriter(tmp, schema) as writer:
                seen = self._copy_existing(writer, schema)
                for part in parts:
                    table = pq.read_table(part).cast(schema)
                    writer.write_table(table.filter(pa.array(~seen.contains(keys_of(table["file"].to_pylist())))))
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, self.out)
            _fsync_dir(self.out.parent)
        self.close(remove=True)

    def _copy_existing(self, writer: pq.ParquetWriter, schema: pa.Schema) -> KeySet:
        seen = KeySet()
        if self.out.exists():
            for batch in pq.ParquetFile(self.out).iter_batches(batch_size=READ_BATCH):
                table = pa.Table.from_batches([batch]).cast(schema)
                writer.write_table(table)
                seen.add(keys_of(table["file"].to_pylist()))
        return seen

    def close(self, remove: bool = False) -> None:
        if remove:
            for path in self.part_files():
                path.unlink()
            (self.parts_dir / META_FILE).unlink(missing_ok=True)
            shutil.rmtree(self.pending_path, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        if remove:
            shutil.rmtree(self.parts_dir, ignore_errors=True)


def spec_to_dict(spec: RowSpec) -> dict:
    return {
        "model_version": spec.model_version,
        "thresholds": spec.thresholds,
        "hash_paths": spec.hash_paths,
        "default_point": spec.default_point,
        **spec.extra,
    }


def spec_from_dict(raw: dict) -> RowSpec:
    known = ("model_version", "thresholds", "hash_paths", "default_point")
    return RowSpec(
        raw["model_version"],
        dict(raw["thresholds"]),
        bool(raw.get("hash_paths", False)),
        raw.get("default_point", ""),
        {k: v for k, v in raw.items() if k not in known},
    )


def check_same_model(stored: RowSpec, spec: RowSpec, name: str) -> None:
    """A results file holds one model's scores with one way of naming files."""
    if stored.model_version != spec.model_version:
        raise InputError(
            f"{name} holds scores from model {stored.model_version}, not from this model ({spec.model_version}); "
            "write to a new results file."
        )
    if stored.hash_paths != spec.hash_paths:
        how = "hashed" if stored.hash_paths else "plain"
        raise InputError(f"{name} was written with {how} file paths; rerun with the same --hash-paths setting.")


def read_spec(path: str | Path) -> RowSpec | None:
    """The row spec stored in a finished results file (None for a file written elsewhere)."""
    raw = pq.read_schema(path).metadata or {}
    return spec_from_dict(json.loads(raw[SCHEMA_META_KEY])) if SCHEMA_META_KEY in raw else None
