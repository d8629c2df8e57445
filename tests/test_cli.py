"""The predict and evaluate command lines, and a tiny end-to-end training run on real images."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pneumonia.serving.metadata import RUN_ARTIFACTS, read_metadata

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _kaggle_layout(root: Path, samples: list[Path], split: str, copies: int = 1) -> Path:
    """SPLIT/{NORMAL,PNEUMONIA}/ from the real samples; copies get distinct patient ids."""
    for k in range(copies):
        for i, p in enumerate(samples):
            label, subtype, _ = p.name.split("_", 2)
            dest = root / split / label
            dest.mkdir(parents=True, exist_ok=True)
            pid = 100 * k + i
            name = f"IM-{pid:04d}-0001.jpeg" if label == "NORMAL" else f"person{pid}_{subtype}_{pid}.jpeg"
            shutil.copy(p, dest / name)
    return root


def test_predict_cli_reports_each_file(samples, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    missing = tmp_path / "missing.jpeg"
    files = [str(samples[0]), str(bad), str(missing), str(samples[-1])]
    res = _run("pneumonia.predict", *files, "--heatmap-dir", str(tmp_path))
    assert res.returncode == 0, res.stderr
    rows = [json.loads(line) for line in res.stdout.splitlines()]  # every line of stdout is one JSON object
    assert [Path(r["file"]).name for r in rows] == [samples[0].name, "bad.jpg", "missing.jpeg", samples[-1].name]
    good, broken, absent = rows[0], rows[1], rows[2]
    assert set(good) >= {"file", "probability", "label", "threshold", "gate", "error"}
    assert 0 <= good["probability"] <= 1 and good["gate"]["ok"] and good["error"] is None
    assert good["label"] in ("NORMAL", "PNEUMONIA") and Path(good["heatmap"]).exists()
    bacterial = good["subtype"]["bacterial"]
    assert 0 <= bacterial <= 1 and good["subtype"]["viral"] == pytest.approx(1 - bacterial, abs=1e-4)
    assert broken["subtype"] is None and absent["subtype"] is None
    assert broken["probability"] is None and "not a readable image" in broken["error"]
    assert absent["probability"] is None and absent["error"] == "The file was not found."
    assert rows[3]["error"] is None and rows[3]["operating_point"] == "balanced"


def test_predict_cli_custom_threshold_and_unknown_point(samples):
    res = _run("pneumonia.predict", str(samples[0]), "--threshold", "0.25")
    (row,) = [json.loads(line) for line in res.stdout.splitlines()]
    assert row["operating_point"] == "custom" and row["threshold"] == 0.25
    res = _run("pneumonia.predict", str(samples[0]), "--operating-point", "sensitive")
    assert res.returncode == 2 and "unknown operating point 'sensitive'" in res.stderr


def test_evaluate_cli_on_a_kaggle_folder(samples, tmp_path):
    data = _kaggle_layout(tmp_path / "data", samples, "test")
    out, preds = tmp_path / "m.json", tmp_path / "p.csv"
    res = _run(
        "pneumonia.evaluate", "--data-dir", str(data), "--split", "test", "--out", str(out), "--predictions", str(preds)
    )
    assert res.returncode == 0, res.stderr
    m = json.loads(out.read_text())
    for key in (
        "n",
        "accuracy",
        "roc_auc",
        "sensitivity",
        "specificity",
        "precision",
        "f1",
        "threshold",
        "confusion_matrix",
        "ece",
    ):
        assert key in m
    assert m["n"] == len(samples) and np.sum(m["confusion_matrix"]) == len(samples)
    # bacterial (positive) vs viral over the pneumonia samples whose file name gives the subtype
    n_subtyped = sum(1 for p in samples if p.name.startswith("PNEUMONIA"))
    assert m["subtype"]["n"] == n_subtyped and 0 <= m["subtype"]["accuracy"] <= 1 and 0 <= m["subtype"]["roc_auc"] <= 1
    (tn, fp), (fn, tp) = m["confusion_matrix"]
    assert m["accuracy"] == pytest.approx((tn + tp) / len(samples))
    assert len(preds.read_text().splitlines()) == len(samples) + 1


@pytest.mark.slow
def test_tiny_training_run_end_to_end(samples, tmp_path):
    """One epoch per member, two folds, on 40 real images: members, the merged ensemble and its
    artifacts are written, load back and predict both outputs."""
    from pneumonia.serving.model import Classifier
    from pneumonia.train import main as train_main

    data = _kaggle_layout(tmp_path / "data", samples, "train", copies=4)
    out = tmp_path / "models"
    train_main(
        [
            "--data-dir",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--size",
            "64",
            "--folds",
            "2",
            "--hard-normals",
            "",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--experiment-log",
            str(tmp_path / "exp.csv"),
        ]
    )
    for name in RUN_ARTIFACTS:
        assert (out / name).exists(), name
    split = __import__("pandas").read_csv(out / "split.csv")
    assert (split.groupby("patient_id")["fold"].nunique() == 1).all() and set(split["fold"]) == {0, 1}
    assert sorted(p.name for p in (out / "members").glob("*.keras")) == ["seed0_fold0.keras", "seed0_fold1.keras"]
    assert len(Path(tmp_path / "exp.csv").read_text().splitlines()) == 2
    clf = Classifier(out)
    preds = clf.predict(np.random.default_rng(0).random((3, 64, 64, 1)).astype(np.float32))
    assert len(preds) == 3 and all(0 <= p.probability <= 1 for p in preds)
    assert all(0 <= p.bacterial_probability <= 1 and p.ensemble_spread >= 0 for p in preds)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["input_spec"]["size"] == 64 and meta["training"]["epochs_run"] == 1 and meta["members"] == 2
    tm = json.loads((out / "test_metrics.json").read_text())
    assert {"plain", "crop125", "zoomout"} <= set(tm["reframed"]) and "roc_auc" in tm["subtype"]
    # one schema: what the writer wrote is what the loader reads back
    assert read_metadata(out).to_dict() == meta
    assert clf.keras_model().get_layer(meta["last_conv_layer"]) and clf.keras_model().get_layer(meta["logit_layer"])


@pytest.mark.slow
def test_training_on_files_without_a_subtype_serves_pneumonia_only(samples, tmp_path):
    """File names that do not say bacterial or viral: training finishes, and the model gives no subtype."""
    from pneumonia.serving.model import Classifier
    from pneumonia.train import main as train_main

    data = _kaggle_layout(tmp_path / "data", samples, "train", copies=4)
    for i, p in enumerate(sorted((data / "train" / "PNEUMONIA").iterdir())):
        p.rename(p.with_name(f"case{i:03d}.jpeg"))
    out = tmp_path / "models"
    args = ["--data-dir", str(data), "--out", str(out), "--epochs", "1", "--size", "64", "--folds", "2"]
    train_main([*args, "--hard-normals", "", "--cache-dir", str(tmp_path / "cache"), "--experiment-log", ""])
    meta = json.loads((out / "metadata.json").read_text())
    assert "bacterial" not in meta["outputs"] and meta["subtype_calibration"] is None
    assert json.loads((out / "test_metrics.json").read_text())["subtype"] is None
    preds = Classifier(out).predict(np.random.default_rng(0).random((2, 64, 64, 1)).astype(np.float32))
    assert all(p.bacterial_probability is None and 0 <= p.probability <= 1 for p in preds)


def test_predict_cli_writes_the_raw_heatmap(samples, tmp_path):
    res = _run("pneumonia.predict", str(samples[0]), "--heatmap-dir", str(tmp_path), "--heatmap-raw")
    assert res.returncode == 0, res.stderr
    (row,) = [json.loads(line) for line in res.stdout.splitlines()]
    raw = Path(row["heatmap_raw"])
    assert raw.name == f"{samples[0].stem}_gradcam.npy" and raw.parent == tmp_path
    cam = np.load(raw)
    assert cam.dtype == np.float32 and cam.shape == (224, 224)
    assert cam.min() >= 0.0 and cam.max() <= 1.0 and cam.max() > 0
    refused = _run("pneumonia.predict", str(samples[0]), "--heatmap-raw")
    assert refused.returncode == 2 and "--heatmap-raw needs --heatmap-dir" in refused.stderr
