"""Patch-pair extraction (pure, no I/O): HR image -> aligned (LR, HR) sub-image stacks as in the paper.

The whole HR image (optionally first resized to each of ``hr_scales``, e.g. FSRCNN's 0.9-0.6 scale
augmentation, or 0.5 to shrink JPEG compression noise below what the target keeps) is modcropped,
converted (Y or RGB; a greyscale image's grey values are its Y, as the protocol scores it, unless
``grey="bt601"``), degraded once with ``espcn_lab.imaging.degrade.degrade`` and then cut: LR patch ``p`` at LR position (y, x) pairs with the HR
patch ``p * scale`` at (y * scale, x * scale), so pairs are aligned on the LR grid and LR pixels
come from the full degraded image (no border effects inside a patch).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from espcn_lab.imaging.colour import network_hr, to_uint8
from espcn_lab.imaging.degrade import (
    DegradationSpec,
    default_sigma,
    degrade,
    imresize,
    modcrop,
)

Channels = Literal["y", "rgb"]
GreyLuma = Literal["values", "bt601"]  # espcn_lab.imaging.colour.GREY_POLICIES


def paper_stride(lq_patch: int = 17, kernels: tuple[int, ...] = (5, 3, 3)) -> int:
    """The paper's LR stride ``lq_patch - sum(k % 2)``: 14 for 17-pixel patches and the 5-3-3 network."""
    return lq_patch - sum(k % 2 for k in kernels)


@dataclass(frozen=True)
class PatchSpec:
    """How pairs are cut: scale, channels, LR patch size and stride (LR pixels), degradation, and the sizes
    (factors of the source image, MATLAB bicubic) at which each image is used; None = as it is.

    ``grey``: how a greyscale source becomes Y. "values": its grey values are its luma (0-255), which is how
    ``espcn-lab eval`` scores a greyscale image; "bt601": as the RGB image R = G = B (luma 16-235), how prep
    cut them before 0.2, which leaves a Y model no training pixel below 16 or above 235. RGB channels
    always repeat the grey.
    """

    scale: int = 3
    channels: Channels = "y"
    lq_patch: int = 17
    stride: int = 14
    degradation: DegradationSpec = field(default_factory=DegradationSpec)
    hr_scales: tuple[float, ...] | None = None
    grey: GreyLuma = "values"

    @property
    def gt_patch(self) -> int:
        return self.lq_patch * self.scale

    def resolved_degradation(self) -> DegradationSpec:
        """The degradation with gaussian's default sigma filled in (what manifests record)."""
        d = self.degradation
        if d.kind == "gaussian" and d.sigma is None:
            return DegradationSpec("gaussian", default_sigma(self.scale))
        return d


def prepare_hr(img: np.ndarray, spec: PatchSpec) -> np.ndarray:
    """(H, W, 3) uint8 RGB or (H, W) grey -> modcropped HR: (H', W') uint8 Y (BT.601 studio for RGB, by
    ``spec.grey`` for grey) or (H', W', 3) uint8 RGB (grey repeated)."""
    hr = network_hr(modcrop(img, spec.scale), 1 if spec.channels == "y" else 3, spec.grey)
    return np.ascontiguousarray(hr)


def patch_grid(lq_h: int, lq_w: int, spec: PatchSpec) -> np.ndarray:
    """(n, 2) int64 LR top-left (y, x) of every patch on a ``stride`` grid; n = 0 if the image is too small."""
    ys = np.arange(0, lq_h - spec.lq_patch + 1, spec.stride)
    xs = np.arange(0, lq_w - spec.lq_patch + 1, spec.stride)
    grid = np.stack(np.meshgrid(ys, xs, indexing="ij"), axis=-1)
    return grid.reshape(-1, 2).astype(np.int64)


def cut(img: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Gather square patches: (H, W[, C]) and (n, 2) top-lefts -> (n, size, size[, C]), same dtype."""
    offsets = np.arange(size)
    rows = positions[:, 0, None] + offsets  # (n, size)
    cols = positions[:, 1, None] + offsets
    return img[rows[:, :, None], cols[:, None, :]]


def extract_pairs(rgb: np.ndarray, spec: PatchSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB or (H, W) uint8 grey -> lq (n, p, p[, 3]) uint8, gt (n, p*s, p*s[, 3]) uint8, positions.

    Positions are LR top-lefts (n, 2) (y, x); with ``hr_scales`` they are (n, 3) (index into
    ``hr_scales``, y, x) in the resized image. n = 0 when no (resized) image holds one HR patch.
    """
    if spec.hr_scales is None:
        return _pairs_at(rgb, spec)
    parts = []
    for i, factor in enumerate(spec.hr_scales):
        resized = rgb if factor == 1 else to_uint8(imresize(rgb, factor))
        lq, gt, positions = _pairs_at(resized, spec)
        if len(positions):
            parts.append((lq, gt, np.concatenate([np.full((len(positions), 1), i), positions], 1)))
    if not parts:
        empty = np.zeros((0,), np.uint8)
        return empty, empty, np.zeros((0, 3), np.int64)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))


def _pairs_at(rgb: np.ndarray, spec: PatchSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pairs of one image at its own size; positions (n, 2)."""
    hr = prepare_hr(rgb, spec)
    s = spec.scale
    positions = patch_grid(hr.shape[0] // s, hr.shape[1] // s, spec)
    if len(positions) == 0:
        empty = np.zeros((0,), np.uint8)
        return empty, empty, positions
    lr = degrade(hr, s, spec.degradation)
    return cut_grid(lr, len(positions), spec.lq_patch, spec.stride), \
        cut_grid(hr, len(positions), spec.gt_patch, spec.stride * s), positions


def cut_grid(img: np.ndarray, n: int, size: int, step: int) -> np.ndarray:
    """The first ``n`` patches of a regular grid (row-major, as ``patch_grid``) via strided views; same as ``cut``."""
    windows = np.lib.stride_tricks.sliding_window_view(img, (size, size), axis=(0, 1))[::step, ::step]
    windows = np.moveaxis(windows, (-2, -1), (2, 3)) if img.ndim == 3 else windows  # (gy, gx, size, size[, C])
    return windows.reshape(-1, *windows.shape[2:])[:n].copy()
