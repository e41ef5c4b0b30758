"""Benchmark HR images and the standard SR test protocol shared by validation and ``espcn-lab eval``.

Protocol (SRCNN / ESPCN / BasicSR): modcrop the HR image to ``scale``, take BT.601 Y, make the LR
input with the degradation the model was trained on, score on Y with ``scale`` pixels shaved.
Greyscale images (Set14 ``bridge``) are scored on their grey values, as the usual tables do.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espcn_lab.errors import UserError
from espcn_lab.imaging import DegradationSpec, degrade, modcrop, rgb_to_y

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


def hr_luma(hr: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) grey uint8 -> (H, W) uint8 Y (grey values pass through)."""
    return hr if hr.ndim == 2 else rgb_to_y(hr)


@dataclass
class EvalPair:
    """One protocol test pair: the network input and the Y ground truth."""

    name: str
    lq: np.ndarray  # (h, w) uint8 Y, or (h, w, 3) uint8 RGB for channels=3 models
    gt_y: np.ndarray  # (h*s, w*s) uint8 Y of the modcropped HR image


def network_hr(hr: np.ndarray, channels: int) -> np.ndarray:
    """An HR image as a network of ``channels`` sees it: (H, W) Y for 1, (H, W, 3) RGB for 3 (grey repeated)."""
    if channels == 1:
        return hr_luma(hr)
    return hr if hr.ndim == 3 else np.repeat(hr[..., None], 3, axis=2)


def make_eval_pair(name: str, hr: np.ndarray, scale: int, degradation: DegradationSpec, channels: int = 1) -> EvalPair:
    """Modcrop, degrade (Y for channels=1, RGB for channels=3) and keep the Y ground truth."""
    hr = modcrop(hr, scale)
    return EvalPair(name, degrade(network_hr(hr, channels), scale, degradation), hr_luma(hr))


def sr_luma(sr: np.ndarray) -> np.ndarray:
    """Network output as uint8 (H, W) Y or (H, W, 3) RGB -> (H, W) uint8 Y."""
    return sr if sr.ndim == 2 else rgb_to_y(sr)
