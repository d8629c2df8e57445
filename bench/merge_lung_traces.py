"""Merge the tracers' lung-field files into the repo's reference, checking every line (issue 19).

    python bench/merge_lung_traces.py /work/team/lung_traces/*.jsonl [--out assets/lung_fields/traces.jsonl]

A line is kept when its polygons lie inside the image (fractions 0..1), each lung has >= 6 points and a
plausible area, the patient's right lung lies on the image's left, the film is in the training pool and its
group agrees with its folder (and hard normals with models/hard_normals.csv). A film traced twice keeps
the first tracer's line (files in the order given), and the Dice between the two tracings is reported
(how well two readers agree). Every dropped line is printed with its reason. Each kept line gains
"tracer" (the file's stem). Corrections made by hand afterwards are listed in PROTOCOL.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pneumonia.training.lung_segmenter import dice, polygon_mask, trace_problems  # noqa: E402

KEYS = ("file", "group", "patient_id", "width", "height", "right_lung", "left_lung", "note")


def pool_problems(d: dict, data_dir: Path, hard_normals: set[str]) -> list[str]:
    """Whether the film is a training-pool film of the group it claims."""
    name = str(d.get("file", ""))
    if not name.startswith("train/") or not (data_dir / name).exists():
        return [f"{name!r} is not a film of the training pool"]
    folder = name.split("/")[1]
    group = d.get("group")
    if (group == "pneumonia") != (folder == "PNEUMONIA"):
        return [f"group {group!r} disagrees with the folder {folder}"]
    if (group == "hard_normal") != (name in hard_normals):
        return [f"group {group!r} disagrees with models/hard_normals.csv"]
    return []


def merge(paths: list[Path], data_dir: Path) -> tuple[list[dict], list[str], list[float]]:
    """(kept lines, report lines, Dice of films traced twice)."""
    hard = set(pd.read_csv(ROOT / "models" / "hard_normals.csv").name)
    kept: dict[str, dict] = {}
    report, agreement = [], []
    per_patient: dict[str, int] = {}
    for path in paths:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path.name}:{n}"
            try:
                d = json.loads(line)
            except json.JSONDecodeError as err:
                report.append(f"dropped {where}: not JSON ({err.msg})")
                continue
            problems = pool_problems(d, data_dir, hard) or trace_problems(d)
            if problems:
                report.append(f"dropped {where} {d.get('file')}: " + "; ".join(problems))
                continue
            if d["file"] in kept:
                other = kept[d["file"]]
                a = polygon_mask([other["right_lung"], other["left_lung"]])
                agreement.append(dice(a, polygon_mask([d["right_lung"], d["left_lung"]])))
                report.append(f"duplicate {where} {d['file']} (kept {other['tracer']}'s; Dice {agreement[-1]:.3f})")
                continue
            pid = str(d["patient_id"])
            if per_patient.get(pid, 0) >= 2:
                report.append(f"dropped {where} {d['file']}: a third film of one patient")
                continue
            per_patient[pid] = per_patient.get(pid, 0) + 1
            row = {k: d[k] for k in KEYS if k in d}
            row["right_lung"] = [[round(float(x), 4), round(float(y), 4)] for x, y in d["right_lung"]]
            row["left_lung"] = [[round(float(x), 4), round(float(y), 4)] for x, y in d["left_lung"]]
            kept[d["file"]] = {**row, "tracer": path.stem}
    return list(kept.values()), report, agreement


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data" / "chest_xray")
    p.add_argument("--out", type=Path, default=ROOT / "assets" / "lung_fields" / "traces.jsonl")
    p.add_argument(
        "--second",
        type=Path,
        default=ROOT / "assets" / "lung_fields" / "second_tracings.jsonl",
        help="films traced a second time, blind to the reference: their Dice against it is reported",
    )
    args = p.parse_args()
    kept, report, agreement = merge(args.files, args.data_dir)
    if args.second.exists():
        reference = {d["file"]: d for d in kept}
        for line in args.second.read_text().splitlines():
            d, r = json.loads(line), reference.get(json.loads(line)["file"])
            if r is not None:
                a = polygon_mask([r["right_lung"], r["left_lung"]])
                agreement.append(dice(a, polygon_mask([d["right_lung"], d["left_lung"]])))
                report.append(f"second tracing {d['file']} (reference by {r['tracer']}): Dice {agreement[-1]:.3f}")
    for line in report:
        print(line)
    groups = pd.Series([d["group"] for d in kept]).value_counts().to_dict()
    print(f"kept {len(kept)} films {groups}; {len(report)} lines reported")
    if agreement:
        print(f"films traced twice: {len(agreement)}, mean Dice {sum(agreement) / len(agreement):.3f} (two tracers)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(d) + "\n" for d in kept))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
