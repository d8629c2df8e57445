"""The shape of the code: short functions, serving without TensorFlow at import, a fast --help."""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FUNCTION_LINES = 60
# Everything a reader's workstation or a report imports before it needs the model.
LIGHT_MODULES = (
    "pneumonia.serving.model",
    "pneumonia.serving.pipeline",
    "pneumonia.serving.explain",
    "pneumonia.serving.lung_fields",
    "pneumonia.serving.metadata",
    "pneumonia.insight.report",
    "pneumonia.insight.artifacts",
    "pneumonia.insight.charts",
    "pneumonia.audit",
    "pneumonia.predict",
    "pneumonia.evaluate",
)


def _python_files() -> list[Path]:
    return [*sorted((ROOT / "pneumonia").rglob("*.py")), *sorted((ROOT / "pages").glob("*.py")), ROOT / "app.py"]


def test_no_function_is_longer_than_60_lines():
    too_long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert not too_long, too_long


def test_serving_and_reports_import_without_tensorflow():
    code = f"import sys; import {', '.join(LIGHT_MODULES)}; print(sorted({{'tensorflow', 'keras'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_predict_help_answers_in_under_two_seconds():
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "pneumonia.predict", "--help"], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert time.perf_counter() - t < 2.0
    assert "--heatmap-dir" in out.stdout and "--operating-point" in out.stdout
