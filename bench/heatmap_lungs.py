"""Does the heatmap look at the lungs? (issue 19, item 2; first asked in issue 13)

Over a stratified sample of the training pool (models/split.csv: pneumonia, normal and hard-normal
films; films the lung-field segmenter was trained on left out), for each heatmap method: the share
of the map's mass inside the lung fields, whether its hottest point lies inside them, whether that
point lies in the outer 12% of the image's width (arm, axilla, chest wall), the mass in the outer
fifth of the width, beside the chance level (the fields' share of the image). The lung fields are
the segmenter's (pneumonia.serving.lung_fields). On the hand-traced films the same figures are
measured with the traced fields (the truth) and with the segmenter's, so its bias shows.
Grad-CAM runs on the serving runtime in one forward pass (cheap: every sampled film); the
tf-keras-vis methods run on the first ``--slow-films`` films of each group only. The mean absolute
probability shift under a crop, a blur, two exposures and a resampling is measured on the first
``--shift-films`` of each group. Prints a table, writes JSON.

Caveat: every pool film was in the training folds of some ensemble members (the hard normals in none).

    nice -n 10 python bench/heatmap_lungs.py [--pneumonia 1000 --normal 1000 --hard 70]
        [--slow-methods gradcam++,layercam,scorecam --slow-films 15] [--shift-films 60]
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
from pneumonia.insight.heatmap_measures import OUTER_BAND, hotspot_at_edge, hotspot_inside, mass_inside  # noqa: E402
from pneumonia.serving.lung_fields import default_segmenter  # noqa: E402

GROUPS = ("pneumonia", "normal", "hard_normal")
TRACES = ROOT / "assets" / "lung_fields" / "traces.jsonl"
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


def choose(split_csv: Path, counts: dict[str, int], seed: int, exclude: set[str]) -> pd.DataFrame:
    """A seeded sample of pneumonia, normal and hard-normal films of the pool, ``exclude`` left out."""
    s = pd.read_csv(split_csv)
    s = s[~s.name.isin(exclude)]
    frames = {
        "pneumonia": s[s.label == 1],
        "normal": s[(s.label == 0) & ~s.hard_normal.astype(bool)],
        "hard_normal": s[s.hard_normal.astype(bool)],
    }
    picked = [frames[g].sample(min(counts[g], len(frames[g])), random_state=seed).assign(group=g) for g in GROUPS]
    return pd.concat(picked, ignore_index=True)


def gradcam_maps(clf, inputs: np.ndarray) -> list:
    """Grad-CAM of every input from the served graph's patch evidence (batched)."""
    from pneumonia.serving.explain import evidence_heatmap
    from pneumonia.serving.runtime import PATCH_EVIDENCE

    evidence = clf.run_graph(inputs, batch_size=32)[PATCH_EVIDENCE]
    return [evidence_heatmap(e, inputs.shape[1], len(clf.outputs), 0) for e in evidence]


def method_maps(clf, method: str, inputs: np.ndarray) -> list:
    if method == "gradcam":
        return gradcam_maps(clf, inputs)
    from pneumonia.serving.explain import explainer_for

    explain = explainer_for(clf, method)
    return [explain(x) for x in inputs]


def film_measures(maps: list, masks: np.ndarray) -> pd.DataFrame:
    """Per film: mass inside, hotspot inside, hotspot at the edge, mass in the outer fifth (NaN when flat)."""
    rows = []
    fifth = np.zeros(masks.shape[1:], bool)
    fifth[:, : int(0.2 * fifth.shape[1])] = fifth[:, -int(0.2 * fifth.shape[1]) :] = True
    for hm, mask in zip(maps, masks):
        if hm.flat or not mask.any():
            rows.append(
                {"mass_inside": np.nan, "hotspot_inside": np.nan, "hotspot_at_edge": np.nan, "outer_fifth": np.nan}
            )
            continue
        rows.append(
            {
                "mass_inside": mass_inside(hm.cam, mask),
                "hotspot_inside": float(hotspot_inside(hm.cam, mask)),
                "hotspot_at_edge": float(hotspot_at_edge(hm.cam)),
                "outer_fifth": mass_inside(hm.cam, fifth),
            }
        )
    return pd.DataFrame(rows)


