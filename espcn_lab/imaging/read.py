"""Benchmark HR images and the standard SR test protocol shared by validation and ``espcn-lab eval``.

Protocol (SRCNN / ESPCN / BasicSR): modcrop the HR image to ``scale``, take BT.601 Y, make the LR
input with the degradation the model was trained on, score on Y with ``scale`` pixels shaved.
Greyscale images (Set14 ``bridge``) are scored on their grey values, as the usual tables do.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from espcn_lab.errors import UserError
from espcn_lab.imaging.colour import to_uint8

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_hr_files(folder: str | Path) -> list[Path]:
    """Sorted image files of a folder; UserError if it is missing or holds no images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"image folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise UserError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def read_hr(path: Path) -> np.ndarray:
    """An image file -> (H, W, 3) uint8 RGB, or (H, W) uint8 for greyscale files."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            grey = im.mode in ("L", "I;16", "I", "1", "LA")
            return np.array(im.convert("L" if grey else "RGB"))  # writable: torch.from_numpy takes it as is
    except OSError as err:
        raise UserError(f"{path}: not a readable image ({err})") from None


def iter_hr_images(folder: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, HR uint8 image) for every image of a folder, sorted by name. Extend here for new sources."""
    for path in list_hr_files(folder):
        yield path.stem, read_hr(path)


DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default Image.MAX_IMAGE_PIXELS


SKIP_REASONS = ("empty", "not_an_image", "truncated", "corrupt", "decompression_bomb", "too_small", "unreadable")


_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}


_WIDE_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


class SkipImage(Exception):
    """An image that cannot be used; ``reason`` is one of SKIP_REASONS (counted in the manifest)."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


def allow_pixels(max_pixels: int) -> None:
    """Let PIL open images up to ``max_pixels`` (our own check refuses bigger ones, counted)."""
    Image.MAX_IMAGE_PIXELS = max(int(max_pixels), DEFAULT_MAX_PIXELS)
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def decode_rgb(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Encoded image bytes -> (H, W, 3) uint8 RGB; raises SkipImage for unusable files."""
    if not data:
        raise SkipImage("empty", "file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                w, h = img.size
                if w * h > max_pixels:
                    raise SkipImage("decompression_bomb", f"{w}x{h} exceeds {max_pixels} pixels")
                img.load()
                return _to_rgb(ImageOps.exif_transpose(img))
    except SkipImage:
        raise
    except Image.DecompressionBombError as err:
        raise SkipImage("decompression_bomb", str(err)) from None
    except UnidentifiedImageError:
        raise SkipImage("not_an_image", "not a recognised image format") from None
    except OSError as err:
        reason = "truncated" if "truncated" in str(err) or "broken data stream" in str(err) else "corrupt"
        raise SkipImage(reason, str(err) or type(err).__name__) from None
    except (ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError) as err:
        raise SkipImage("corrupt", f"{type(err).__name__}: {err}") from None


def _to_rgb(img: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8 RGB (see the module docstring for the rules)."""
    if img.mode in _WIDE_MODES:
        values = np.asarray(img, dtype=np.float64)
        gray = to_uint8(values if img.mode == "F" else values / 257.0)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in _ALPHA_MODES or (img.mode in ("P", "L", "RGB") and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("RGB"))
