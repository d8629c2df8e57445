"""Train the lung-field segmenter on the hand-traced films, measure it on held-out ones, export it (issue 19).

    nice -n 10 python bench/train_lung_segmenter.py [--traces assets/lung_fields/traces.jsonl]
        [--epochs 30] [--copies 3] [--holdout 0.2] [--seed 0] [--out models/lung_segmenter.onnx]

Patient-disjoint split stratified by group (pneumonia, normal, hard normal): about a fifth of the
traced films are held out and never trained on. ``--evaluate-only`` measures the exported model again
on every traced film whose patient it was not trained on (films traced after it was trained join them).
The exported ONNX model is measured on them through
the serving code (pneumonia.serving.lung_fields): Dice against the hand traces per group, and the
share of the image the fields cover (truth and estimate). Writes the model, its spec JSON next to it
and bench/results/lung_segmenter.json (figures, held-out file list, loss per epoch).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pneumonia.core.decode import read_file  # noqa: E402
from pneumonia.core.preprocess import InputSpec, to_model_input  # noqa: E402
from pneumonia.serving.lung_fields import MODEL_INPUT_SIZE, SEG_SIZE, LungSegmenter  # noqa: E402
from pneumonia.training.lung_segmenter import (  # noqa: E402
    GROUPS,
    SegmenterTraining,
    dice,
    export_onnx,
    film_fields,
    film_input,
    patient_split,
    polygon_mask,
    read_traces,
    sample_film_names,
    train_segmenter,
)


def per_group(films, values: list[float]) -> dict:
    out = {}
    for group in (*GROUPS, "all"):
        v = [x for f, x in zip(films, values) if group in ("all", f.group)]
        out[group] = (
            {"films": len(v), "mean": round(float(np.mean(v)), 3), "min": round(float(np.min(v)), 3)} if v else None
        )
    return out


def measure(segmenter: LungSegmenter, films, inputs: np.ndarray, truths: np.ndarray) -> dict:
    masks = segmenter.masks(inputs)
    return {
        "dice": per_group(films, [dice(m, t) for m, t in zip(masks, truths)]),
        "area_share_traced": per_group(films, [float(t.mean()) for t in truths]),
        "area_share_segmenter": per_group(films, [float(m.mean()) for m in masks]),
        "per_film": [
            {"file": f.file, "group": f.group, "dice": round(dice(m, t), 3)} for f, m, t in zip(films, masks, truths)
        ],
    }


def cropped_dice(segmenter: LungSegmenter, films, data_dir: Path, crop: float = 0.1) -> dict:
    """Dice on the films cropped by ``crop`` of each side (a tightly framed film), the traces moved with them."""
    inputs, truths = [], []
    for f in films:
        pixels = read_file(str(data_dir / f.file)).pixels
        h, w = pixels.shape
        cut = pixels[int(crop * h) : h - int(crop * h), int(crop * w) : w - int(crop * w)]
        inputs.append(to_model_input(cut, InputSpec(size=MODEL_INPUT_SIZE)))
        moved = [(np.asarray(p) - crop) / (1 - 2 * crop) for p in (f.right_lung, f.left_lung)]
        truths.append(polygon_mask([np.clip(p, 0, 1) for p in moved]))
    masks = segmenter.masks(np.stack(inputs))
    return per_group(films, [dice(m, t) for m, t in zip(masks, truths)])


def write_spec(out: Path, training: dict, held: dict) -> None:
    spec = {
        "input_name": "image",
        "input_size": SEG_SIZE,
        "input_layout": "NHWC (N, 128, 128, 1) float32",
        "input": "the classifier's model input (film squashed to 224x224, 8-bit grey / 255) shrunk to 128x128 "
        "with INTER_AREA (pneumonia.serving.lung_fields.segmenter_input)",
        "output": "probability of lung field per pixel (N, 128, 128, 1), both lungs one class",
        "threshold": 0.5,
        "model_sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "trained_on_films": len(training["files"]),
        "training": {k: training[k] for k in ("epochs", "copies_per_epoch", "seed", "seconds")},
        "held_out_films": held["dice"]["all"]["films"],
        "held_out_dice": {g: v["mean"] for g, v in held["dice"].items() if v},
        "reference": "assets/lung_fields/traces.jsonl (assets/lung_fields/PROTOCOL.md)",
    }
    out.with_suffix(".json").write_text(json.dumps(spec, indent=1) + "\n")


def train_and_export(args: argparse.Namespace, films, inputs: np.ndarray, truths: np.ndarray) -> dict:
    """Train on the patient split's training side, export; the training record (files, settings, loss)."""
    samples = frozenset(sample_film_names(ROOT / "assets" / "samples"))  # always held out: the check without data
    train_idx, _ = patient_split(films, args.holdout, args.seed, samples)
    config = SegmenterTraining(epochs=args.epochs, copies=args.copies, seed=args.seed)
    t0 = time.perf_counter()
    model, losses = train_segmenter(inputs[train_idx], truths[train_idx], config)
    seconds = time.perf_counter() - t0
    print(f"trained on {len(train_idx)} films in {seconds:.0f} s; loss {losses[0]} -> {losses[-1]}")
    export_onnx(model, args.out)
    args.out.with_suffix(".json").write_text(json.dumps({"input_size": SEG_SIZE, "threshold": 0.5}))
    return {
        "files": [films[i].file for i in train_idx],
        "epochs": args.epochs,
        "copies_per_epoch": args.copies,
        "seed": args.seed,
        "seconds": round(seconds),
        "loss_per_epoch": losses,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=Path, default=ROOT / "assets" / "lung_fields" / "traces.jsonl")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "chest_xray")
    p.add_argument("--out", type=Path, default=ROOT / "models" / "lung_segmenter.onnx")
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "lung_segmenter.json")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--copies", type=int, default=3)
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--evaluate-only",
        action="store_true",
        help="measure the exported model again (traces added since it was trained join the held-out films)",
    )
    args = p.parse_args()
    films = read_traces(args.traces)
    inputs = np.stack([film_input(args.data_dir, f) for f in films])
    truths = np.stack([film_fields(f) for f in films])
    previous = json.loads(args.results.read_text()) if args.results.exists() else {}
    training = previous["training"] if args.evaluate_only else train_and_export(args, films, inputs, truths)
    trained_patients = {f.patient_id for f in films if f.file in set(training["files"])}
    held_idx = [i for i, f in enumerate(films) if f.patient_id not in trained_patients]
    train_idx = [i for i, f in enumerate(films) if f.file in set(training["files"])]
    segmenter = LungSegmenter(args.out)
    held_films = [films[i] for i in held_idx]
    held = measure(segmenter, held_films, inputs[held_idx], truths[held_idx])
    held["dice_cropped_10pct_per_side"] = cropped_dice(segmenter, held_films, args.data_dir)
    trained = measure(segmenter, [films[i] for i in train_idx], inputs[train_idx], truths[train_idx])
    write_spec(args.out, training, held)
    result = {
        "held_out": held,
        # the classical segmentation this segmenter replaced, measured on the same held-out films before it was
        # removed (pneumonia/insight/lung_fields.py at commit e3abe40); carried over from run to run
        "classical_lung_mask_on_held_out": previous.get("classical_lung_mask_on_held_out"),
        "training_films": {k: v for k, v in trained.items() if k != "per_film"},
        "training": training,
        "model_bytes": args.out.stat().st_size,
    }
    for k in ("dice", "dice_cropped_10pct_per_side", "area_share_traced", "area_share_segmenter"):
        print(k, json.dumps({g: v and v["mean"] for g, v in held[k].items()}))
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({result['model_bytes'] / 1e6:.2f} MB) and {args.results}")


if __name__ == "__main__":
    main()
