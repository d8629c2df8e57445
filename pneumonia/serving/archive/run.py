"""One archive run: find the files, skip those already in the results, score the rest on an
engine, merge. Progress goes to a callback; nothing here prints."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from pneumonia.serving import site_points
from pneumonia.serving.archive.discover import Item, discover
from pneumonia.serving.archive.engines import PartSink, pending_batches, run_inline, run_local
from pneumonia.serving.archive.rows import RowSpec
from pneumonia.serving.archive.store import KeySet, ResultStore, keys_of
from pneumonia.serving.metadata import read_metadata
from pneumonia.serving.model import DEFAULT_MODEL_DIR

if TYPE_CHECKING:
    from pneumonia.serving.model import Classifier

ENGINES = ("local", "ray")
PENDING_SCHEMA = pa.schema([("file", pa.string()), ("path", pa.string()), ("truth", pa.int8())])
DISCOVER_CHUNK = 4096


@dataclass
class ArchiveOptions:
    engine: str = "local"  # "local" or "ray"
    workers: int | None = None  # default: the machine's cores
    address: str | None = None  # a running Ray cluster to join
    model_dir: str | Path = DEFAULT_MODEL_DIR
    hash_paths: bool = False  # write the SHA-256 of each relative path instead of the path
    batch_size: int = 32  # files a worker scores at once
    part_rows: int = 512  # rows per committed part (what a killed run can lose and redo)

    def n_workers(self) -> int:
        return max(1, self.workers or os.cpu_count() or 1)


@dataclass
class ArchiveSummary:
    out: Path
    already_done: int  # rows kept from earlier runs
    scored_now: int  # files scored by this run
    seconds: float


def row_spec(model_dir: str | Path, source: str | Path, hash_paths: bool) -> RowSpec:
    """Model version and a label column per operating point (shipped and this site's), from the metadata."""
    meta = read_metadata(model_dir)
    points = site_points.operating_points(meta)
    src = Path(source).resolve()
    return RowSpec(
        model_version=str(meta.version),
        thresholds={k: float(v["threshold"]) for k, v in points.items()},
        hash_paths=hash_paths,
        default_point=meta.default_operating_point,
        extra={"input_name": src.name, "input_parent": src.parent.name},
    )


def _chunks(items: Iterator[Item], size: int) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fresh(chunk: list[Item], spec: RowSpec, done: KeySet) -> list[Item]:
    """The items of ``chunk`` not yet done (each once), marking them done."""
    keys = keys_of(spec.file_value(it.file) for it in chunk)
    fresh, seen_here = [], set()
    for item, key, is_done in zip(chunk, keys, done.contains(keys)):
        if not is_done and int(key) not in seen_here:
            fresh.append(item)
            seen_here.add(int(key))
    done.add(keys)
    return fresh


def write_pending(items: Iterator[Item], spec: RowSpec, done: KeySet, folder: Path, rows_per_file: int) -> int:
    """Write the files not yet in the results (each once) to small parquet files in ``folder``, so
    that either engine can stream them (and Ray read them in parallel); returns how many."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = 0
    for chunk in _chunks(_fresh_items(items, spec, done), rows_per_file):
        table = pa.Table.from_pylist([it._asdict() for it in chunk], schema=PENDING_SCHEMA)
        pq.write_table(table, folder / f"pending-{n:012d}.parquet")
        n += len(chunk)
    return n


def _fresh_items(items: Iterator[Item], spec: RowSpec, done: KeySet) -> Iterator[Item]:
    for chunk in _chunks(items, DISCOVER_CHUNK):
        yield from _fresh(chunk, spec, done)


def _run_engine(options: ArchiveOptions, store: ResultStore, spec: RowSpec, sink: PartSink, progress, clf) -> None:
    batches = pending_batches(store.pending_path, options.batch_size)
    if clf is not None:
        run_inline(clf, batches, spec, sink, progress)
    elif options.engine == "local":
        run_local(str(options.model_dir), batches, spec, sink, progress, options.n_workers())
    elif options.engine == "ray":
        from pneumonia.serving.archive.ray_engine import run_ray

        run_ray(
            str(options.model_dir),
            store.pending_path,
            spec,
            sink,
            progress,
            workers=options.n_workers(),
            batch_size=options.batch_size,
            address=options.address,
        )
    else:
        raise ValueError(f"unknown engine {options.engine!r}; choose from {', '.join(ENGINES)}")


def score_archive(
    source: str | Path,
    out: str | Path,
    options: ArchiveOptions | None = None,
    *,
    on_start: Callable[[int, int], None] | None = None,
    progress: Callable[[int], None] | None = None,
    classifier: Classifier | None = None,
) -> ArchiveSummary:
    """Score every file of ``source`` not yet in ``out``. ``on_start(pending, already_done)`` is called
    once the files are counted, ``progress(n)`` as files finish. With ``classifier`` the run stays in
    this process (for small folders from the page)."""
    options = options or ArchiveOptions()
    start = time.perf_counter()
    items = discover(source)  # an input that does not exist is refused before anything is written
    store = ResultStore(out)
    spec = store.open(row_spec(options.model_dir, source, options.hash_paths))
    try:
        done = store.done_keys()
        already = len(done)
        pending = write_pending(items, spec, done, store.pending_path, 4 * options.batch_size)
        del done
        if on_start is not None:
            on_start(pending, already)
        sink = PartSink(store.commit, spec, options.part_rows)
        if pending:
            _run_engine(options, store, spec, sink, progress or (lambda n: None), classifier)
        store.finish(spec)
    finally:
        store.close()
    return ArchiveSummary(Path(out), already, sink.written, time.perf_counter() - start)
