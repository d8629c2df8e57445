"""pneumonia.core.decode: every bad input gets a specific message; odd but valid inputs are converted."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pneumonia.core.decode import MAX_PIXELS, InvalidImage, load_xray
from tests.dicom_factory import make_dicom
from tests.helpers import encode, gray_pixels


@pytest.fixture(scope="module")
def pixels(samples) -> np.ndarray:
    return gray_pixels(samples[0])


def test_reads_real_jpeg(samples):
    x = load_xray(samples[0].read_bytes(), samples[0].name)
    assert x.pixels.dtype == np.uint8 and x.pixels.ndim == 2
    assert min(x.shape) == 320
    assert len(x.sha256) == 64
    assert x.notices == []


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "a.png", "empty"),
        (b"this is a text file, not an image" * 10, "notes.jpg", "not a readable image"),
        (np.random.default_rng(0).bytes(5000), "noise.png", "not a readable image"),
    ],
)
def test_unreadable_files(data, name, message):
    with pytest.raises(InvalidImage, match=message):
        load_xray(data, name)


def test_truncated_jpeg(samples):
    data = samples[0].read_bytes()
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        load_xray(data[: len(data) // 2], "cut.jpeg")


def test_truncated_png(pixels):
    data = encode(pixels, "PNG")
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        load_xray(data[: len(data) // 3], "cut.png")


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a huge size: the decoder must refuse before allocating it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return len(body).to_bytes(4, "big") + kind + body + zlib.crc32(kind + body).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def test_decompression_bomb_is_refused():
    side = int(np.sqrt(MAX_PIXELS)) + 2000
    with pytest.raises(InvalidImage, match="too large"):
        load_xray(_png_header_only(side, side), "bomb.png")


def test_tiny_image_is_refused():
    with pytest.raises(InvalidImage, match="too small"):
        load_xray(encode(np.full((20, 30), 128, np.uint8), "PNG"), "tiny.png")


def test_rgba_palette_cmyk_and_16bit_are_converted(pixels):
    rgba = np.dstack([pixels, pixels, pixels, np.full_like(pixels, 255)])
    x = load_xray(encode(rgba, "PNG"), "a.png")
    assert np.array_equal(x.pixels, pixels)
    assert any("alpha" in n for n in x.notices)

    pal = Image.fromarray(pixels).convert("P")
    buf = io.BytesIO()
    pal.save(buf, format="PNG")
    x = load_xray(buf.getvalue(), "p.png")
    assert any("palette" in n for n in x.notices)
    assert np.abs(x.pixels.astype(int) - pixels).mean() < 3

    cmyk = Image.fromarray(pixels).convert("CMYK")
    buf = io.BytesIO()
    cmyk.save(buf, format="JPEG", quality=95)
    x = load_xray(buf.getvalue(), "c.jpg")
    assert any("CMYK" in n for n in x.notices)
    assert np.corrcoef(x.pixels.ravel(), pixels.ravel())[0, 1] > 0.95

    sixteen = (pixels.astype(np.uint16) * 257).astype(np.uint16)
    x = load_xray(encode(sixteen, "PNG"), "16.png")
    assert np.abs(x.pixels.astype(int) - pixels).max() <= 1
    assert any("8-bit" in n for n in x.notices)


def test_exif_rotation_is_respected(pixels):
    rotated = Image.fromarray(np.ascontiguousarray(np.rot90(pixels, 1)))  # stored sideways
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buf = io.BytesIO()
    rotated.save(buf, format="JPEG", quality=98, exif=exif)
    x = load_xray(buf.getvalue(), "rot.jpg")
    assert x.shape == pixels.shape
    assert np.abs(x.pixels.astype(int) - pixels).mean() < 4
    assert any("EXIF" in n for n in x.notices)


def test_dicom_monochrome1_is_inverted_and_phi_dropped(pixels):
    m2 = load_xray(make_dicom(pixels.astype(np.uint16) * 16, "MONOCHROME2", bits=12), "a.dcm")
    m1 = load_xray(make_dicom((255 - pixels).astype(np.uint16) * 16, "MONOCHROME1", bits=12), "b")
    assert np.abs(m1.pixels.astype(int) - m2.pixels.astype(int)).max() <= 1
    assert any("MONOCHROME1" in n for n in m1.notices)
    text = repr(m1.metadata) + repr(m2.metadata)
    for phi in ("Doe", "MRN-123456", "20200101", "ACC-987"):
        assert phi not in text
    assert m2.metadata["Modality"] == "DX"


def test_dicom_window_and_rescale_applied(pixels):
    raw = pixels.astype(np.uint16) * 16  # 0..4080
    # a window over the lower half of the range saturates the upper half
    x = load_xray(make_dicom(raw, bits=12, window=(1020, 2040)), "w.dcm")
    assert (x.pixels == 255).mean() > (pixels >= 128).mean() * 0.9
    y = load_xray(make_dicom(raw, bits=12, slope=2.0, intercept=-1024), "r.dcm")
    assert np.corrcoef(y.pixels.ravel(), pixels.ravel())[0, 1] > 0.99


def test_dicom_multiframe_uses_first_frame(pixels):
    x = load_xray(make_dicom(pixels, bits=8, frames=3), "multi.dcm")
    assert x.shape == pixels.shape
    assert any("3 frames" in n for n in x.notices)


def test_dicom_without_pixels(pixels):
    with pytest.raises(InvalidImage, match="no pixel data"):
        load_xray(make_dicom(pixels, with_pixels=False), "report.dcm")


def test_truncated_dicom(pixels):
    data = make_dicom(pixels, bits=8)
    with pytest.raises(InvalidImage, match="corrupt or truncated"):
        load_xray(data[: len(data) // 2], "cut.dcm")


def test_compressed_dicom_decodes_with_installed_codec():
    from pydicom.data import get_testdata_file

    path = get_testdata_file("JPEG2000.dcm")  # JPEG 2000, decoded by pylibjpeg-openjpeg
    x = load_xray(Path(path).read_bytes(), "j2k.dcm")
    assert x.pixels.dtype == np.uint8 and x.pixels.std() > 5


def test_missing_codec_is_named(monkeypatch, pixels):
    import pydicom

    data = make_dicom(pixels, bits=8)

    def no_codec(self):
        raise NotImplementedError("Unable to decode pixel data: no plugin available")

    monkeypatch.setattr(pydicom.dataset.Dataset, "pixel_array", property(no_codec))
    with pytest.raises(InvalidImage, match="no installed codec"):
        load_xray(data, "x.dcm")


def test_a_large_jpeg_decodes_at_a_reduced_scale_with_the_same_probability(classifier, samples):
    """A 2000 px JPEG becomes a 224 px input: DCT scaling decodes it at a quarter of the size, the
    viewer still gets every pixel, and the probabilities stay within 1e-3 of a full decode on average
    (3e-3 at most: libjpeg's scaled IDCT is not quite a box filter; 200 films: mean 8e-5, max 4.5e-3)."""
    import cv2

    from pneumonia.core.preprocess import to_model_input

    full_inputs, reduced_inputs = [], []
    for path in samples:
        pixels = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        big = cv2.resize(pixels, (2000, 1700), interpolation=cv2.INTER_CUBIC)
        data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        reduced = load_xray(data, "big.jpg", reduce_to=2 * classifier.spec.size)
        assert reduced.reduced and max(reduced.shape) < 2000 and min(reduced.shape) >= 2 * classifier.spec.size
        full = reduced.full_pixels()
        assert full.shape == (1700, 2000) and reduced.full_pixels() is full  # decoded once
        np.testing.assert_array_equal(full, load_xray(data, "big.jpg").pixels)
        full_inputs.append(to_model_input(full, classifier.spec))
        reduced_inputs.append(to_model_input(reduced.pixels, classifier.spec))
    want = np.array([p.probability for p in classifier.predict(np.stack(full_inputs))])
    got = np.array([p.probability for p in classifier.predict(np.stack(reduced_inputs))])
    np.testing.assert_allclose(got, want, atol=3e-3, rtol=0)
    assert np.abs(got - want).mean() <= 1e-3


def test_small_files_and_other_formats_decode_in_full(samples):
    data = samples[0].read_bytes()
    assert not load_xray(data, samples[0].name, reduce_to=448).reduced  # the samples are small
    png = encode(np.full((900, 900), 90, np.uint8), "PNG")
    assert not load_xray(png, "a.png", reduce_to=224).reduced