def _r(x) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 3)


def summarise(groups: np.ndarray, masks: np.ndarray, measures: dict[str, pd.DataFrame]) -> dict:
    """Per group: films, the fields' mean share of the image (chance) and each method's means."""
    out = {}
    for g in (*GROUPS, "all"):
        sel = np.ones(len(groups), bool) if g == "all" else groups == g
        if not sel.any():
            continue
        entry = {
            "films": int(sel.sum()),
            "fields_share_mean": _r(masks[sel].mean()),
            "empty_fields": int((~masks[sel].any(axis=(1, 2))).sum()),
        }
        for method, m in measures.items():
            used = m[sel].dropna()
            entry[method] = {
                "films": len(used),
                "mass_inside_mean": _r(used.mass_inside.mean()) if len(used) else None,
                "hotspot_inside_share": _r(used.hotspot_inside.mean()) if len(used) else None,
                "hotspot_at_edge_share": _r(used.hotspot_at_edge.mean()) if len(used) else None,
                "mass_outer_fifth_mean": _r(used.outer_fifth.mean()) if len(used) else None,
            }
        out[g] = entry
    return out


def first_of_each_group(groups: np.ndarray, n: int) -> np.ndarray:
    """Indices of the first ``n`` films of each group (the sample is already shuffled)."""
    return np.concatenate([np.nonzero(groups == g)[0][:n] for g in GROUPS]).astype(int)


def measure_methods(clf, methods: list[str], inputs: np.ndarray, masks: dict, subset: np.ndarray) -> dict:
    """{fields name: {method: per-film measures}}; methods other than Grad-CAM on ``subset`` only
    (NaN rows elsewhere)."""
    out: dict = {name: {} for name in masks}
    for method in methods:
        idx = np.arange(len(inputs)) if method == "gradcam" else subset
        maps = method_maps(clf, method, inputs[idx])
        for name, m in masks.items():
            out[name][method] = film_measures(maps, m[idx]).set_index(pd.Index(idx)).reindex(range(len(inputs)))
    return out


def probability_shifts(clf, pixels: list[np.ndarray], groups: np.ndarray) -> dict:
    """Mean absolute shift of the calibrated probability under each perturbation, per group."""

    def probs(images: list[np.ndarray]) -> np.ndarray:
        return np.array([r.probability for r in clf.predict(np.stack([to_model_input(p, clf.spec) for p in images]))])

    base = probs(pixels)
    varied = {name: probs([f(p) for p in pixels]) for name, f in PERTURBATIONS.items()}
    return {
        g: {
            "films": int((groups == g).sum()),
            **{k: _r(np.abs(v - base)[groups == g].mean()) for k, v in varied.items()},
        }
        for g in GROUPS
        if (groups == g).any()
    }


def traced_section(clf, methods: list[str], data_dir: Path, held_out: set[str]) -> dict:
    """The same figures on the hand-traced films: traced fields (truth) and the segmenter's; the
    tf-keras-vis methods on the films held out of the segmenter's training only."""
    from pneumonia.training.lung_segmenter import film_fields, film_input, read_traces

    films = read_traces(TRACES)
    inputs = np.stack([film_input(data_dir, f) for f in films])
    masks = {"traced": np.stack([film_fields(f) for f in films]), "segmenter": default_segmenter().masks(inputs)}
    groups = np.array([f.group for f in films])
    held = np.array([f.file in held_out for f in films])
    measures = measure_methods(clf, methods, inputs, masks, np.nonzero(held)[0])
    out = {"all_traced_films": {"traced": summarise(groups, masks["traced"], measures["traced"])}}
    out["held_out_films"] = {
        name: summarise(
            groups[held], masks[name][held], {k: v[held].reset_index(drop=True) for k, v in measures[name].items()}
        )
        for name in masks
    }
    return out


