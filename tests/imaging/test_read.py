"""THE image reader: unusual but valid images decode right under each policy; broken files are refused with a reason."""

import io
import os

import numpy as np
import pytest
from PIL import Image

from espcn_lab.imaging.read import (
    ImageError,
    image_extensions,
    list_images,
    read_hr,
    read_image,
)


def decode_rgb(data, **kwargs):
    """The reader as prep uses it: always RGB, alpha on white."""
    return read_image(data, grey="rgb", **kwargs).pixels


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
    with pytest.raises(ImageError) as err:
        decode_rgb(make(png))
    assert err.value.reason == reason


def test_decompression_bombs_are_refused_before_decoding():
    data = _encode(Image.new("L", (300, 200)), "PNG")
    assert decode_rgb(data, max_pixels=60_000).shape == (200, 300, 3)
    with pytest.raises(ImageError, match="exceeds 59999 pixels") as err:
        decode_rgb(data, max_pixels=59_999)
    assert err.value.reason == "decompression_bomb"


def test_policies_keep_grey_and_alpha_when_asked(rng, tmp_path):
    grey = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    wide = Image.fromarray(grey.astype(np.uint16) * 257)  # 16-bit grey: scaled, not clipped to white
    assert np.array_equal(read_image(_encode(wide, "PNG")).pixels, grey)
    la = np.stack([grey, np.full_like(grey, 77)], -1)
    kept = read_image(_encode(Image.fromarray(la, "LA"), "PNG"), alpha="keep").pixels
    assert kept.shape == (5, 7, 2) and np.array_equal(kept, la)
    rgba = rng.integers(0, 256, (4, 6, 4), dtype=np.uint8)
    assert np.array_equal(read_image(_encode(Image.fromarray(rgba), "PNG"), alpha="keep").pixels, rgba)
    assert read_image(_encode(Image.fromarray(rgba), "PNG")).pixels.shape == (4, 6, 3)  # default: on white
    palette = Image.fromarray(np.array([[0, 1]], np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 30, 60, 90] + [0] * 762)
    assert read_image(_encode(palette, "PNG", transparency=0), alpha="keep").pixels[0].tolist() == \
        [[0, 0, 0, 0], [30, 60, 90, 255]]


def test_paths_read_like_bytes_and_exif_rotation_applies_to_both(rng, tmp_path):
    arr = rng.integers(0, 256, (6, 10, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    path.write_bytes(_encode(Image.fromarray(arr), "PNG", exif=exif))  # a PNG named .jpg: the content decides
    assert np.array_equal(read_hr(path), read_image(path.read_bytes()).pixels) and read_hr(path).shape == (10, 6, 3)


def test_fifos_devices_and_links_to_them_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)  # opening it would block forever
    with pytest.raises(ImageError) as err:
        read_image(fifo)
    assert err.value.reason == "not_a_file"
    (tmp_path / "z.png").symlink_to("/dev/zero")  # reading it would never end
    with pytest.raises(ImageError, match="not a regular file"):
        read_image(tmp_path / "z.png")
    Image.new("RGB", (4, 4)).save(tmp_path / "ok.png")
    assert list_images(tmp_path) == [tmp_path / "ok.png"]  # listings leave them out too


def test_multi_frame_files_report_their_frames(tmp_path):
    frames = [Image.new("RGB", (8, 8), (i * 40, 0, 0)) for i in range(3)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50)
    decoded = read_image(tmp_path / "anim.gif")
    assert decoded.frames == 3 and decoded.pixels.shape == (8, 8, 3)


def test_one_extension_list_from_pillow():
    exts = image_extensions()
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".gif"} <= exts
    assert ".pdf" not in exts  # Pillow writes PDFs but cannot read them
