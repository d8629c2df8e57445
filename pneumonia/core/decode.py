"""Read an uploaded x-ray (PNG, JPEG, TIFF, BMP or DICOM) into 8-bit grayscale pixels.

Anything that cannot be read safely raises :class:`InvalidImage` with a message meant for the
reader. Only non-identifying metadata is kept: patient names, ids, birth dates and accession
numbers never leave this module.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A 2000x2000 x-ray is 4 MP and large detector images reach about 12 MP; anything past this is
# refused before decoding so a decompression bomb cannot exhaust memory.
MAX_PIXELS = 50_000_000
MIN_SIDE = 64
MAX_BYTES = 100 * 1024 * 1024
DICOM_SUFFIXES = (".dcm", ".dicom")
# DICOM tags that are safe to show: acquisition facts and coarse demographics, not identity
# (age in the DICOM form "006Y"/"018M", and sex; never names, ids, dates or accession numbers).
SAFE_DICOM_TAGS = (
    "PatientAge",
    "PatientSex",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "PhotometricInterpretation",
    "BitsStored",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "Manufacturer",
)

Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class InvalidImage(ValueError):
    """The file cannot be used; ``str(err)`` is a message for the user."""


@dataclass
class XRay:
    """Decoded x-ray: 8-bit grayscale pixels plus safe facts about where they came from."""

    pixels: np.ndarray
    sha256: str
    source_format: str
    metadata: dict = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    pixels_sha256: str = ""  # of the decoded pixels: the same image saved under two names or formats
    # set when ``pixels`` is a reduced decode (JPEG DCT scaling): the file's bytes, for full_pixels()
    source: bytes | None = field(default=None, repr=False)
    _full: np.ndarray | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.pixels.shape[:2]

    @property
    def reduced(self) -> bool:
        """The pixels are a reduced-scale decode, enough for the model; the viewer asks full_pixels()."""
        return self.source is not None

    def full_pixels(self) -> np.ndarray:
        """The pixels at the file's full resolution, decoded on first use (the image on screen only)."""
        if self.source is None:
            return self.pixels
        if self._full is None:
            self._full = load_xray(self.source).pixels
        return self._full


