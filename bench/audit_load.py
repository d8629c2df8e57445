"""Several readers saving reads at once: WRITERS processes each append READS reviews through the
app's own audit code (``AuditLog.record``) to one database, all starting together.

Prints one JSON line: the database (password hidden), writers, reads per writer, rows written,
seconds from the common start to the last write, rows per second. Then
``python -m pneumonia.audit verify --url URL`` must report the rows, ok.

python bench/audit_load.py --url postgresql://app:PASSWORD@HOST/DB --writers 8 --reads 100
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pneumonia.audit import AuditLog, AuditUnavailable  # noqa: E402 - after the path is set

START_TIMEOUT_S = 300


def _write(url: str, writer: int, reads: int, start, results) -> None:
    """One reader's process: open the trail, wait for the common start, save ``reads`` reviews."""
    try:
        log = AuditLog(url)
        start.wait(START_TIMEOUT_S)
        rng = random.Random(writer)
        for read in range(reads):
            probability = rng.random()
            log.record(
                image_sha256=hashlib.sha256(f"bench-{writer}-{read}".encode()).hexdigest(),
                model_version="bench",
                operating_point="balanced",
                threshold=0.5,
                heatmap_method="gradcam",
                probability=probability,
                label="PNEUMONIA" if probability >= 0.5 else "NORMAL",
                reader_agrees=rng.random() < 0.9,
                comment=f"bench read {read}",
                reader=f"Bench reader {writer}",
                reader_id=f"bench-subject-{writer}",
                reader_verified=True,
            )
        log.close()
        results.put((writer, reads, None))
    except Exception as error:  # reported by the parent, which fails the run
        results.put((writer, 0, f"{type(error).__name__}: {error}"))


def run(url: str, writers: int, reads: int) -> dict:
    where = AuditLog(url).where  # migrates once before the writers start
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(writers + 1), context.Queue()
    processes = [context.Process(target=_write, args=(url, w, reads, start, results)) for w in range(writers)]
    for process in processes:
        process.start()
    start.wait(START_TIMEOUT_S)
    began = time.perf_counter()
    outcomes = [results.get(timeout=START_TIMEOUT_S) for _ in processes]
    seconds = time.perf_counter() - began
    for process in processes:
        process.join(START_TIMEOUT_S)
    errors = [f"writer {w}: {e}" for w, _, e in outcomes if e]
    rows = sum(n for _, n, _ in outcomes)
    return {
        "database": where,
        "writers": writers,
        "reads_per_writer": reads,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if seconds else None,
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--url", required=True, help="sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB")
    parser.add_argument("--writers", type=int, default=8, help="processes writing at once (default 8)")
    parser.add_argument("--reads", type=int, default=100, help="reviews each writer saves (default 100)")
    args = parser.parse_args()
    if args.writers < 1 or args.reads < 1:
        parser.error("--writers and --reads must be at least 1")
    try:
        figures = run(args.url, args.writers, args.reads)
    except AuditUnavailable as error:
        print(str(error), file=sys.stderr)
        return 2
    print(json.dumps(figures))
    return 1 if figures["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
