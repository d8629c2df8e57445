"""Serving speed against the pipeline a user would otherwise pick (issue 13, item 5).

Each side runs as a whole process (a subprocess, wall clock, cold start included) on the same
x-rays: (a) ``python -m pneumonia.predict FILES --heatmap-dir D`` with the shipped ensemble;
(b) a script written here: Keras ``DenseNet121(weights=None)`` at 224 px (nothing downloaded) scoring
the files, then a tf-keras-vis Grad-CAM (penultimate layer ``relu``) and an overlay PNG per file.
Runs alternate a, b, a, b, ...; prints medians and the ratio a/b (target <= 0.10), writes JSON.

python bench/serving_vs_densenet.py [--data-dir ../shared/data/chest_xray] [--files 30] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.10

BASELINE = """
import sys
from pathlib import Path

import cv2
import keras
import numpy as np
from tf_keras_vis.gradcam import Gradcam
from tf_keras_vis.utils.model_modifiers import ReplaceToLinear
from tf_keras_vis.utils.scores import BinaryScore

out = Path(sys.argv[1])
files = sys.argv[2:]
model = keras.applications.DenseNet121(
    weights=None, input_shape=(224, 224, 3), classes=1, classifier_activation="sigmoid"
)
images = [cv2.imread(f, cv2.IMREAD_GRAYSCALE) for f in files]
small = [cv2.resize(im, (224, 224), interpolation=cv2.INTER_AREA) for im in images]
x = np.stack([cv2.cvtColor(im, cv2.COLOR_GRAY2RGB) for im in small])
x = x.astype(np.float32) / 255.0
probs = model.predict(x, batch_size=8, verbose=0)[:, 0]
gradcam = Gradcam(model, model_modifier=ReplaceToLinear(), clone=True)
for f, im, xi, p in zip(files, images, x, probs):
    cam = gradcam(BinaryScore(True), xi[None], penultimate_layer="relu", seek_penultimate_conv_layer=False)[0]
    cam = cv2.resize(np.nan_to_num(cam).astype(np.float32), im.shape[::-1])
    heat = cv2.applyColorMap(np.uint8(255 * np.clip(cam, 0, 1)), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(heat, 0.4, cv2.cvtColor(im, cv2.COLOR_GRAY2BGR), 0.6, 0)
    cv2.imwrite(str(out / (Path(f).stem + ".png")), blended)
    print(f, float(p))
"""


def choose_files(data_dir: Path, n: int) -> list[str]:
    """Half normal, half pneumonia; the largest images first (the originals, not the 224 px copies)."""
    picked = []
    for label, k in (("NORMAL", n // 2), ("PNEUMONIA", n - n // 2)):
        paths = sorted((data_dir / "train" / label).glob("*.jpeg")) + sorted((data_dir / "val" / label).glob("*.jpeg"))
        sized = sorted(paths[:: max(1, len(paths) // 400)], key=lambda p: -p.stat().st_size)
        picked += [str(p) for p in sized[:k]]
    return picked


def timed(cmd: list[str], expected_outputs: int, out_dir: Path) -> float:
    """Wall-clock seconds of one whole process; checks it wrote a PNG per file."""
    for old in out_dir.glob("*.png"):
        old.unlink()
    t = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{done.stderr[-2000:]}")
    written = len(list(out_dir.glob("*.png")))
    if written != expected_outputs:
        raise RuntimeError(f"{cmd[:4]} wrote {written} heatmaps for {expected_outputs} files")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    p.add_argument("--files", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--model", help="model folder for pneumonia.predict (default: the shipped models/)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "serving_vs_densenet.json"))
    args = p.parse_args()
    files = choose_files(Path(args.data_dir), args.files)
    sizes = [cv2.imread(f, cv2.IMREAD_GRAYSCALE).shape for f in files]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "ours").mkdir()
        (tmp / "densenet").mkdir()
        script = tmp / "densenet_gradcam.py"
        script.write_text(BASELINE)
        ours = [sys.executable, "-m", "pneumonia.predict", *files, "--heatmap-dir", str(tmp / "ours")]
        ours += ["--model", args.model] if args.model else []
        baseline = [sys.executable, str(script), str(tmp / "densenet"), *files]
        times: dict[str, list[float]] = {"pneumonia.predict": [], "densenet121_gradcam": []}
        for _ in range(args.repeats):
            times["pneumonia.predict"].append(timed(ours, len(files), tmp / "ours"))
            times["densenet121_gradcam"].append(timed(baseline, len(files), tmp / "densenet"))
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["pneumonia.predict"] / med["densenet121_gradcam"]
    result = {
        "model": args.model or "models/ (shipped)",
        "files": len(files),
        "image_sizes_hxw": {"min": list(min(sizes)), "max": list(max(sizes, key=lambda s: s[0] * s[1]))},
        "repeats": args.repeats,
        "cpu_cores": os.cpu_count(),
        "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "median_seconds": {k: round(v, 2) for k, v in med.items()},
        "ratio_ours_over_densenet": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
    }
    for k, v in med.items():
        print(f"{k:22} median {v:6.1f} s  runs {', '.join(f'{x:.1f}' for x in times[k])}")
    print(f"ratio {ratio:.3f} (target <= {TARGET_RATIO})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
