"""Finalize the members that pneumonia.train saved in a run folder (RUN/members, run.json,
split.csv): merge them, calibrate, choose operating points, measure, fit the gate and write the
rest of the model folder.

python -m pneumonia.finalize --data-dir DIR --run runs/NAME [--experiment-log models/experiments.csv]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--run", required=True, help="folder with members/, run.json and split.csv from pneumonia.train")
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--experiment-log", default="", help="CSV to append this run's figures to")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pneumonia.training.finalize import finalize_saved_run

    experiment_log = Path(args.experiment_log) if args.experiment_log else None
    finalize_saved_run(Path(args.run), args.data_dir, Path(args.cache_dir), experiment_log)


if __name__ == "__main__":
    main()
