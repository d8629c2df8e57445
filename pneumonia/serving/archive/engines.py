"""Scoring a batch of files, and the engines that run batches: in this process (the page) or on a
local pool of worker processes, each holding its own classifier."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from pneumonia.serving.archive.discover import Item
from pneumonia.serving.archive.rows import RowSpec, result_row, to_table
from pneumonia.serving.pipeline import read_error, score
from pneumonia.serving.results import ImageResult

if TYPE_CHECKING:
    from pneumonia.serving.model import Classifier

Progress = Callable[[int], None]  # called with the number of files just finished


class WorkerDied(RuntimeError):
    """A worker process ended abruptly (killed, or out of memory); finished rows were kept."""


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what native libraries write straight to file descriptor 2 at start-up (it would break
    the progress bar); Python exceptions still propagate."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def load_classifier(model_dir: str) -> Classifier:
    """A classifier for one worker: one thread for the runtime and OpenCV, quietly (the workers are
    the parallelism)."""
    limit_threads()
    from pneumonia.serving.model import Classifier

    with quiet_native_stderr():
        return Classifier(model_dir, threads=1)


def limit_threads() -> None:
    """One thread per worker for OpenMP and OpenCV; the runtime's session gets ``threads=1``."""
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2

    cv2.setNumThreads(1)


def _score_one_by_one(clf: Classifier, named: list[tuple[str, bytes]], threshold: float) -> list[ImageResult]:
    out = []
    for name, data in named:
        try:
            out.extend(score(clf, [(name, data)], threshold))
        except Exception as err:  # one odd file must not stop an archive run
            out.append(ImageResult(name=name, threshold=threshold, error=f"The file could not be scored ({err})."))
    return out


def score_items(clf: Classifier, items: list[Item], spec: RowSpec) -> list[dict]:
    """Read, score and gate a batch of files: one row each, whatever goes wrong with any of them."""
    threshold = spec.thresholds.get(spec.default_point, 0.5)
    rows: list[dict | None] = [None] * len(items)
    named, data_of, index_of = [], {}, []
    for i, item in enumerate(items):
        try:
            data = Path(item.path).read_bytes()
        except OSError as err:
            rows[i] = result_row(item, ImageResult(name=item.file, error=read_error(err)), spec, None)
            continue
        named.append((Path(item.file).name, data))
        data_of[i] = data
        index_of.append(i)
    try:
        results = score(clf, named, threshold)
    except Exception:
        results = _score_one_by_one(clf, named, threshold)
    for i, result in zip(index_of, results):
        rows[i] = result_row(items[i], result, spec, data_of[i])
    return rows


def pending_batches(pending_dir: Path, batch_size: int) -> Iterator[list[Item]]:
    """The pending files in batches, read one small file at a time."""
    for path in sorted(pending_dir.glob("pending-*.parquet")):
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_size):
            cols = batch.to_pydict()
            yield [Item(f, p, t) for f, p, t in zip(cols["file"], cols["path"], cols["truth"])]


class PartSink:
    """Collects rows and commits a part every ``part_rows`` rows (and on flush)."""

    def __init__(self, commit: Callable[[pa.Table], None], spec: RowSpec, part_rows: int):
        self.commit, self.spec, self.part_rows = commit, spec, part_rows
        self._rows: list[dict] = []
        self.written = 0

    def add(self, rows: list[dict]) -> None:
        self._rows.extend(rows)
        if len(self._rows) >= self.part_rows:
            self.flush()

    def add_table(self, table: pa.Table) -> None:
        self.add(table.to_pylist())

    def flush(self) -> None:
        if self._rows:
            self.commit(to_table(self._rows, self.spec))
            self.written += len(self._rows)
            self._rows = []


def run_inline(clf: Classifier, batches: Iterator[list[Item]], spec: RowSpec, sink: PartSink, progress: Progress):
    """Score in this process with an already loaded classifier (the page's small folders)."""
    for batch in batches:
        sink.add(score_items(clf, batch, spec))
        progress(len(batch))
    sink.flush()


_WORKER: dict = {}


def _init_worker(model_dir: str) -> None:
    _WORKER["classifier"] = load_classifier(model_dir)


def _score_in_worker(items: list[Item], spec: RowSpec) -> list[dict]:
    return score_items(_WORKER["classifier"], items, spec)


def _collect(done: set[Future], sink: PartSink, progress: Progress) -> None:
    """Keep the rows of every finished batch, then raise the first failure among them, if any."""
    failure = None
    for fut in done:
        if fut.exception() is not None:
            failure = failure or fut.exception()
            continue
        rows = fut.result()
        sink.add(rows)
        progress(len(rows))
    if failure is not None:
        raise failure


def run_local(
    model_dir: str, batches: Iterator[list[Item]], spec: RowSpec, sink: PartSink, progress: Progress, workers: int
) -> None:
    """A pool of ``workers`` processes (spawned, so none inherits TensorFlow state), the model loaded once in each.
    At most two batches per worker are in flight, so memory does not grow with the archive."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # inherited by the workers: no TensorFlow start-up chatter
    pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _init_worker, (model_dir,))
    inflight: set[Future] = set()
    try:
        for batch in batches:
            if len(inflight) >= 2 * workers:
                done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                _collect(done, sink, progress)
            inflight.add(pool.submit(_score_in_worker, batch, spec))
        while inflight:
            done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
            _collect(done, sink, progress)
    except BrokenProcessPool:
        _collect({f for f in inflight if f.done() and not f.cancelled() and f.exception() is None}, sink, progress)
        raise WorkerDied(
            "A worker process stopped abruptly (it was killed or ran out of memory). The files scored so far are "
            "saved; run the same command again to score the rest."
        ) from None
    finally:
        sink.flush()
        pool.shutdown(wait=False, cancel_futures=True)
