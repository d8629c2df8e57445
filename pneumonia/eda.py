"""Dataset statistics for the EDA page, computed from a Kaggle-layout folder and shipped in assets/.

python -m pneumonia.eda --data-dir ../shared/data/chest_xray --out assets/
"""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", default="assets")
    args = p.parse_args(argv)
    from pneumonia.insight.eda_summary import summarise, write_summary

    summary, arrays = summarise(args.data_dir)
    summary_path, images_path = write_summary(args.out, summary, arrays)
    print(f"summarised {summary['n_images']} images -> {summary_path}, {images_path}")


if __name__ == "__main__":
    main()
