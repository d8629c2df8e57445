"""Contact sheet of the hand-traced lung fields: each film small, squashed to a square as the model
sees it, with a grid every 0.1 of its width and height and its two traced polygons (the patient's right
lung cyan, left lung yellow); optionally the segmenter's outline in magenta for comparison.

    python bench/lung_contact_sheet.py [--traces assets/lung_fields/traces.jsonl]
        [--out assets/lung_fields/contact_sheet.png] [--tile 150] [--columns 10] [--segmenter | --held-out]
        [--only FILE,FILE] [--scale 1]

Written as a palette PNG (128 grey levels and the overlay colours). ``--only`` and ``--tile 600`` draw single films
large, for checking a polygon point by point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pneumonia.core.decode import read_file  # noqa: E402

GREYS = 128  # palette entries 0..127 are grey levels; the overlays have their own entries above
PALETTE = {
    "grid": (60, 110, 60),
    "midline": (100, 170, 100),
    "label": (130, 230, 130),
    "caption": (255, 255, 255),
    "right_lung": (0, 220, 255),
    "left_lung": (255, 230, 0),
    "segmenter": (255, 0, 255),
}  # RGB
INDEX = {name: GREYS + i for i, name in enumerate(PALETTE)}
GROUP_TAGS = {"pneumonia": "P", "normal": "N", "hard_normal": "H"}


def palette() -> list[int]:
    greys = [round(i * 255 / (GREYS - 1)) for i in range(GREYS)]
    flat = [v for g in greys for v in (g, g, g)] + [v for rgb in PALETTE.values() for v in rgb]
    return flat + [0] * (768 - len(flat))


def _grid(img: np.ndarray, side: int) -> None:
    for k in range(1, 10):
        c = int(round(k * side / 10))
        colour = INDEX["midline"] if k == 5 else INDEX["grid"]
        cv2.line(img, (c, 0), (c, side - 1), colour, 1)
        cv2.line(img, (0, c), (side - 1, c), colour, 1)
        if side >= 400:
            cv2.putText(img, f".{k}", (c + 2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, INDEX["label"], 1)
            cv2.putText(img, f".{k}", (2, c - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.35, INDEX["label"], 1)


def tile(data_dir: Path, d: dict, side: int, segmenter=None) -> np.ndarray:
    """One film squashed to side x side (palette indices) with grid, polygons and a caption."""
    pixels = read_file(str(data_dir / d["file"])).pixels
    grey = cv2.resize(pixels, (side, side), interpolation=cv2.INTER_AREA)
    img = np.round(grey.astype(np.float32) * (GREYS - 1) / 255).astype(np.uint8)
    _grid(img, side)
    thick = 1 if side < 400 else 2
    for key in ("right_lung", "left_lung"):
        pts = np.round(np.asarray(d[key]) * side).astype(np.int32)
        cv2.polylines(img, [pts], True, INDEX[key], thick, cv2.LINE_8)
        if side >= 400:
            for x, y in pts:
                cv2.circle(img, (int(x), int(y)), 3, INDEX[key], -1)
    if segmenter is not None:
        from pneumonia.core.preprocess import InputSpec, to_model_input
        from pneumonia.serving.lung_fields import lung_outline

        mask = segmenter.masks(to_model_input(pixels, InputSpec(size=224))[None])[0]
        for outline in lung_outline(mask):
            cv2.polylines(img, [np.round(outline * side).astype(np.int32)], True, INDEX["segmenter"], 1, cv2.LINE_8)
    caption = f"{GROUP_TAGS.get(d['group'], '?')} {Path(d['file']).stem[:18]}"
    cv2.putText(img, caption, (2, side - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.33 * max(1, side / 150), INDEX["caption"], 1)
    return img


def sheet(tiles: list[np.ndarray], columns: int, side: int) -> np.ndarray:
    rows = -(-len(tiles) // columns)
    out = np.zeros((rows * (side + 2), columns * (side + 2)), np.uint8)
    for i, t in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (side + 2) : r * (side + 2) + side, c * (side + 2) : c * (side + 2) + side] = t
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--traces", type=Path, default=ROOT / "assets" / "lung_fields" / "traces.jsonl")
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "chest_xray")
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "lung_fields" / "contact_sheet.png")
    p.add_argument("--tile", type=int, default=150)
    p.add_argument("--columns", type=int, default=10)
    p.add_argument("--only", default="", help="comma-separated file names (or parts of them) to draw")
    p.add_argument("--segmenter", action="store_true", help="also draw the segmenter's outline (magenta)")
    p.add_argument(
        "--held-out",
        action="store_true",
        help="only the films the segmenter was not trained on (bench/results/lung_segmenter.json), with its outline",
    )
    args = p.parse_args()
    traces = [json.loads(line) for line in args.traces.read_text().splitlines() if line.strip()]
    if args.only:
        wanted = args.only.split(",")
        traces = [d for d in traces if any(w in d["file"] for w in wanted)]
    if args.held_out:
        results = json.loads((ROOT / "bench" / "results" / "lung_segmenter.json").read_text())
        held = {f["file"] for f in results["held_out"]["per_film"]}
        traces = [d for d in traces if d["file"] in held]
    segmenter = None
    if args.segmenter or args.held_out:
        from pneumonia.serving.lung_fields import default_segmenter

        segmenter = default_segmenter()
    order = {g: i for i, g in enumerate(GROUP_TAGS)}
    traces.sort(key=lambda d: (order.get(d["group"], 9), d["file"]))
    img = sheet([tile(args.data_dir, d, args.tile, segmenter) for d in traces], args.columns, args.tile)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    out = Image.fromarray(img, mode="P")
    out.putpalette(palette())
    out.save(args.out, optimize=True)
    print(f"wrote {args.out} ({len(traces)} films, {args.out.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
