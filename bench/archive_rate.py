"""The archive at the hardware's rate: `python -m pneumonia.score` on 624 Kermany-size JPEGs as a
whole process (start-up included), then the rerun of the finished run.

python bench/archive_rate.py [--data ../shared/data/chest_xray] [--n 624] [--workers 2]

The shared data set holds most films as small copies; each is brought back to its original size
(manifest's orig_width x orig_height, else 1800 px on the long side) and saved as a JPEG at quality
92, as the Kermany files are. Prints one JSON line with seconds, images/s and the rerun's seconds.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent


def kermany_size_folder(data: Path, dest: Path, n: int) -> Path:
    """``n`` training films at their original size, under NORMAL/ and PNEUMONIA/."""
    with open(data.parent / "manifest.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "train"]
    rows = sorted(rows, key=lambda r: r["filename"])[:: max(1, len(rows) // n)][:n]
    for r in rows:
        pixels = cv2.imread(str(data / "train" / r["label"] / r["filename"]), cv2.IMREAD_GRAYSCALE)
        h, w = pixels.shape
        size = (int(r["orig_width"]), int(r["orig_height"])) if r["orig_width"] else (1800, round(1800 * h / w))
        folder = dest / r["label"]
        folder.mkdir(parents=True, exist_ok=True)
        big = cv2.resize(pixels, size, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / r["filename"]), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    return dest


def timed_score(folder: Path, out: Path, workers: int) -> float:
    cmd = [sys.executable, "-m", "pneumonia.score", str(folder), "--out", str(out), "--workers", str(workers)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    p.add_argument("--n", type=int, default=624)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = kermany_size_folder(Path(args.data), Path(tmp) / "films", args.n)
        megapixels = sum(cv2.imread(str(f), cv2.IMREAD_GRAYSCALE).size for f in folder.rglob("*.jpeg")) / 1e6 / args.n
        first = timed_score(folder, Path(tmp) / "r.parquet", args.workers)
        rerun = timed_score(folder, Path(tmp) / "r.parquet", args.workers)
    load = os.getloadavg()[0]
    print(
        json.dumps(
            {
                "files": args.n,
                "mean_megapixels": round(megapixels, 2),
                "workers": args.workers,
                "seconds": round(first, 1),
                "images_per_s": round(args.n / first, 1),
                "rerun_seconds": round(rerun, 2),
                "load_average_1min_after": round(load, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
