"""Does the heatmap look at the lungs, and do small changes move the score? (issue 13, item 4)

For pneumonia and normal x-rays of cross-validation fold 0 and the hard normals (models/split.csv):
the share of Grad-CAM (and LayerCAM) mass inside approximate lung fields
(pneumonia.insight.lung_fields, a classical segmentation), the share of images whose hotspot lies
inside them, the masks' mean area (the chance level), and the mean absolute probability shift under
a crop, a blur, two exposures and a resampling. Prints a table, writes JSON.

python bench/heatmap_lungs.py [--data-dir ../shared/data/chest_xray] [--pneumonia 60 --normal 30 --hard 20]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pneumonia.core.decode import read_file  # noqa: E402
from pneumonia.core.preprocess import to_model_input  # noqa: E402
from pneumonia.insight.lung_fields import hotspot_inside, lung_mask, mass_inside  # noqa: E402

PERTURBATIONS = {
    "crop 10% per side": lambda p: p[
        int(0.1 * p.shape[0]) : p.shape[0] - int(0.1 * p.shape[0]),
        int(0.1 * p.shape[1]) : p.shape[1] - int(0.1 * p.shape[1]),
    ],
    "blur (Gaussian sigma 1.5)": lambda p: cv2.GaussianBlur(p, (0, 0), 1.5),
    "exposure (gamma 0.7)": lambda p: _gamma(p, 0.7),
    "exposure (gamma 1.4)": lambda p: _gamma(p, 1.4),
    "resampling (0.5x and back)": lambda p: cv2.resize(
        cv2.resize(p, (p.shape[1] // 2, p.shape[0] // 2), interpolation=cv2.INTER_AREA),
        (p.shape[1], p.shape[0]),
        interpolation=cv2.INTER_LINEAR,
    ),
}


def _gamma(pixels: np.ndarray, gamma: float) -> np.ndarray:
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** gamma + 0.5, 0, 255).astype(np.uint8)
    return cv2.LUT(pixels, lut)


def choose(split_csv: Path, n_pneumonia: int, n_normal: int, n_hard: int, seed: int) -> pd.DataFrame:
    """Fold-0 pneumonia and normal images and hard normals, a seeded sample of each."""
    s = pd.read_csv(split_csv)
    fold0 = s[s.fold == 0]
    groups = {
        "pneumonia": fold0[fold0.label == 1],
        "normal": fold0[(fold0.label == 0) & ~fold0.hard_normal],
        "hard normal": s[s.hard_normal.astype(bool)],
    }
    picked = []
    for (group, frame), n in zip(groups.items(), (n_pneumonia, n_normal, n_hard)):
        picked.append(frame.sample(min(n, len(frame)), random_state=seed).assign(group=group))
    return pd.concat(picked, ignore_index=True)


def heatmap_figures(explainers: dict, inputs: list[np.ndarray], masks: list[np.ndarray]) -> dict[str, list]:
    """Per image and method: mass share inside the mask and whether the hotspot is inside."""
    rows: dict[str, list] = {m: [] for m in explainers}
    for x, mask in zip(inputs, masks):
        for method, explain in explainers.items():
            hm = explain(x)
            usable = not hm.flat and mask.any()
            rows[method].append((mass_inside(hm.cam, mask), hotspot_inside(hm.cam, mask)) if usable else None)
    return rows


def perturbed_probabilities(clf, pixels: list[np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Calibrated probabilities of the images as they are and under each perturbation."""

    def probs(images: list[np.ndarray]) -> np.ndarray:
        batch = np.stack([to_model_input(p, clf.spec) for p in images])
        return np.array([r.probability for r in clf.predict(batch)])

    return probs(pixels), {name: probs([f(p) for p in pixels]) for name, f in PERTURBATIONS.items()}


def _rounded(x: float | None, digits: int = 3) -> float | None:
    return None if x is None else round(float(x), digits)


