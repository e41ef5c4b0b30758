"""Any image file's bytes -> 8-bit RGB, or a ``SkipImage`` naming why the file cannot be used.

Valid but unusual images are normalised: EXIF orientation is applied (``ImageOps.exif_transpose``);
CMYK, YCbCr, palette, 1-bit and grayscale become RGB; transparency (RGBA, LA, PA, palette with a
transparent colour) is composited over white, as a viewer shows it on a white page; 16-bit images
are scaled to 8 bits (``round(v / 257)``). Images with more than ``max_pixels`` pixels are refused
as decompression bombs before their pixels are decoded.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from espcn_lab.imaging import to_uint8

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
