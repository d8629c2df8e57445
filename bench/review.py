"""Median time per review stage for one 2000x2000 upload, after warm-up; and time to first result.

python bench/review.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def first_result_seconds() -> tuple[float, float]:
    """A fresh process: import, load the model, score one upload and make its Grad-CAM.
    Returns (seconds inside the process, wall seconds including interpreter start)."""
    code = (
        "import time; t=time.perf_counter();"
        "from pneumonia.serving.model import Classifier; from pneumonia.serving.pipeline import score;"
        "from pneumonia.serving.explain import explainer_for; from pathlib import Path;"
        "c=Classifier(); p=sorted(Path('assets/samples').glob('*.jpeg'))[0];"
        "r=score(c,[(p.name,p.read_bytes())],0.5)[0];"
        "explainer_for(c,'gradcam')(r.model_input);"
        "print(time.perf_counter()-t)"
    )
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=10)
    args = p.parse_args()
    import cv2
    import numpy as np
    from PIL import Image

    from pneumonia.core.decode import load_xray
    from pneumonia.core.preprocess import to_model_input
    from pneumonia.serving.explain import METHODS, explainer_for
    from pneumonia.serving.model import Classifier

    sample = sorted((ROOT / "assets" / "samples").glob("*.jpeg"))[0]
    big = cv2.resize(np.asarray(Image.open(sample).convert("L")), (2000, 2000), interpolation=cv2.INTER_CUBIC)
    buf = io.BytesIO()
    Image.fromarray(big).save(buf, format="PNG")
    data = buf.getvalue()

    clf = Classifier()
    explainers = {m: explainer_for(clf, m) for m in METHODS}
    stages: dict[str, list[float]] = {k: [] for k in ("decode", "preprocess", "predict", "gate", *METHODS)}
    for i in range(args.repeats + 2):  # the first two are warm-up
        t = time.perf_counter()
        xray = load_xray(data, "big.png")
        t1 = time.perf_counter()
        x = to_model_input(xray.pixels, clf.spec)
        t2 = time.perf_counter()
        pred = clf.predict(x[None])[0]
        t3 = time.perf_counter()
        clf.gate.check(xray, x, pred.embedding)
        t4 = time.perf_counter()
        times = {"decode": t1 - t, "preprocess": t2 - t1, "predict": t3 - t2, "gate": t4 - t3}
        for m, e in explainers.items():
            s = time.perf_counter()
            e(x)
            times[m] = time.perf_counter() - s
        if i >= 2:
            for k, v in times.items():
                stages[k].append(v)
    med = {k: round(1000 * statistics.median(v), 1) for k, v in stages.items()}
    first, wall = first_result_seconds()
    print(
        json.dumps(
            {
                "upload": "2000x2000 8-bit PNG",
                "median_ms": med,
                "predict_plus_gradcam_ms": round(med["predict"] + med["gradcam"], 1),
                "decode_to_gradcam_ms": round(
                    sum(med[k] for k in ("decode", "preprocess", "predict", "gate", "gradcam")), 1
                ),
                "first_result_after_start_s": round(first, 2),
                "first_result_process_wall_s": round(wall, 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
