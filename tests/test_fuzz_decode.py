"""A short fuzz run of the decoder in the tests (bench/fuzz_decode.py runs a million inputs):
mutated PNG, JPEG, TIFF, BMP and DICOM bytes either decode or raise InvalidImage, quickly."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz_decode import NAMES, seed_images
from pneumonia.core.decode import InvalidImage, load_xray

SEEDS = seed_images()


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        kind = draw(st.sampled_from(["flip", "insert", "truncate", "overwrite"]))
        if kind == "flip" and data:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "truncate":
            del data[pos:]
        else:
            chunk = draw(st.binary(min_size=1, max_size=8))
            data[pos : pos + len(chunk)] = chunk
    return draw(st.sampled_from(NAMES)), bytes(data)


@settings(max_examples=1000, deadline=2000, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutated())
def test_mutated_images_decode_or_are_refused_in_words(named):
    name, data = named
    try:
        xray = load_xray(data, name)
    except InvalidImage as err:
        assert str(err)  # a message for the reader
    else:
        assert xray.pixels.ndim == 2 and xray.pixels.dtype.name == "uint8"
