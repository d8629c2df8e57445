"""Score every x-ray of a folder or a CSV list into one parquet file: a row per file, resumable.

    python -m pneumonia.score INPUT --out results.parquet [--engine local|ray] [--address ADDR] [--workers N]

INPUT is a folder (searched recursively for PNG, JPEG, TIFF, BMP and DICOM, with or without a file
extension) or a CSV with a ``path`` column and an optional ``label`` column (1/PNEUMONIA, 0/NORMAL).
Files under NORMAL/ or PNEUMONIA/ folders get that truth. Run the same command again after an
interruption: only the files not yet in the results are scored. Read the results with
``pandas.read_parquet`` or ``python -m pneumonia.evaluate --results results.parquet``.

INPUT may also be a PACS's DICOMweb root (``http://...`` or ``https://...``; sign-in and CA bundle from
the PNEUMONIA_PACS_* environment or PNEUMONIA_PACS_CONFIG, see the README's "Connecting to a PACS"):
every CR/DX instance of the studies the query finds (``--accession``, ``--patient-id``,
``--study-date FROM-TO``) is fetched into memory and scored, a row each with ``file`` = its
SOPInstanceUID; other modalities are left out. ``--push-results`` stores an SR and a heatmap SC per
instance back into its study; a rerun scores and stores only what is missing.
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
    pacs = p.add_argument_group("when INPUT is a PACS (DICOMweb URL)")
    pacs.add_argument("--accession", default=None, help="only the study with this accession number")
    pacs.add_argument("--patient-id", default=None, help="only this patient's studies")
    pacs.add_argument("--study-date", default=None, help="only studies in FROM-TO (YYYYMMDD-YYYYMMDD, inclusive)")
    pacs.add_argument("--push-results", action="store_true", help="store an SR and a heatmap SC per instance")
    pacs.add_argument("--operating-point", default=None, help="the point the SR's result uses (default: the model's)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.input.lower().startswith(("http://", "https://")):
        return score_from_pacs(args)

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


EXIT_PACS = 4  # the PACS could not be used at all


def _pacs_query(args):
    from pneumonia.pacs.dicomweb import StudyQuery, parse_date_range

    dates = parse_date_range(args.study_date) if args.study_date else (None, None)
    return StudyQuery(args.accession, args.patient_id, *dates)


def _pacs_report(summary, query, push: bool) -> str:
    lines = [f"Found {summary.found} chest radiograph(s) (CR/DX) for {query.in_words()}."]
    if summary.skipped_series:
        kinds = ", ".join(f"{n} {m}" for m, n in sorted(summary.skipped_series.items()))
        lines.append(f"Left out series of other modalities (not chest radiographs): {kinds}.")
    lines.append(
        f"Scored {summary.scored_now} ({summary.refused_now} not scored: refused or unreadable) in "
        f"{summary.seconds:.0f} s; {summary.already_done} were already done. Results in {summary.out}."
    )
    if push:
        lines.append(f"Stored results for {summary.pushed} instance(s); {summary.already_in_pacs} already there.")
    return "\n".join(lines + summary.problems)


def score_from_pacs(args) -> int:
    """INPUT is a DICOMweb URL: query, fetch, score, and with --push-results store SR + SC."""
    from tqdm import tqdm

    from pneumonia.pacs.config import PacsConfigError, PacsError, load_config
    from pneumonia.pacs.dicomweb import PacsClient
    from pneumonia.pacs.run import score_pacs
    from pneumonia.pacs.scoring import InstanceScorer
    from pneumonia.serving.archive.discover import InputError
    from pneumonia.serving.model import DEFAULT_MODEL_DIR, Classifier

    try:
        query = _pacs_query(args)
        client = PacsClient(load_config(url=args.input))
        client.check()
        scorer = InstanceScorer(Classifier(args.model or DEFAULT_MODEL_DIR), args.operating_point)
    except (ValueError, PacsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_PACS if isinstance(err, PacsError) and not isinstance(err, PacsConfigError) else EXIT_INPUT
    bar = tqdm(total=None, unit="image", file=sys.stderr, disable=args.quiet, dynamic_ncols=True)
    try:
        summary = score_pacs(client, query, args.out, scorer, push=args.push_results, progress=bar.update)
    except (PacsError, InputError) as err:
        bar.close()
        print(f"error: {err}", file=sys.stderr)
        return EXIT_PACS if isinstance(err, PacsError) else EXIT_INPUT
    bar.close()
    print(_pacs_report(summary, query, args.push_results), file=sys.stderr)
    if summary.stopped_by:
        print(
            f"error: {summary.stopped_by} The rows so far are saved; run the same command again to go on.",
            file=sys.stderr,
        )
    if summary.found == 0:
        print(
            f"error: nothing to score: no chest radiographs (CR/DX) match {query.in_words()} in the PACS at "
            f"{client.config.shown_url}.",
            file=sys.stderr,
        )
        return EXIT_INPUT if not summary.stopped_by else EXIT_PACS
    nothing_done = summary.scored_now + summary.pushed + summary.already_done == 0
    return EXIT_PACS if summary.stopped_by and nothing_done else 0


if __name__ == "__main__":
    sys.exit(main())
