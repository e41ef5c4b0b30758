"""Pure image operations shared by data prep and evaluation.

Colour conversion is ITU-R BT.601 studio range exactly as MATLAB's ``rgb2ycbcr``. Resizing is
MATLAB-compatible antialiased bicubic through ``resize_right`` (Shocher et al.), with MATLAB's
symmetric boundary handling. ``degrade`` is the single definition of how low-resolution images are
made, used by ``espcn-lab prep`` and by every evaluation, so shards and scores never disagree.

Arrays are numpy, (H, W) or (H, W, C); uint8 in [0, 255] unless a docstring says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from resize_right import interp_methods, resize

from espcn_lab import resize_fast

resize_fast.install()  # same float64 bits as resize_right's own weight step, 2-5x faster

# MATLAB rgb2ycbcr: [Y Cb Cr] = offset + M @ [R G B] with RGB in [0, 1] and output in [0, 255].
_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
)
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)

Degradation = Literal["bicubic", "gaussian"]


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W, 3) float64 YCbCr in [0, 255] (unrounded; MATLAB rounds for uint8)."""
    return rgb.astype(np.float64) / 255.0 @ _RGB_TO_YCBCR.T + _YCBCR_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
    """(H, W, 3) float YCbCr in [0, 255] -> (H, W, 3) uint8 RGB, rounded and clipped."""
    rgb = (ycbcr.astype(np.float64) - _YCBCR_OFFSET) @ _YCBCR_TO_RGB.T * 255.0
    return to_uint8(rgb)


def rgb_to_y(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 luma, as MATLAB ``rgb2ycbcr(uint8)`` channel 1."""
    y = rgb.astype(np.float64) / 255.0 @ _RGB_TO_YCBCR[0] + 16.0
    return to_uint8(y)


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Round half away from zero (as MATLAB) and clip to uint8."""
    return np.clip(np.floor(np.asarray(img, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)


def modcrop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of ``scale``."""
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` (antialiased when shrinking). Returns float64.

    Input of any dtype; spatial axes are the first two. Output size is ``ceil(scale * size)``.
    """
    x = np.asarray(img, dtype=np.float64)
    out_shape = (math.ceil(x.shape[0] * scale), math.ceil(x.shape[1] * scale), *x.shape[2:])
    factors = [scale, scale] + [1.0] * (x.ndim - 2)
    return resize(x, scale_factors=factors, out_shape=out_shape, interp_method=interp_methods.cubic,
                  antialiasing=True, pad_mode="symmetric")


def default_sigma(scale: int) -> float:
    """Default Gaussian PSF width in HR pixels: (scale - 1) / 2, scikit-image's anti-aliasing rule."""
    return max(0.5, (scale - 1) / 2.0)


def gaussian_downsample(img: np.ndarray, scale: int, sigma: float) -> np.ndarray:
    """Blur with a Gaussian of std ``sigma`` (HR pixels), then subsample by ``scale``. Returns float64.

    Each LR pixel samples the HR image at its own centre, the same grid as MATLAB's bicubic, so
    both degradations stay aligned with the HR patch.
    """
    sigma_lr = sigma / scale  # resize_right stretches the kernel by ``scale`` when shrinking

    def gaussian(x):
        return np.exp(-0.5 * (x / sigma_lr) ** 2)

    support = 2 * math.ceil(3 * sigma) / scale + 1e-6  # +-3 sigma in HR pixels, expressed in LR units
    x = np.asarray(img, dtype=np.float64)
    factors = [1.0 / scale, 1.0 / scale] + [1.0] * (x.ndim - 2)
    out_shape = (x.shape[0] // scale, x.shape[1] // scale, *x.shape[2:])
    return resize(x, scale_factors=factors, out_shape=out_shape, interp_method=gaussian, support_sz=support,
                  antialiasing=True, pad_mode="symmetric")


@dataclass(frozen=True)
class DegradationSpec:
    """How LR images are made from HR ones; stored in shard manifests and checkpoints."""

    kind: Degradation = "bicubic"
    sigma: float | None = None  # gaussian only; None = default_sigma(scale)

    def to_dict(self) -> dict:
        return asdict(self)


def degrade(hr: np.ndarray, scale: int, spec: DegradationSpec = DegradationSpec()) -> np.ndarray:
    """uint8 HR (modcropped to ``scale``) -> uint8 LR of exactly 1/scale its size."""
    if hr.shape[0] % scale or hr.shape[1] % scale:
        raise ValueError(f"HR size {hr.shape[:2]} is not a multiple of scale {scale}; modcrop first")
    if spec.kind == "bicubic":
        lr = imresize(hr, 1.0 / scale)
    elif spec.kind == "gaussian":
        lr = gaussian_downsample(hr, scale, spec.sigma if spec.sigma is not None else default_sigma(scale))
    else:
        raise ValueError(f"unknown degradation {spec.kind!r}; choose bicubic or gaussian")
    return to_uint8(lr)


def upscale_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """The bicubic baseline: MATLAB ``imresize(lr, scale)``, rounded to uint8."""
    return to_uint8(imresize(lr, float(scale)))
