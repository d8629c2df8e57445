"""Finalize the members that pneumonia.train saved in a run folder (RUN/members, run.json,
split.csv): merge them, calibrate, choose operating points, measure, fit the gate and write the
rest of the model folder.

python -m pneumonia.finalize --data-dir DIR --run runs/NAME [--experiment-log models/experiments.csv]
python -m pneumonia.finalize --export-runtime models/    (export the served graph of a finished model
                                                         folder to ONNX again and record it in its metadata)
python -m pneumonia.finalize --lung-gate UNGATED_DIR --data-dir DIR --out models/
                                 (pool the members' cells over the lung fields: variants measured out of
                                 fold, heads refitted, calibration on the shifted set; minutes on 2 CPUs)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir")
    p.add_argument("--run", help="folder with members/, run.json and split.csv from pneumonia.train")
    p.add_argument("--export-runtime", metavar="MODEL_DIR", help="only export MODEL_DIR's served graph to ONNX")
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--experiment-log", default="", help="CSV to append this run's figures to")
    p.add_argument("--lung-gate", metavar="UNGATED_DIR", help="lung-gate the ensemble in UNGATED_DIR into --out")
    p.add_argument("--out", default="models", help="where --lung-gate writes the model folder")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if args.export_runtime:
        export_runtime(Path(args.export_runtime))
        return
    experiment_log = Path(args.experiment_log) if args.experiment_log else None
    if args.lung_gate:
        if not args.data_dir:
            p.error("--lung-gate needs --data-dir (the training pool, to measure and refit on)")
        from pneumonia.training.lung_gating import regate_model_dir

        regate_model_dir(Path(args.lung_gate), args.data_dir, Path(args.cache_dir), Path(args.out), experiment_log)
        return
    if not (args.data_dir and args.run):
        p.error("--data-dir and --run are required (or --export-runtime MODEL_DIR)")
    from pneumonia.training.finalize import finalize_saved_run

    finalize_saved_run(Path(args.run), args.data_dir, Path(args.cache_dir), experiment_log)


def export_runtime(model_dir: Path) -> None:
    """Export and check on the sample x-rays shipped in assets/ (or on noise where there are none)."""
    import numpy as np

    from pneumonia.core.decode import load_xray
    from pneumonia.core.preprocess import to_model_input
    from pneumonia.serving.metadata import read_metadata
    from pneumonia.training.runtime_export import export_model_dir

    spec = read_metadata(model_dir).input_spec
    samples = sorted((Path(__file__).resolve().parents[1] / "assets" / "samples").glob("*.jpeg"))

    inputs = [to_model_input(load_xray(p.read_bytes(), p.name).pixels, spec) for p in samples]
    inputs.append(np.random.default_rng(0).random((spec.size, spec.size, 1), np.float32))
    metadata = export_model_dir(model_dir, np.stack(inputs))
    logging.getLogger(__name__).info("exported %s: %s", metadata.runtime["file"], metadata.runtime)


if __name__ == "__main__":
    main()
