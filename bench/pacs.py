"""Time `python -m pneumonia.score URL --push-results` against a real Orthanc on this machine.

    .venv/bin/python bench/pacs.py [--images 200]

Loads one study of N DX instances made from the sample x-rays (each with its own UIDs) into a fresh
Orthanc on free loopback ports, scores and pushes (SR + heatmap SC each) in this process, then runs
again (nothing new to store); prints the times, images per second and this process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=200)
    args = parser.parse_args()
    from pneumonia import score
    from tests.dicom_factory import make_dicom
    from tests.pacs_studies import PacsStudy, add, grey, load
    from tests.servers.orthanc import running_orthanc

    samples = sorted((ROOT / "assets" / "samples").glob("*.jpeg"))
    study = PacsStudy("ACC-BENCH", "PID-BENCH", "1.2.826.0.1.3680043.8.498.424242", "20240401")
    series = "1.2.826.0.1.3680043.8.498.424243"
    pixels = [grey(p) for p in samples]
    for i in range(args.images):
        add(study, make_dicom(pixels[i % len(pixels)], bits=8, age="003Y", view="PA"), "DX", "bench", series, i + 1)
    with tempfile.TemporaryDirectory() as tmp, running_orthanc(Path(tmp) / "orthanc") as orthanc:
        load(orthanc, study)
        argv = [orthanc.dicomweb_url, "--out", f"{tmp}/r.parquet", "--accession", "ACC-BENCH", "--push-results"]
        t0 = time.perf_counter()
        score.main([*argv, "--quiet"])
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        score.main([*argv, "--quiet"])
        second = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "images": args.images,
        "first_run_s": round(first, 1),
        "images_per_s": round(args.images / first, 1),
        "second_run_s": round(second, 1),
        "peak_rss_mb": round(peak_mb),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
