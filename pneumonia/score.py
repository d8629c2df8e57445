"""Score every x-ray of a folder or a CSV list into one parquet file: a row per file, resumable.

    python -m pneumonia.score INPUT --out results.parquet [--engine local|ray] [--address ADDR] [--workers N]

INPUT is a folder (searched recursively for PNG, JPEG, TIFF, BMP and DICOM, with or without a file
extension) or a CSV with a ``path`` column and an optional ``label`` column (1/PNEUMONIA, 0/NORMAL).
Files under NORMAL/ or PNEUMONIA/ folders get that truth. Run the same command again after an
interruption: only the files not yet in the results are scored. Read the results with
``pandas.read_parquet`` or ``python -m pneumonia.evaluate --results results.parquet``.
"""

from __future__ import annotations

import argparse
import sys

EXIT_INPUT, EXIT_WORKER = 2, 3


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="a folder of x-rays, or a CSV listing them")
    p.add_argument("--out", required=True, help="results parquet file (rerun with the same file to resume)")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="local process pool (default) or Ray")
    p.add_argument("--address", default=None, help="a running Ray cluster to join (with --engine ray)")
    p.add_argument("--workers", type=int, default=None, help="worker processes or Ray actors (default: CPU cores)")
    p.add_argument("--model", default=None, help="model folder (default: the shipped models/)")
    p.add_argument(
        "--hash-paths",
        action="store_true",
        help="write the SHA-256 of each file's path instead of the path (when file names carry patient identifiers)",
    )
    p.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    p.add_argument("--part-rows", type=int, default=512, help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from tqdm import tqdm

    from pneumonia.serving.archive.discover import InputError
    from pneumonia.serving.archive.engines import WorkerDied
    from pneumonia.serving.archive.run import ArchiveOptions, score_archive
    from pneumonia.serving.model import DEFAULT_MODEL_DIR

    options = ArchiveOptions(
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        model_dir=args.model or DEFAULT_MODEL_DIR,
        hash_paths=args.hash_paths,
        batch_size=args.batch_size,
        part_rows=args.part_rows,
    )
    bar = tqdm(total=0, unit="image", file=sys.stderr, disable=args.quiet, dynamic_ncols=True, smoothing=0.05)

    def on_start(pending: int, already: int) -> None:
        bar.reset(total=pending)
        if already:
            bar.write(f"{already} files are already in {args.out}; scoring the {pending} others.", file=sys.stderr)

    try:
        summary = score_archive(args.input, args.out, options, on_start=on_start, progress=bar.update)
    except InputError as err:
        bar.close()
        print(f"error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except WorkerDied as err:
        bar.close()
        print(f"error: {err}", file=sys.stderr)
        return EXIT_WORKER
    bar.close()
    print(
        f"Scored {summary.scored_now} files in {summary.seconds:.0f} s; {summary.already_done + summary.scored_now} "
        f"rows in {summary.out}.",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
