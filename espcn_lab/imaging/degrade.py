"""How low-resolution images are made: modcrop, MATLAB-compatible antialiased bicubic (``resize_right``,
Shocher et al., with MATLAB's symmetric borders) and the Gaussian blur + subsample of the paper.

``degrade`` is the single definition used by ``espcn-lab prep``, validation, ``eval`` and ``refit``, so
shards, checkpoints and scores never disagree. Arrays are numpy, (H, W) or (H, W, C), uint8 unless
a docstring says otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from resize_right import interp_methods, resize

from espcn_lab.imaging import resize_fast
from espcn_lab.imaging.colour import to_uint8

resize_fast.install()  # same float64 bits as resize_right's own weight step, 2-5x faster


Degradation = Literal["bicubic", "gaussian"]


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
