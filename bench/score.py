"""Archive scoring figures as JSON: images/s with 1 and 2 workers on each engine, peak memory at
1,000 and 10,000 files (flat), and the projected time for a million images.

python bench/score.py [--data ../shared/data/chest_xray] [--rate-files 400] [--memory-sizes 1000 10000]

The folders are symlinks to the real x-rays of the data set, repeated under new names to reach the
size asked for. The rate is the steady state (first result to last); start-up is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ROOT = Path(__file__).resolve().parent.parent


def make_folder(data: Path, dest: Path, n: int) -> Path:
    sources = sorted(data.glob("train/*/*.jpeg"))
    for i in range(n):
        src = sources[i % len(sources)]
        folder = dest / src.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:07d}_{src.name}").symlink_to(src)
    return dest


def _tree_rss(pid: int) -> int:
    """Resident memory (bytes) of a process and all its descendants (Ray's too)."""
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                stack.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration):
            continue
    return total


class PeakMemory:
    """Samples the RSS of this process and of its whole process tree every 0.2 s."""

    def __init__(self) -> None:
        self.driver = self.tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            self.driver = max(self.driver, _tree_rss_self(me))
            self.tree = max(self.tree, _tree_rss(me))
            time.sleep(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _tree_rss_self(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) * 1024


def run_once(folder: Path, engine: str, workers: int) -> dict:
    from pneumonia.serving.archive.run import ArchiveOptions, score_archive

    times: list[float] = []
    done = {"n": 0}

    def progress(n: int) -> None:
        done["n"] += n
        times.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp, PeakMemory() as mem:
        t0 = time.perf_counter()
        summary = score_archive(
            folder, Path(tmp) / "r.parquet", ArchiveOptions(engine=engine, workers=workers), progress=progress
        )
        total = time.perf_counter() - t0
    first = 32  # the first batch's files include the model start-up
    steady = (summary.scored_now - first) / (times[-1] - times[0]) if len(times) > 1 else float("nan")
    return {
        "engine": engine,
        "workers": workers,
        "files": summary.scored_now,
        "seconds": round(total, 1),
        "startup_s": round(times[0] - t0, 1),
        "images_per_s": round(steady, 1),
        "projected_hours_per_million": round(1e6 / steady / 3600, 1),
        "peak_rss_driver_mb": round(mem.driver / 2**20),
        "peak_rss_all_processes_mb": round(mem.tree / 2**20),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "chest_xray"))
    p.add_argument("--rate-files", type=int, default=400)
    p.add_argument("--memory-sizes", type=int, nargs="*", default=[1000, 10000])
    p.add_argument("--engines", nargs="*", default=["local", "ray"])
    p.add_argument("--memory-workers", type=int, default=2)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_folder(Path(args.data), Path(tmp) / "rate", args.rate_files)
        for engine in args.engines:
            for workers in (1, 2):
                print(json.dumps({"measure": "rate", **run_once(folder, engine, workers)}), flush=True)
        for n in args.memory_sizes:
            folder = make_folder(Path(args.data), Path(tmp) / f"mem{n}", n)
            for engine in args.engines:
                print(json.dumps({"measure": "memory", **run_once(folder, engine, args.memory_workers)}), flush=True)


if __name__ == "__main__":
    main()
