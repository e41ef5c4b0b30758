"""PSNR-Y and SSIM-Y with ``scale`` border pixels shaved: the standard SR protocol.

torchmetrics does PSNR. SSIM (11x11 Gaussian window, sigma 1.5, as in Wang et al. and MATLAB) is
torchmetrics' definition (reflect padding, mean over the whole image) computed with the window's two
1-D passes instead of one 2-D float64 convolution: the same numbers (tests/test_metrics.py holds it to
torchmetrics within 1e-12), 8x faster on a 500x375 image (benchmarks/bench_ssim.py, one thread);
SSIM was 80% of the time of `espcn-lab eval` and of every validation pass.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio


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


_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5


def _gaussian_blur(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H + 10, W + 10) -> (N, 1, H, W): the normalised 11-tap Gaussian (sigma 1.5) along H, then W."""
    k = _SSIM_WINDOW
    dist = torch.arange((1 - k) / 2, (1 + k) / 2, 1, dtype=x.dtype, device=x.device)
    g = torch.exp(-((dist / _SSIM_SIGMA) ** 2) / 2)
    g = (g / g.sum()).tolist()
    h, w = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    rows = sum(g[i] * x[..., i:i + h, :] for i in range(k))
    return sum(g[j] * rows[..., :, j:j + w] for j in range(k))


def ssim_y(sr: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, shave: int = 0) -> float:
    """SSIM between two Y images in [0, 255] (Gaussian 11x11, sigma 1.5), ``shave`` pixels cropped."""
    a, b = _as_batch(sr, shave), _as_batch(gt, shave)
    pad = _SSIM_WINDOW // 2
    a, b = (torch.nn.functional.pad(t, (pad, pad, pad, pad), mode="reflect") for t in (a, b))
    mu_a, mu_b, aa, bb, ab = _gaussian_blur(torch.cat((a, b, a * a, b * b, a * b))).split(a.shape[0])
    c1, c2 = (0.01 * 255.0) ** 2, (0.03 * 255.0) ** 2
    var_a = torch.clamp(aa - mu_a * mu_a, min=0.0)
    var_b = torch.clamp(bb - mu_b * mu_b, min=0.0)
    cov = ab - mu_a * mu_b
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a * mu_a + mu_b * mu_b + c1) * (var_a + var_b + c2))
    return float(ssim.reshape(ssim.shape[0], -1).mean(-1).mean())
