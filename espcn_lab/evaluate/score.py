"""The one scoring path: a model on protocol pairs, PSNR-Y / SSIM-Y against bicubic, paired t-test.

Validation during ``fit`` and ``espcn-lab eval`` both call ``score_model``, so they reach their numbers
by the same code.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np
import torch
from tqdm import tqdm

from espcn_lab.evaluate.metrics import psnr_y, ssim_y
from espcn_lab.evaluate.protocol import EvalPair, hr_images, make_eval_pair
from espcn_lab.imaging.colour import sr_luma, to_uint8
from espcn_lab.imaging.degrade import upscale_bicubic
from espcn_lab.model import ESPCN


def paired_p_value(ours: list[float], baseline: list[float]) -> float:
    """Two-sided paired t-test p-value; NaN with fewer than 2 images or identical scores."""
    from scipy.stats import ttest_rel

    if len(ours) < 2:
        return float("nan")
    p = float(ttest_rel(ours, baseline).pvalue)
    return p if math.isfinite(p) else float("nan")


def score_output(sr: np.ndarray, pair: EvalPair, scale: int) -> dict[str, float]:
    """PSNR-Y and SSIM-Y of an uint8 output (Y, or RGB scored on its Y) against the pair's ground truth."""
    sr_y = sr_luma(sr)
    return {"psnr_y": psnr_y(sr_y, pair.gt_y, scale), "ssim_y": ssim_y(sr_y, pair.gt_y, scale)}


def score_model(model: torch.nn.Module, pair: EvalPair, scale: int, device: str | torch.device = "cpu") -> dict[str, float]:
    """The model's scores on one protocol pair: the number validation during ``fit`` and ``eval`` both report."""
    return score_output(network_pass(model, pair.lq, device), pair, scale)


def score_set(loaded, folder: str, device: torch.device, name: str, model: Optional[torch.nn.Module] = None) -> dict[str, Any]:
    """Per-image and mean PSNR-Y/SSIM-Y of bicubic and the model (``model`` overrides ``loaded.model``) on one set."""
    scale, channels = loaded.config.model.scale, loaded.config.model.channels
    model = loaded.model if model is None else model
    images = []
    source, total = hr_images(folder)
    for image_name, hr in tqdm(source, total=total, desc=name, leave=False):
        pair = make_eval_pair(image_name, hr, scale, loaded.degradation, channels)
        images.append({"name": image_name, "bicubic": score_output(upscale_bicubic(pair.lq, scale), pair, scale),
                       "model": score_model(model, pair, scale, device)})
    summary = {method: {metric: float(np.mean([im[method][metric] for im in images])) for metric in ("psnr_y", "ssim_y")}
               for method in ("bicubic", "model")}
    p = paired_p_value([im["model"]["psnr_y"] for im in images], [im["bicubic"]["psnr_y"] for im in images])
    return {"folder": str(folder), "images": images, **summary, "p_value_vs_bicubic": p}


@torch.inference_mode()
def network_pass(model: ESPCN, lq: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """(h, w) or (h, w, 3) uint8 -> the network's (h*s, w*s[, 3]) uint8 output, one untiled pass.

    The reference path for evaluation: no colour handling, no tiling, fp32.
    """
    x = torch.from_numpy(np.ascontiguousarray(lq)).to(device)
    x = (x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]).float() / 255.0
    sr = model.to(device)(x)[0].clamp_(0, 1).mul_(255.0).cpu().numpy()
    return to_uint8(sr[0] if sr.shape[0] == 1 else sr.transpose(1, 2, 0))
