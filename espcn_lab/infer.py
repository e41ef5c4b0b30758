"""Apply a model to images: Y through the network, CbCr (and alpha) by bicubic."""

from __future__ import annotations

import numpy as np
import torch

from espcn_lab.imaging import to_uint8
from espcn_lab.model import ESPCN

@torch.inference_mode()
def super_resolve_y(model: ESPCN, lq_y: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """(H, W) uint8 luma -> (H*s, W*s) uint8 luma through the network (one untiled pass)."""
    x = torch.from_numpy(np.ascontiguousarray(lq_y)).to(device=device, dtype=torch.float32)[None, None] / 255.0
    sr = model.to(device)(x)[0, 0].clamp_(0, 1).mul_(255.0).cpu().numpy()
    return to_uint8(sr)
