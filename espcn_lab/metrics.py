"""PSNR-Y and SSIM-Y with ``scale`` border pixels shaved: the standard SR protocol.

torchmetrics does the arithmetic (PSNR, and SSIM with an 11x11 Gaussian window, sigma 1.5, as in
Wang et al. and MATLAB); this module wraps it once for the Y / shave / [0, 255] conventions.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _as_batch(img: np.ndarray | torch.Tensor, shave: int) -> torch.Tensor:
    """(H, W) or (B, 1, H, W) in [0, 255] -> (B, 1, H-2s, W-2s) float64 tensor."""
    t = img.to(torch.float64) if isinstance(img, torch.Tensor) else torch.tensor(np.asarray(img), dtype=torch.float64)
    while t.ndim < 4:
        t = t.unsqueeze(0)
    if shave:
        t = t[..., shave:-shave, shave:-shave]
    return t


def psnr_y(sr: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, shave: int = 0) -> float:
    """PSNR in dB between two Y images with values in [0, 255], ``shave`` pixels cropped per border."""
    a, b = _as_batch(sr, shave), _as_batch(gt, shave)
    return float(peak_signal_noise_ratio(a, b, data_range=255.0))


def ssim_y(sr: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, shave: int = 0) -> float:
    """SSIM between two Y images in [0, 255] (Gaussian 11x11, sigma 1.5), ``shave`` pixels cropped."""
    a, b = _as_batch(sr, shave), _as_batch(gt, shave)
    return float(structural_similarity_index_measure(a, b, data_range=255.0, gaussian_kernel=True,
                                                     sigma=1.5, kernel_size=11))
