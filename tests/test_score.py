"""The archive command: a row per file, resumable after a killed worker or a killed run, the same
probabilities on the local pool and on Ray, and evaluate --results equal to evaluating the folder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.dicom_factory import make_dicom
from tests.helpers import gray_pixels

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "chest_xray"
LABEL_COLUMNS = ["label_high_sensitivity", "label_balanced", "label_high_specificity"]


def _score(*args: str, **kwargs) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pneumonia.score", *args, "--quiet"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, **kwargs)


def _real_images(n: int) -> list[Path]:
    """n real x-rays from the shared data set (val first), half of each class where possible."""
    if not DATA.is_dir():
        pytest.skip(f"the shared data set is not at {DATA}")
    picks = []
    for label in ("NORMAL", "PNEUMONIA"):
        files = sorted((DATA / "val" / label).glob("*.jpeg")) + sorted((DATA / "train" / label).glob("*.jpeg"))
        picks += files[: n // 2]
    return picks


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A site folder in the Kaggle layout: 20 real x-rays under test/{NORMAL,PNEUMONIA}/."""
    root = tmp_path_factory.mktemp("site")
    for p in _real_images(20):
        dest = root / "test" / p.parent.name
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest / p.name)
    return root


@pytest.fixture(scope="module")
def local_results(site, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "results.parquet"
    res = _score(str(site / "test"), "--out", str(out), "--workers", "2", "--batch-size", "4", "--part-rows", "4")
    assert res.returncode == 0, res.stderr
    return out


def test_every_file_gets_a_row_and_a_rerun_scores_nothing(site, local_results):
    df = pd.read_parquet(local_results)
    files = sorted(p.relative_to(site / "test").as_posix() for p in (site / "test").rglob("*.jpeg"))
    assert sorted(df["file"]) == files  # each file exactly once, relative to the input
    assert (df["truth"] == df["file"].str.startswith("PNEUMONIA").astype(int)).all()
    assert df["probability"].between(0, 1).all() and df["sha256"].str.len().eq(64).all()
    assert set(LABEL_COLUMNS) <= set(df.columns) and df["error"].isna().all()
    res = _score(str(site / "test"), "--out", str(local_results))
    assert res.returncode == 0 and "Scored 0 files" in res.stderr
    assert len(pd.read_parquet(local_results)) == len(files)


def test_evaluate_results_equals_evaluate_folder(site, local_results, tmp_path):
    a, b = tmp_path / "results.json", tmp_path / "folder.json"
    run = [sys.executable, "-m", "pneumonia.evaluate", "--out"]
    res = subprocess.run([*run, str(a), "--results", str(local_results)], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    cmd = [*run, str(b), "--data-dir", str(site), "--split", "test"]
    assert subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).returncode == 0
    from_results, from_folder = json.loads(a.read_text()), json.loads(b.read_text())
    assert set(from_results) == set(from_folder)
    for key, value in from_folder.items():
        _assert_same(from_results[key], value, key)


def _assert_same(got, want, key: str) -> None:
    """Equal, floats within 1e-6 (two runs may sum in another order)."""
    if isinstance(want, dict):
        assert set(got) == set(want), key
        for k in want:
            _assert_same(got[k], want[k], f"{key}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), key
        for g, w in zip(got, want):
            _assert_same(g, w, key)
    elif isinstance(want, float):
        assert got == pytest.approx(want, abs=1e-6, nan_ok=True), key
    else:
        assert got == want, key


@pytest.mark.slow
def test_ray_engine_gives_the_same_probabilities(site, local_results, tmp_path):
    out = tmp_path / "ray.parquet"
    res = _score(str(site / "test"), "--out", str(out), "--engine", "ray", "--workers", "2", "--batch-size", "4")
    assert res.returncode == 0, res.stderr
    ray_df = pd.read_parquet(out).sort_values("file").reset_index(drop=True)
    local = pd.read_parquet(local_results).sort_values("file").reset_index(drop=True)
    assert list(ray_df["file"]) == list(local["file"])
    np.testing.assert_allclose(ray_df["probability"], local["probability"], atol=1e-5)
    assert (ray_df[LABEL_COLUMNS] == local[LABEL_COLUMNS]).all().all()


def test_odd_files_csv_lists_and_hashed_paths(classifier, samples, tmp_path):
    """In process with the loaded model: DICOM without an extension, a broken file, a missing file."""
    from pneumonia.serving.archive.run import score_archive

    folder = tmp_path / "archive"
    (folder / "PNEUMONIA").mkdir(parents=True)
    (folder / "1.2.840.113619").write_bytes(make_dicom(gray_pixels(samples[0]), bits=8))
    (folder / "PNEUMONIA" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (folder / "notes.txt").write_text("not an image")
    shutil.copy(samples[1], folder / "PNEUMONIA" / "x.jpeg")
    out = tmp_path / "r.parquet"
    summary = score_archive(folder, out, classifier=classifier)
    df = pd.read_parquet(out).set_index("file")
    assert summary.scored_now == 3 and sorted(df.index) == [
        "1.2.840.113619",
        "PNEUMONIA/broken.png",
        "PNEUMONIA/x.jpeg",
    ]
    assert df.loc["1.2.840.113619", "status"] == "scored" and pd.isna(df.loc["1.2.840.113619", "truth"])
    broken = df.loc["PNEUMONIA/broken.png"]
    assert broken["status"] == "unreadable" and pd.isna(broken["probability"]) and "corrupt" in broken["error"]
    raw = out.read_bytes()
    assert b"MRN-123456" not in raw and b"Doe^Jane" not in raw  # no patient identifiers
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,label\narchive/PNEUMONIA/x.jpeg,PNEUMONIA\n{samples[2]},0\nmissing.jpeg,\n")
    hashed = tmp_path / "hashed.parquet"
    score_archive(listing, hashed, classifier=classifier, options=_options(hash_paths=True))
    df = pd.read_parquet(hashed)
    assert len(df) == 3 and df["file"].str.fullmatch("[0-9a-f]{64}").all()
    assert sorted(df["truth"].dropna().astype(int)) == [0, 1]
    assert (df["error"] == "The file was not found.").sum() == 1


def _options(**kwargs):
    from pneumonia.serving.archive.run import ArchiveOptions

    return ArchiveOptions(**kwargs)


# ---------------------------------------------------------------- killed mid-way, then resumed
def _folder_with_a_stuck_file(root: Path, images: list[Path]) -> tuple[Path, Path]:
    """Real images plus a named pipe: reading it blocks, so the run stalls mid-way, always."""
    for p in images:
        dest = root / p.parent.name
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(p, dest / p.name)
    stuck = root / "NORMAL" / "stuck.jpeg"  # sorts mid-way: after IM-..., before the PNEUMONIA folder
    os.mkfifo(stuck)
    return root, stuck


def _committed_rows(out: Path) -> int:
    parts = sorted(out.with_name(out.name + ".parts").glob("part-*.parquet"))
    return sum(len(pd.read_parquet(p)) for p in parts)


def _start_and_stall(folder: Path, out: Path, workers: int, n_expected: int) -> subprocess.Popen:
    args = ["--out", str(out), "--workers", str(workers), "--batch-size", "2", "--part-rows", "2", "--quiet"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pneumonia.score", str(folder), *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, so the test can kill the whole run
    )
    deadline = time.time() + 180
    while _committed_rows(out) < n_expected:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline, "the run did not get mid-way"
        time.sleep(0.2)
    return proc


def _workers(pid: int) -> list[int]:
    """The pool's worker processes (not multiprocessing's resource tracker)."""
    tasks = Path(f"/proc/{pid}/task")
    children = [int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()]
    return [c for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _resume_and_check(folder: Path, stuck: Path, out: Path, image: Path, reference: pd.DataFrame) -> None:
    assert not out.exists() and 0 < _committed_rows(out) < len(reference)
    stuck.unlink()
    shutil.copy(image, stuck)
    res = _score(str(folder), "--out", str(out), "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert "already in" in res.stderr
    df = pd.read_parquet(out).sort_values("file").reset_index(drop=True)
    assert list(df["file"]) == list(reference["file"])  # every file, once
    np.testing.assert_allclose(df["probability"], reference["probability"], atol=1e-5)
    assert not out.with_name(out.name + ".parts").exists()


@pytest.mark.slow
@pytest.mark.parametrize("kill", ["one worker", "the whole run"])
def test_a_killed_run_resumes_exactly(kill, classifier, tmp_path):
    from pneumonia.serving.archive.run import score_archive

    images = _real_images(12)
    folder, stuck = _folder_with_a_stuck_file(tmp_path / "in", images)
    shutil.copytree(folder, tmp_path / "ref", ignore=lambda d, names: [n for n in names if n == "stuck.jpeg"])
    shutil.copy(images[0], tmp_path / "ref" / "NORMAL" / "stuck.jpeg")
    score_archive(tmp_path / "ref", tmp_path / "ref.parquet", classifier=classifier)
    reference = pd.read_parquet(tmp_path / "ref.parquet").sort_values("file").reset_index(drop=True)
    out = tmp_path / "results.parquet"
    proc = _start_and_stall(folder, out, workers=2, n_expected=len(images) - 4)
    if kill == "one worker":
        os.kill(_workers(proc.pid)[0], signal.SIGKILL)
        assert proc.wait(timeout=60) == 3
        assert "run the same command again" in proc.stderr.read()
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    _resume_and_check(folder, stuck, out, images[0], reference)