AGE_UNITS_PER_YEAR = {"Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}


def age_in_years(dicom_age: object) -> float | None:
    """A DICOM Age String ("045Y", "018M", "010W", "003D") in years; None when absent or malformed."""
    text = str(dicom_age or "").strip().upper()
    if len(text) < 2 or text[-1] not in AGE_UNITS_PER_YEAR or not text[:-1].isdigit():
        return None
    return int(text[:-1]) / AGE_UNITS_PER_YEAR[text[-1]]


def dicom_context(metadata: dict) -> dict[str, str]:
    """The non-identifying DICOM facts a reader wants beside the image, in words; empty keys left out."""
    age = age_in_years(metadata.get("PatientAge"))
    sex = {"M": "male", "F": "female", "O": "other"}.get(str(metadata.get("PatientSex", "")).strip().upper(), "")
    facts = {
        "Age": "" if age is None else (f"{age:.0f} years" if age >= 2 else f"{age * 12:.0f} months"),
        "Sex": sex,
        "View position": str(metadata.get("ViewPosition", "") or "").strip(),
        "Body part": str(metadata.get("BodyPartExamined", "") or "").strip(),
        "Modality": str(metadata.get("Modality", "") or "").strip(),
    }
    return {k: v for k, v in facts.items() if v}


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_dicom(data: bytes, filename: str) -> bool:
    return data[128:132] == b"DICM" or filename.lower().endswith(DICOM_SUFFIXES)


def to_uint8(arr: np.ndarray, notices: list[str] | None = None) -> np.ndarray:
    """Scale any numeric 2-D array to 8-bit, using its actual range (16-bit PNGs rarely fill 65535)."""
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float64)
    finite = np.isfinite(a)
    if not finite.any():
        raise InvalidImage("The image contains no valid pixel values.")
    lo, hi = np.percentile(a[finite], [0.0, 100.0])
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    if notices is not None and arr.dtype != np.uint8:
        notices.append(f"Converted {arr.dtype} pixels to 8-bit using their range {lo:g}..{hi:g}.")
    a = np.where(finite, a, lo)
    return np.clip((a - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _load_raster(data: bytes, reduce_to: int | None = None) -> XRay:
    """``reduce_to``: a JPEG is decoded at the smallest DCT scale (1/2, 1/4, 1/8) that keeps both
    sides at least this long; other formats decode in full."""
    notices: list[str] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            fmt = img.format or "image"
            w, h = img.size
            if w * h > MAX_PIXELS:
                raise InvalidImage(
                    f"The image is too large to open safely ({w * h / 1e6:.0f} megapixels; the limit is "
                    f"{MAX_PIXELS / 1e6:.0f}). Please export a smaller copy."
                )
            if reduce_to and img.format == "JPEG":
                img.draft(img.mode, (reduce_to, reduce_to))
            img.load()
            reduced = img.size != (w, h)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImage(
            f"The image is too large to open safely (over {MAX_PIXELS / 1e6:.0f} megapixels). "
            "Please export a smaller copy."
        ) from None
    except UnidentifiedImageError:
        raise InvalidImage("The file is not a readable image (PNG, JPEG, TIFF, BMP or DICOM).") from None
    except (OSError, SyntaxError, ValueError):
        raise InvalidImage("The image file is truncated or corrupt and cannot be opened.") from None
    if getattr(img, "n_frames", 1) > 1:
        notices.append(f"The file has {img.n_frames} frames; only the first is shown.")
    orientation = img.getexif().get(0x0112, 1)
    if orientation not in (1, None):
        img = ImageOps.exif_transpose(img)
        notices.append("Rotated according to the image's EXIF orientation.")
    mode = img.mode
    pixels, colourfulness = _grey_pixels(img, notices)
    xray = XRay(pixels, "", fmt, {"format": fmt, "mode": mode, "colourfulness": colourfulness}, notices)
    xray.source = data if reduced else None
    return xray


def _grey_pixels(img: Image.Image, notices: list[str]) -> tuple[np.ndarray, float]:
    """8-bit grey pixels of a decoded image and its colourfulness (0 for a grey-level mode)."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return to_uint8(np.asarray(img), notices), 0.0
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        notices.append("Converted a palette image to grayscale.")
    if img.mode in ("RGBA", "LA", "PA"):
        # Flatten transparency onto black, the background of a radiograph.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
        notices.append("Removed the alpha channel (transparent areas shown as black).")
    if img.mode == "CMYK":
        img = img.convert("RGB")
        notices.append("Converted a CMYK image to grayscale.")
    if img.mode == "L":
        return np.asarray(img), 0.0
    return np.asarray(img.convert("L")), _colourfulness(np.asarray(img.convert("RGB")))


def _colourfulness(rgb: np.ndarray) -> float:
    """Hasler-Suesstrunk colourfulness; about 0 for a grayscale radiograph."""
    r, g, b = (rgb[..., i].astype(np.float32) for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


def _load_dicom(data: bytes) -> XRay:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    notices: list[str] = []
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError, AttributeError) as err:
        raise InvalidImage(f"The DICOM file is corrupt or truncated ({type(err).__name__}).") from None
    meta = {tag: _safe_value(ds.get(tag)) for tag in SAFE_DICOM_TAGS if tag in ds}
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InvalidImage("The DICOM file has no pixel data (it may be a report or a structured document).")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if rows * cols > MAX_PIXELS:
        raise InvalidImage(
            f"The DICOM image is too large to open safely ({rows * cols / 1e6:.0f} megapixels; "
            f"the limit is {MAX_PIXELS / 1e6:.0f})."
        )
    try:
        arr = ds.pixel_array
    except (NotImplementedError, RuntimeError):
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", str(syntax))
        raise InvalidImage(
            f"The DICOM image is compressed as '{name}', which no installed codec can decode on this "
            "workstation. Please export it uncompressed."
        ) from None
    except Exception as err:
        raise InvalidImage(f"The DICOM pixel data is corrupt or truncated ({type(err).__name__}).") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if frames > 1:
        arr = arr[0]
        notices.append(f"The DICOM file has {frames} frames; only the first is used.")
    if samples > 1 or arr.ndim == 3:
        from pydicom.pixels import convert_color_space

        if photometric.startswith("YBR"):
            arr = convert_color_space(arr, photometric, "RGB")
        rgb = np.asarray(arr)
        pixels = np.asarray(Image.fromarray(to_uint8(rgb) if rgb.dtype != np.uint8 else rgb).convert("L"))
        meta["colourfulness"] = _colourfulness(rgb if rgb.dtype == np.uint8 else to_uint8(rgb))
        return XRay(pixels, "", "DICOM", meta, notices)
    arr = apply_modality_lut(arr, ds)
    arr = apply_voi_lut(arr, ds, index=0)
    if photometric == "MONOCHROME1":
        arr = arr.max() - arr + arr.min()
        notices.append("Inverted a MONOCHROME1 image so that bone is bright.")
    pixels = to_uint8(np.asarray(arr), None)
    meta["colourfulness"] = 0.0
    return XRay(pixels, "", "DICOM", meta, notices)


def _safe_value(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, (int, float, str)):
        return value
    return str(value)


def _load_or_refuse(data: bytes, dicom: bool, reduce_to: int | None = None) -> XRay:
    """A damaged file can fail anywhere inside pydicom (it parses elements lazily) or Pillow (a TIFF
    without dimensions raises TypeError): whatever it raises becomes a refusal in words. Found by
    bench/fuzz_decode.py and tests/test_fuzz_decode.py."""
    try:
        return _load_dicom(data) if dicom else _load_raster(data, reduce_to)
    except InvalidImage:
        raise
    except Exception as err:
        kind = "DICOM file" if dicom else "image file"
        raise InvalidImage(f"The {kind} is corrupt or truncated ({type(err).__name__}).") from None


def load_xray(data: bytes, filename: str = "", reduce_to: int | None = None) -> XRay:
    """Decode an uploaded file into an :class:`XRay`, or raise :class:`InvalidImage`. ``reduce_to``
    (pixels): a large JPEG may be decoded at a reduced scale whose sides stay at least this long,
    several times faster; :meth:`XRay.full_pixels` decodes the full resolution when it is needed."""
    if not data:
        raise InvalidImage("The file is empty.")
    if len(data) > MAX_BYTES:
        raise InvalidImage(f"The file is larger than {MAX_BYTES // 2**20} MB.")
    xray = _load_or_refuse(data, _is_dicom(data, filename), reduce_to)
    h, w = xray.pixels.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise InvalidImage(f"The image is too small to read ({w}x{h} pixels; at least {MIN_SIDE} on each side).")
    xray.sha256 = sha256_of(data)
    xray.pixels = np.ascontiguousarray(xray.pixels, dtype=np.uint8)
    xray.pixels_sha256 = sha256_of(f"{h}x{w}:".encode() + xray.pixels.tobytes())
    return xray


def read_file(path: str) -> XRay:
    """Load an x-ray from disk through the same path as an upload."""
    with open(path, "rb") as f:
        return load_xray(f.read(), str(path))
