"""Colour and value conversions: BT.601 studio-range YCbCr exactly as MATLAB's ``rgb2ycbcr``, rounding
to uint8, and the luma views of HR and SR images that the evaluation protocol scores.

Arrays are numpy (H, W) or (H, W, 3), uint8 in [0, 255] unless a docstring says otherwise.
"""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr: [Y Cb Cr] = offset + M @ [R G B] with RGB in [0, 1] and output in [0, 255].
_RGB_TO_YCBCR = np.array(
    [[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]], dtype=np.float64
)


_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0])


_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR)

# How a greyscale image becomes Y (``network_hr``): its own values, or the luma of R = G = B. The second is
# what prep did before 0.2, and what a shard manifest that records no policy was cut with.
GREY_POLICIES = ("values", "bt601")
GREY_BEFORE_0_2 = "bt601"


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


def hr_luma(hr: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB or (H, W) grey uint8 -> (H, W) uint8 Y (grey values pass through)."""
    return hr if hr.ndim == 2 else rgb_to_y(hr)


def network_hr(hr: np.ndarray, channels: int, grey: str = "values") -> np.ndarray:
    """An HR image as a network of ``channels`` sees it: (H, W) Y for 1, (H, W, 3) RGB for 3 (grey repeated).

    ``grey`` is how a greyscale image becomes Y: "values", its grey values (as the protocol scores it,
    ``hr_luma``), or "bt601", as the RGB image R = G = B (luma 16-235; prep before 0.2).
    """
    if hr.ndim == 2 and (channels == 3 or grey == "bt601"):
        hr = np.repeat(hr[..., None], 3, axis=2)
    if channels == 3:
        return hr
    return hr_luma(hr)


def sr_luma(sr: np.ndarray) -> np.ndarray:
    """Network output as uint8 (H, W) Y or (H, W, 3) RGB -> (H, W) uint8 Y."""
    return sr if sr.ndim == 2 else rgb_to_y(sr)
