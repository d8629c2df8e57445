"""The Ray Data engine: the pending file list is read as a Ray dataset and scored by
``map_batches`` with one actor per worker, each actor holding its own classifier.

``address`` joins a running cluster (``ray start --head`` ...); without it a local Ray instance
starts on this machine only (no dashboard, nothing listening beyond localhost). On a cluster,
every node must see the input files, the model folder and this package at the same paths.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa

from pneumonia.serving.archive.discover import Item
from pneumonia.serving.archive.engines import PartSink, Progress, load_classifier, score_items
from pneumonia.serving.archive.rows import RowSpec, to_table

PACKAGE_ROOT = str(Path(__file__).resolve().parents[3])


class RayScorer:
    """A Ray Data actor: loads the classifier once, then scores batches of the pending list."""

    def __init__(self, model_dir: str, spec: RowSpec):
        self.classifier = load_classifier(model_dir)
        self.spec = spec

    def __call__(self, batch: pa.Table) -> pa.Table:
        cols = batch.to_pydict()
        items = [Item(f, p, t) for f, p, t in zip(cols["file"], cols["path"], cols["truth"])]
        return to_table(score_items(self.classifier, items, self.spec), self.spec)


def start_ray(address: str | None, workers: int) -> bool:
    """Connect to ``address``, or start a local Ray; returns whether this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    runtime_env = {"env_vars": {"PYTHONPATH": PACKAGE_ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1"}}
    common = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "runtime_env": runtime_env,
    }
    if address:
        ray.init(address=address, **common)
    else:
        # one CPU per scoring actor plus one for reading the file list; a small object store
        ray.init(
            num_cpus=workers + 1,
            object_store_memory=256 * 2**20,
            _node_ip_address="127.0.0.1",
            **common,
        )
    return True


def run_ray(
    model_dir: str,
    pending_path: Path,
    spec: RowSpec,
    sink: PartSink,
    progress: Progress,
    *,
    workers: int,
    batch_size: int,
    address: str | None = None,
) -> None:
    import ray

    started = start_ray(address, workers)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        # Ray merges the small pending files into one block: split it again (streaming) into blocks of
        # one batch, so that every actor gets work and few rows wait in memory
        pending = ray.data.read_parquet(str(pending_path)).repartition(target_num_rows_per_block=batch_size)
        ds = pending.map_batches(
            RayScorer,
            fn_constructor_kwargs={"model_dir": model_dir, "spec": spec},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            sink.add_table(table)
            progress(table.num_rows)
    finally:
        sink.flush()
        if started:
            ray.shutdown()
