"""Render time of each page with AppTest: the first run (cold caches) and the median of later runs.

python bench/pages.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PNEUMONIA_AUDIT_DB", str(Path(tempfile.mkdtemp()) / "audit.sqlite"))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from streamlit.testing.v1 import AppTest

    out = {}
    for page in ("review.py", "eda.py", "performance.py", "model_card.py"):
        times = []
        for _ in range(args.repeats + 1):
            at = AppTest.from_file(str(ROOT / "pages" / page), default_timeout=300)
            t = time.perf_counter()
            at.run()
            if page == "review.py":
                at.selectbox(key="sample").select_index(1).run()
            times.append(time.perf_counter() - t)
            assert not at.exception, [e.value for e in at.exception]
        out[page] = {"first_s": round(times[0], 2), "later_median_s": round(statistics.median(times[1:]), 2)}
    print(json.dumps({"note": "review.py includes scoring a sample and its Grad-CAM", "pages": out}, indent=2))


if __name__ == "__main__":
    main()
