"""Fuzz the x-ray decoder (PNG, JPEG, TIFF, BMP, DICOM) with atheris, coverage-guided.

python bench/fuzz_decode.py [--runs 1000000] [--rss-limit-mb 2048] [--timeout-s 10]

Every input must either decode or raise InvalidImage (a message for the reader): any other
exception is a crash, an input slower than --timeout-s a hang, and memory past --rss-limit-mb a
failure. Seeds are small real-looking images in each format; libFuzzer mutates them. Ends with a
JSON line: runs, seconds, inputs per second, peak RSS, and whether it passed.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
NAMES = ("image.png", "image.jpeg", "image.tif", "image.bmp", "image.dcm", "image")


def seed_images() -> list[bytes]:
    """One small image per format and pixel kind the decoder handles."""
    from PIL import Image

    from tests.dicom_factory import make_dicom

    y, x = np.mgrid[0:64, 0:64]
    gray = ((x * 4 + y * 2) % 256).astype(np.uint8)
    out = []
    for mode, arr in (("L", gray), ("RGB", np.stack([gray] * 3, -1)), ("I;16", gray.astype(np.uint16) * 200)):
        for fmt in ("PNG", "JPEG", "TIFF", "BMP"):
            if (fmt == "JPEG" and mode == "I;16") or (fmt == "BMP" and mode == "I;16"):
                continue
            buf = io.BytesIO()
            Image.fromarray(arr, mode=mode if mode != "I;16" else None).save(buf, format=fmt)
            out.append(buf.getvalue())
    out.append(make_dicom(gray.astype(np.uint16) * 16, bits=12))
    out.append(make_dicom(gray, bits=8, photometric="MONOCHROME1", window=(128, 200)))
    return out


STATE = {"runs": 0, "failed": False, "target": 0, "start": 0.0}


def check_one(data: bytes) -> None:
    """The property: decode or InvalidImage. The first byte picks the file name the decoder is given."""
    from pneumonia.core.decode import InvalidImage, load_xray

    STATE["runs"] += 1
    name = NAMES[data[0] % len(NAMES)] if data else ""
    try:
        load_xray(data[1:], name)
    except InvalidImage:
        pass
    except BaseException:
        STATE["failed"] = True
        raise
    if STATE["runs"] == STATE["target"]:
        report()  # libFuzzer ends the process right after its last run, without atexit handlers


def report() -> None:
    secs = time.perf_counter() - STATE["start"]
    runs = STATE["runs"]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {"runs": runs, "seconds": round(secs), "inputs_per_s": round(runs / secs), "peak_rss_mb": round(rss)}
    print(json.dumps({**figures, "passed": not STATE["failed"]}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=1_000_000)
    p.add_argument("--rss-limit-mb", type=int, default=2048)
    p.add_argument("--timeout-s", type=int, default=10)
    p.add_argument("--max-len", type=int, default=16_384)
    args = p.parse_args()
    import atheris

    with atheris.instrument_imports(include=["pneumonia.core.decode"]):
        import pneumonia.core.decode  # noqa: F401

    corpus = Path(tempfile.mkdtemp(prefix="fuzz-decode-"))
    for i, seed in enumerate(seed_images()):
        (corpus / f"seed{i}").write_bytes(bytes([i % len(NAMES)]) + seed)
    libfuzzer = [
        sys.argv[0],
        f"-runs={args.runs}",
        f"-rss_limit_mb={args.rss_limit_mb}",
        f"-timeout={args.timeout_s}",
        f"-max_len={args.max_len}",
        f"-artifact_prefix={corpus}/",
        "-print_final_stats=1",
        str(corpus),
    ]
    STATE["target"], STATE["start"] = args.runs, time.perf_counter()
    atheris.Setup(libfuzzer, check_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
