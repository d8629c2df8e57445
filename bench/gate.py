"""Chest x-ray gate rates: acceptance on the internal test x-rays, refusal on a set of negatives.

python bench/gate.py [--data-dir ../shared/data/chest_xray]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def negatives() -> list[tuple[str, str, bytes]]:
    """(category, name, bytes): the test negatives plus crops and rotations of the photographs/documents."""
    import numpy as np
    from PIL import Image

    from tests.helpers import encode
    from tests.negatives import colour_photos, document, negative_files

    out = [(kind.rstrip(" 0123456789"), name, data) for kind, (name, data) in negative_files().items()]
    for i, photo in enumerate(colour_photos()):
        h, w = photo.shape[:2]
        for j, (y, x) in enumerate([(0, 0), (0, w // 3), (h // 4, w // 6), (h // 3, w // 3)]):
            crop = photo[y : y + h * 2 // 3, x : x + w * 2 // 3]
            out.append(("colour photograph", f"photo{i}_crop{j}.jpg", encode(crop, "JPEG")))
            gray = np.asarray(Image.fromarray(crop).convert("L"))
            out.append(("grayscale photograph", f"photo{i}_crop{j}_gray.png", encode(gray, "PNG")))
            out.append(("grayscale photograph", f"photo{i}_crop{j}_rot.png", encode(np.rot90(gray).copy(), "PNG")))
    for seed in range(1, 6):
        out.append(("document", f"doc{seed}.png", encode(document(seed), "PNG")))
    rng = np.random.default_rng(5)
    for k in range(4):
        side = int(rng.integers(300, 900))
        out.append(("noise", f"noise{k}.png", encode(rng.integers(0, 256, (side, side), dtype=np.uint8), "PNG")))
        blur = np.clip(rng.normal(120, 60, (side, side)), 0, 255).astype(np.uint8)
        out.append(("noise", f"gnoise{k}.jpg", encode(blur, "JPEG")))
        out.append(("blank", f"blank{k}.png", encode(np.full((side, side), 40 * k + 10, np.uint8), "PNG")))
    return out


def cropped_png(path: str, fraction: float) -> bytes:
    """The file's pixels cropped by ``fraction`` per side, as PNG bytes (a tightly framed film)."""
    from pneumonia.core.decode import read_file
    from pneumonia.core.png import encode_png

    pixels = read_file(path).pixels
    h, w = pixels.shape
    return encode_png(pixels[int(h * fraction) : h - int(h * fraction), int(w * fraction) : w - int(w * fraction)])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    args = p.parse_args()
    import pandas as pd

    from pneumonia.serving.model import Classifier
    from pneumonia.serving.pipeline import score, score_files

    clf = Classifier()
    report: dict = {}
    split_csv = ROOT / "models" / "split.csv"
    data = Path(args.data_dir)
    if split_csv.exists() and data.is_dir():
        split = pd.read_csv(split_csv)
        held = split[split["fold"] <= 0]  # the first member's held-out fold and the hard normals
        paths = [str(data / name) for name in held["name"]]
        res = score_files(clf, paths, 0.5)
        ok = [r.scored for r in res]
        report["held_out_xrays"] = {
            "n": len(ok),
            "accepted": round(sum(ok) / len(ok), 4),
            "refused_files": [Path(r.name).name for r in res if not r.scored][:20],
        }
        cropped = score(clf, [(Path(p).name, cropped_png(p, 0.10)) for p in paths], 0.5)
        report["held_out_xrays_cropped_10pct"] = {
            "n": len(cropped),
            "accepted": round(sum(r.scored for r in cropped) / len(cropped), 4),
        }
    else:
        report["held_out_xrays"] = "data set not found; pass --data-dir"
    by_cat: dict[str, list[bool]] = defaultdict(list)
    items = negatives()
    for (cat, _, _), r in zip(items, score(clf, [(n, d) for _, n, d in items], 0.5)):
        by_cat[cat].append(r.status != "scored")
    report["negatives_refused"] = {c: f"{sum(v)}/{len(v)}" for c, v in sorted(by_cat.items())}
    allv = [x for v in by_cat.values() for x in v]
    report["negatives_refused_overall"] = round(sum(allv) / len(allv), 4)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
