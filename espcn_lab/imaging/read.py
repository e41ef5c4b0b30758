"""THE image reader: every command (prep, validation, eval, refit, upscale, figures, video frames) decodes
image files here, by the same rules, with one list of extensions.

Rules: EXIF orientation is applied; CMYK, YCbCr, palette and 1-bit images become RGB or L; 16-bit
and 32-bit images are scaled to 8 bits (``round(v / 257)``; float images are read as 0-255); only the
first frame of a multi-frame file is read (``DecodedImage.frames`` says how many there are).
Two policies are parameters: ``alpha`` ("white": composited over white, as a viewer shows it on a
white page; "keep": an extra channel, for ``upscale``) and ``grey`` ("keep": (H, W); "rgb": repeated
to (H, W, 3), for prep and video frames). Images over ``max_pixels`` are refused as decompression
bombs before their pixels are decoded; a path that is not a regular file (a FIFO, a device, a link to
one) is refused before it is opened, so nothing waits forever or reads without end. Every refusal is
an ``ImageError`` (a ``UserError``: one line) whose ``reason`` prep counts.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from espcn_lab.errors import UserError
from espcn_lab.imaging.colour import to_uint8

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own default Image.MAX_IMAGE_PIXELS
SKIP_REASONS = ("empty", "not_an_image", "truncated", "corrupt", "decompression_bomb", "too_small", "unreadable",
                "not_a_file")
_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
Image.MAX_IMAGE_PIXELS = None  # read_image's own max_pixels check (before decoding) replaces Pillow's


class ImageError(UserError):
    """A file that cannot be used as an image; ``reason`` is one of SKIP_REASONS."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason, self.message = reason, message


@lru_cache(maxsize=1)
def image_extensions() -> frozenset[str]:
    """Suffixes of every format Pillow can open (lower case, with the dot): the one list all commands use."""
    Image.init()
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in image_extensions()


@dataclass
class DecodedImage:
    """Pixels (H, W) L, (H, W, 2) LA, (H, W, 3) RGB or (H, W, 4) RGBA uint8, the ICC profile and the frame count."""

    pixels: np.ndarray
    icc_profile: Optional[bytes]
    frames: int


def check_regular_file(path: Path) -> None:
    """Refuse what is not a regular file (FIFOs, devices, links to them) before anything opens it."""
    try:
        mode = os.stat(path).st_mode
    except OSError as err:
        raise ImageError("unreadable", f"{path}: cannot read ({err.strerror or err})") from None
    if not stat.S_ISREG(mode):
        raise ImageError("not_a_file", f"{path}: not a regular file (a FIFO, device or directory), not read")


def read_image(source: Path | str | bytes, *, alpha: Literal["white", "keep"] = "white",
               grey: Literal["keep", "rgb"] = "keep", max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """An image file (path) or its bytes -> DecodedImage by the rules above; ImageError if it cannot be used."""
    name = "image" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        if not source:
            raise ImageError("empty", "file is empty")
        handle = io.BytesIO(source)
    else:
        check_regular_file(Path(source))
        if os.path.getsize(source) == 0:
            raise ImageError("empty", f"{name}: file is empty")
        handle = source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise ImageError("decompression_bomb", f"{name}: {w}x{h} exceeds {max_pixels} pixels "
                                                           "(a decompression bomb?)")
                img.load()
                frames = getattr(img, "n_frames", 1)
                icc = img.info.get("icc_profile")
                pixels = _normalise(ImageOps.exif_transpose(img), alpha, grey)
    except ImageError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageError("decompression_bomb", f"{name}: {err}") from None
    except UnidentifiedImageError:
        raise ImageError("not_an_image", f"{name}: not an image format Pillow can read") from None
    except OSError as err:
        text = str(err)
        reason = "truncated" if "truncated" in text or "broken data stream" in text else "corrupt"
        raise ImageError(reason, f"{name}: {reason} image ({text or type(err).__name__})") from None
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError) as err:
        raise ImageError("corrupt", f"{name}: corrupt image ({type(err).__name__}: {err})") from None
    return DecodedImage(pixels, icc, frames)


def _normalise(img: Image.Image, alpha: str, grey: str) -> np.ndarray:
    """Any Pillow mode -> uint8 L, LA, RGB or RGBA pixels by the ``alpha`` and ``grey`` policies."""
    if img.mode in _WIDE_MODES:
        values = np.asarray(img, dtype=np.float64)
        img = Image.fromarray(to_uint8(values if img.mode == "F" else values / 257.0))
    has_alpha = img.mode in _ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info)
    is_grey = img.mode in ("L", "LA", "La", "1")
    if has_alpha and alpha == "white":
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
        has_alpha = False
    target = ("L" if is_grey and grey == "keep" else "RGB") + ("A" if has_alpha else "")
    return np.array(img.convert(target))  # writable, contiguous


def read_hr(path: Path | str) -> np.ndarray:
    """A benchmark or training image as the protocol reads it: (H, W) grey or (H, W, 3) RGB, alpha on white."""
    return read_image(path).pixels


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files of a folder (not recursive); UserError if it is missing or holds no images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if is_image_file(p) and not p.name.startswith(".") and p.is_file())
    if not files:
        raise UserError(f"no images in {folder} (any format Pillow reads: .png, .jpg, .bmp, .tif, .webp, ...)")
    return files


def iter_hr_images(folder: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, HR uint8 image) for every image of a folder, sorted by name."""
    for path in list_images(folder):
        yield path.stem, read_hr(path)
