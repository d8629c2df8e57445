"""ONNX Runtime, OpenVINO and LiteRT side by side on the served graph (start-up, ms per image at
batch 1 and 32, peak memory), each in a fresh process, and their agreement with ONNX Runtime.

python bench/runtimes.py [--model models/] [--repeats 30]

The LiteRT file is converted from the Keras model into a temporary folder (TensorFlow's converter);
OpenVINO reads the same model.onnx that ONNX Runtime serves. Prints one JSON object per runtime and
writes bench/results/runtimes.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Each runner: a fresh interpreter that imports the runtime, loads the model, runs once, then times
# batch 1 and batch 32 and reports the process's peak resident memory.
RUNNER = r"""
import json, sys, time
import numpy as np
t0 = time.perf_counter()
kind, path, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
if kind == "onnxruntime":
    import os, onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))  # as pneumonia.serving.runtime sets it
    s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    run = lambda x: s.run(["member_logits"], {name: x})[0]
elif kind == "openvino":
    import openvino as ov
    # f32: on CPUs with bf16 units OpenVINO would otherwise infer in bf16 (logits off by ~0.1)
    compiled = ov.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    out = compiled.output("member_logits")
    run = lambda x: compiled(x)[out]
else:
    from ai_edge_litert.interpreter import Interpreter
    import os
    it = Interpreter(model_path=path, num_threads=len(os.sched_getaffinity(0)))
    inp = it.get_input_details()[0]
    outs = {d["name"]: d for d in it.get_output_details()}
    key = next(k for k, d in outs.items() if len(d["shape"]) == 2 and d["shape"][-1] == 16)
    def run(x):
        if tuple(it.get_input_details()[0]["shape"]) != x.shape:
            it.resize_tensor_input(inp["index"], x.shape); it.allocate_tensors()
        it.set_tensor(inp["index"], x); it.invoke(); return it.get_tensor(outs[key]["index"])
    it.allocate_tensors()
def peak_mb():
    # VmHWM: this process's own high-water mark (ru_maxrss would carry the parent's over the exec)
    line = next(l for l in open("/proc/self/status") if l.startswith("VmHWM"))
    return int(line.split()[1]) // 1024
x1 = np.load(sys.argv[4])[:1]
first = run(x1)
startup = time.perf_counter() - t0
def per_image(x, n):
    times = []
    for _ in range(n):
        t = time.perf_counter(); run(x); times.append(time.perf_counter() - t)
    return 1000 * float(np.median(times)) / len(x)
x32 = np.load(sys.argv[4])[:32]
b1, b32 = per_image(x1, repeats), per_image(x32, max(3, repeats // 6))
logits = np.concatenate([run(x32[i:i+1]) for i in range(8)])
np.save(sys.argv[5], logits)
print(json.dumps({"runtime": kind, "startup_s": round(startup, 2), "ms_per_image_batch1": round(b1, 2),
                  "ms_per_image_batch32": round(b32, 2), "peak_rss_mb": peak_mb()}))
"""


def tflite_file(model_dir: Path, out: Path) -> Path:
    """The served graph converted to LiteRT's format by TensorFlow's converter."""
    import keras
    import tensorflow as tf

    from pneumonia.serving.metadata import read_metadata
    from pneumonia.training.runtime_export import serving_graph

    meta = read_metadata(model_dir)
    graph = serving_graph(keras.models.load_model(model_dir / meta.model_file, compile=False), meta)
    converter = tf.lite.TFLiteConverter.from_keras_model(graph)
    path = out / "model.tflite"
    path.write_bytes(converter.convert())
    return path


def sample_inputs(model_dir: Path, out: Path) -> Path:
    """32 model inputs from the sample x-rays (repeated) as a .npy file."""
    import numpy as np

    from pneumonia.core.decode import read_file
    from pneumonia.core.preprocess import to_model_input
    from pneumonia.serving.metadata import read_metadata

    spec = read_metadata(model_dir).input_spec
    films = [to_model_input(read_file(str(p)).pixels, spec) for p in sorted((ROOT / "assets/samples").glob("*.jpeg"))]
    path = out / "inputs.npy"
    np.save(path, np.stack([films[i % len(films)] for i in range(32)]).astype(np.float32))
    return path


def main() -> None:
    import numpy as np

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(ROOT / "models"))
    p.add_argument("--repeats", type=int, default=30)
    args = p.parse_args()
    model_dir = Path(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        inputs = sample_inputs(model_dir, tmp)
        files = {"onnxruntime": model_dir / "model.onnx", "openvino": model_dir / "model.onnx"}
        files["litert"] = tflite_file(model_dir, tmp)
        for kind, path in files.items():
            cmd = [sys.executable, "-c", RUNNER, kind, str(path), str(args.repeats), str(inputs), str(tmp / kind)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                rows.append({"runtime": kind, "error": done.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
                rows[-1]["file_mb"] = round(path.stat().st_size / 1e6, 2)
        reference = np.load(tmp / "onnxruntime.npy")
        for row in rows:
            if "error" not in row:
                logits = np.load(tmp / f"{row['runtime']}.npy")
                row["max_abs_logit_diff_vs_onnxruntime"] = float(np.abs(logits - reference).max())
    for row in rows:
        print(json.dumps(row))
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "runtimes.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