def summarise_group(sel: np.ndarray, areas: np.ndarray, heat: dict, base: np.ndarray, varied: dict, t: float) -> dict:
    found = sel & (areas > 0)
    g: dict = {"images": int(sel.sum()), "lung_mask_area_fraction_mean": _rounded(np.mean(areas[found]))}
    g["lung_mask_empty"] = int((areas[sel] == 0).sum())  # no plausible lung found; left out above
    for method, rows in heat.items():
        ok = [r for r, s in zip(rows, sel) if s and r is not None and np.isfinite(r[0])]
        g[method] = {
            "mass_in_lungs_mean": _rounded(np.mean([r[0] for r in ok])) if ok else None,
            "hotspot_in_lungs_share": _rounded(np.mean([r[1] for r in ok])) if ok else None,
            "images_used": len(ok),  # flat maps and images without a lung mask left out
        }
    g["probability_mean"] = _rounded(base[sel].mean())
    g["mean_abs_probability_shift"] = {k: _rounded(np.abs(v[sel] - base[sel]).mean()) for k, v in varied.items()}
    g["label_flips_at_default_point"] = {k: int(((v[sel] >= t) != (base[sel] >= t)).sum()) for k, v in varied.items()}
    return g


def run(args: argparse.Namespace) -> dict:
    from pneumonia.serving.explain import explainer_for
    from pneumonia.serving.model import Classifier

    t0 = time.perf_counter()
    chosen = choose(Path(args.model) / "split.csv", args.pneumonia, args.normal, args.hard, args.seed)
    clf = Classifier(args.model)
    pixels = [read_file(str(Path(args.data_dir) / name)).pixels for name in chosen.name]
    inputs = [to_model_input(px, clf.spec) for px in pixels]
    masks = [lung_mask(x) for x in inputs]
    areas = np.array([m.mean() for m in masks])
    explainers = {m: explainer_for(clf, m) for m in args.methods.split(",")}
    heat = heatmap_figures(explainers, inputs, masks)
    base, varied = perturbed_probabilities(clf, pixels)
    threshold = clf.threshold(clf.default_operating_point)
    groups = chosen.group.to_numpy()
    return {
        "model_version": clf.version,
        "note": "lung masks are approximate (classical segmentation, pneumonia.insight.lung_fields); fold-0 "
        "images were in the shipped ensemble's training pool, hard normals were not",
        "default_operating_point": clf.default_operating_point,
        "threshold": round(threshold, 4),
        "groups": {
            g: summarise_group(
                np.ones(len(groups), bool) if g == "all" else groups == g, areas, heat, base, varied, threshold
            )
            for g in ["pneumonia", "normal", "hard normal", "all"]
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }


def print_table(result: dict) -> None:
    groups = result["groups"]
    names = list(groups)
    rows = [("images", [str(groups[g]["images"]) for g in names])]
    rows.append(("lung mask area (chance level)", [f"{groups[g]['lung_mask_area_fraction_mean']:.3f}" for g in names]))
    for method in [
        k for k in groups["all"] if isinstance(groups["all"][k], dict) and "mass_in_lungs_mean" in groups["all"][k]
    ]:
        rows.append((f"{method}: mass in lungs", [f"{groups[g][method]['mass_in_lungs_mean']}" for g in names]))
        rows.append((f"{method}: hotspot in lungs", [f"{groups[g][method]['hotspot_in_lungs_share']}" for g in names]))
    rows.append(("mean probability", [f"{groups[g]['probability_mean']:.3f}" for g in names]))
    for k in PERTURBATIONS:
        rows.append((f"|shift| {k}", [f"{groups[g]['mean_abs_probability_shift'][k]:.3f}" for g in names]))
    width = max(len(r[0]) for r in rows)
    print(f"{'':{width}}  " + "  ".join(f"{n:>11}" for n in names))
    for label, cells in rows:
        print(f"{label:{width}}  " + "  ".join(f"{c:>11}" for c in cells))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    p.add_argument("--model", default=str(ROOT / "models"))
    p.add_argument("--pneumonia", type=int, default=60)
    p.add_argument("--normal", type=int, default=30)
    p.add_argument("--hard", type=int, default=20)
    p.add_argument("--methods", default="gradcam,layercam")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "heatmap_lungs.json"))
    args = p.parse_args()
    result = run(args)
    print_table(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
