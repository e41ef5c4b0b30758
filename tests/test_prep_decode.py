"""Robust decoding: unusual but valid images become correct RGB; broken files become counted skips."""

import io

import numpy as np
import pytest
from PIL import Image

from espcn_lab.imaging.read import SkipImage, decode_rgb


def _encode(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def test_plain_rgb_png_round_trips(rng):
    arr = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    assert np.array_equal(decode_rgb(_encode(Image.fromarray(arr), "PNG")), arr)


def test_exif_orientation_is_applied(rng):
    arr = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, displayed rotated 90 degrees clockwise
    out = decode_rgb(_encode(Image.fromarray(arr), "PNG", exif=exif))
    assert np.array_equal(out, np.rot90(arr, k=-1))


def test_grayscale_and_16bit_become_gray_rgb(rng):
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    assert np.array_equal(decode_rgb(_encode(Image.fromarray(gray), "PNG")), np.repeat(gray[..., None], 3, 2))
    wide = Image.fromarray(gray.astype(np.uint16) * 257)  # 16-bit PNG with the same levels
    assert wide.mode.startswith("I")
    assert np.array_equal(decode_rgb(_encode(wide, "PNG")), np.repeat(gray[..., None], 3, 2))


def test_alpha_and_palette_transparency_are_composited_on_white():
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)  # opaque red stays red
    rgba[0, 1] = (0, 0, 0, 0)  # fully transparent black becomes white
    rgba[1, :] = (0, 0, 0, 128)  # half transparent black becomes mid gray
    out = decode_rgb(_encode(Image.fromarray(rgba), "PNG"))
    assert out[0, 0].tolist() == [200, 10, 10] and out[0, 1].tolist() == [255, 255, 255]
    assert abs(int(out[1, 0, 0]) - 127) <= 1
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 30, 60, 90] + [0] * 762)
    out = decode_rgb(_encode(palette, "PNG", transparency=0))
    assert out[0].tolist() == [[255, 255, 255], [30, 60, 90]]


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (16, 16), (0, 0, 0, 0))  # no ink = white
    out = decode_rgb(_encode(cmyk, "JPEG", quality=95))
    assert out.shape == (16, 16, 3) and out.min() >= 250


@pytest.mark.parametrize("make,reason", [
    (lambda png: b"", "empty"),
    (lambda png: b"this is a text file, not an image\n" * 3, "not_an_image"),
    (lambda png: png[: len(png) // 2], "truncated"),
    (lambda png: png[:200] + bytes(b ^ 0xFF for b in png[200:400]) + png[400:], "corrupt"),
])
def test_broken_files_are_skipped_with_a_reason(rng, make, reason):
    png = _encode(Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(SkipImage) as err:
        decode_rgb(make(png))
    assert err.value.reason == reason


def test_decompression_bombs_are_refused_before_decoding():
    data = _encode(Image.new("L", (300, 200)), "PNG")
    assert decode_rgb(data, max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(SkipImage, match="decompression_bomb"):
        decode_rgb(data, max_pixels=59_999)
