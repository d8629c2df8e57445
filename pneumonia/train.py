"""Train the CNN from scratch on a folder in the Kaggle layout and write the models/ artifacts.

python -m pneumonia.train --data-dir ../shared/data/chest_xray --out models/
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
from pathlib import Path

from pneumonia.training.fit import TrainingConfig

DEFAULTS = TrainingConfig()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder with SPLIT/{NORMAL,PNEUMONIA}/ images")
    p.add_argument("--out", default="models", help="artifact folder (default models/)")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs)
    p.add_argument("--size", type=int, default=DEFAULTS.size, help="square input size in pixels")
    p.add_argument("--clahe", action="store_true", help="apply CLAHE contrast normalisation")
    p.add_argument("--widths", default=DEFAULTS.widths, help="channels of the residual blocks")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size)
    p.add_argument("--lr", type=float, default=DEFAULTS.lr)
    p.add_argument("--label-smoothing", type=float, default=DEFAULTS.label_smoothing)
    p.add_argument("--augment", type=float, default=DEFAULTS.augment, help="augmentation strength (0 = off)")
    p.add_argument("--patience", type=int, default=DEFAULTS.patience, help="early-stopping patience on validation AUC")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed)
    p.add_argument("--limit", type=int, default=DEFAULTS.limit, help="use only N images per part (smoke tests)")
    p.add_argument("--cache-dir", default="cache")
    p.add_argument("--note", default=DEFAULTS.note, help="free text stored in the experiment log")
    p.add_argument("--experiment-log", default="models/experiments.csv", help="CSV log of runs ('' = none)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from pneumonia.training.finalize import finalize
    from pneumonia.training.fit import train

    config = TrainingConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig)})
    command = "python -m pneumonia.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    out = Path(args.out)
    run = train(config, args.data_dir, out, command, Path(args.cache_dir))
    experiment_log = Path(args.experiment_log) if args.experiment_log else None
    finalize(run.model, run.manifest, run.x_all, run.parts, run.spec, run.run_info, out, experiment_log)


if __name__ == "__main__":
    main()
