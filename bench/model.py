"""Model figures as JSON: file size, parameters, CPU latency, throughput, peak RSS, epoch time.

python bench/model.py [--model models/]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="models")
    p.add_argument("--repeats", type=int, default=50)
    args = p.parse_args()
    import numpy as np

    from pneumonia.serving.model import Classifier

    t0 = time.perf_counter()
    clf = Classifier(args.model)
    load_s = time.perf_counter() - t0
    size = clf.spec.size
    one = np.random.default_rng(0).random((1, size, size, 1)).astype(np.float32)
    for _ in range(5):
        clf.predict(one)
    lat = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        clf.predict(one)
        lat.append(time.perf_counter() - t)
    batch = np.random.default_rng(1).random((64, size, size, 1)).astype(np.float32)
    clf.predict(batch)
    t = time.perf_counter()
    for _ in range(5):
        clf.predict(batch)
    throughput = 5 * 64 / (time.perf_counter() - t)
    meta = clf.metadata
    model_file = Path(args.model) / meta.model_file
    print(
        json.dumps(
            {
                "model_version": clf.version,
                "file_size_mb": round(model_file.stat().st_size / 2**20, 2),
                "parameters": int(clf.keras_model().count_params()),
                "input": f"{size}x{size}x1",
                "load_seconds": round(load_s, 2),
                "predict_latency_ms_median": round(1000 * statistics.median(lat), 1),
                "predict_latency_ms_p90": round(1000 * sorted(lat)[int(0.9 * len(lat))], 1),
                "throughput_images_per_s_batch64": round(throughput, 1),
                "peak_rss_mb_load_and_predict": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "training_seconds_per_epoch": meta.training.get("seconds_per_epoch"),
                "cpu_count": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