def run(args: argparse.Namespace) -> dict:
    from pneumonia.serving.model import Classifier

    t0 = time.perf_counter()
    segmenter_results = json.loads((ROOT / "bench" / "results" / "lung_segmenter.json").read_text())
    held_out = {f["file"] for f in segmenter_results["held_out"]["per_film"]}
    trained_on = set(segmenter_results["training"]["files"])
    counts = {"pneumonia": args.pneumonia, "normal": args.normal, "hard_normal": args.hard}
    chosen = choose(Path(args.model) / "split.csv", counts, args.seed, trained_on)
    clf = Classifier(args.model)
    pixels = [read_file(str(Path(args.data_dir) / name)).pixels for name in chosen.name]
    inputs = np.stack([to_model_input(px, clf.spec) for px in pixels])
    masks = default_segmenter().masks(inputs)
    groups = chosen.group.to_numpy()
    methods = ["gradcam", *[m for m in args.slow_methods.split(",") if m]]
    measures = measure_methods(clf, methods, inputs, {"segmenter": masks}, first_of_each_group(groups, args.slow_films))
    shifted = first_of_each_group(groups, args.shift_films)
    segmenter_spec = default_segmenter().spec
    return {
        "model_version": clf.version,
        "segmenter": {
            "sha256": segmenter_spec.get("model_sha256"),
            "held_out_dice": segmenter_spec.get("held_out_dice"),
        },
        "edge_band": OUTER_BAND,
        "note": "training-pool films (every one in some members' training folds; hard normals in none); films the "
        f"segmenter was trained on left out; tf-keras-vis methods on the first {args.slow_films} films of each group; "
        f"lung-gated pooling: {bool(clf.lung_pooling)}",
        "segmenter_fields": {"groups": summarise(groups, masks, measures["segmenter"])},
        "traced_fields": traced_section(clf, methods, Path(args.data_dir), held_out),
        "probability_shift": probability_shifts(clf, [pixels[i] for i in shifted], groups[shifted]),
        "seconds": round(time.perf_counter() - t0, 1),
    }


def table_rows(groups: dict) -> list[tuple[str, list[str]]]:
    names = [g for g in (*GROUPS, "all") if g in groups]
    rows = [("films", [str(groups[g]["films"]) for g in names])]
    rows.append(("fields' share of the image (chance)", [f"{groups[g]['fields_share_mean']}" for g in names]))
    methods = [k for k, v in groups[names[0]].items() if isinstance(v, dict)]
    for method in methods:
        for key, words in (
            ("films", "films"),
            ("mass_inside_mean", "mass inside"),
            ("hotspot_inside_share", "hotspot inside"),
            ("hotspot_at_edge_share", "hotspot at edge"),
            ("mass_outer_fifth_mean", "mass outer fifth"),
        ):
            rows.append((f"{method}: {words}", [f"{groups[g][method][key]}" for g in names]))
    return [("", names), *rows]


def print_table(title: str, groups: dict) -> None:
    rows = table_rows(groups)
    width = max(len(r[0]) for r in rows)
    print(title)
    for label, cells in rows:
        print(f"{label:{width}}  " + "  ".join(f"{c:>11}" for c in cells))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    p.add_argument("--model", default=str(ROOT / "models"))
    p.add_argument("--pneumonia", type=int, default=1000)
    p.add_argument("--normal", type=int, default=1000)
    p.add_argument("--hard", type=int, default=70)
    # every method: on the lung-gated model the gradient differs from cell to cell (the cells' lung weights), so
    # Grad-CAM++ no longer reduces to LayerCAM as it did on the ungated patch-evidence network
    p.add_argument("--slow-methods", default="gradcam++,layercam,scorecam")
    p.add_argument("--slow-films", type=int, default=15, help="films per group for the tf-keras-vis methods")
    p.add_argument("--shift-films", type=int, default=60, help="films per group for the probability shifts")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "heatmap_lungs.json"))
    args = p.parse_args()
    result = run(args)
    print_table("segmenter's lung fields, sampled pool films", result["segmenter_fields"]["groups"])
    for name, groups in result["traced_fields"]["held_out_films"].items():
        print_table(f"held-out traced films, {name} fields", groups)
    print_table("all traced films, traced fields", result["traced_fields"]["all_traced_films"]["traced"])
    print(json.dumps(result["probability_shift"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out} in {result['seconds']} s")


if __name__ == "__main__":
    main()
