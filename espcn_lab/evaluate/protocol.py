"""The standard SR test protocol (SRCNN / ESPCN / BasicSR): modcrop the HR image to ``scale``, make the LR
input with the degradation the model was trained on, keep the BT.601 Y ground truth; scores are taken
on Y with ``scale`` pixels shaved. Greyscale images (Set14 ``bridge``) are scored on their grey values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from espcn_lab.imaging.colour import hr_luma, network_hr
from espcn_lab.imaging.degrade import DegradationSpec, degrade, modcrop


@dataclass
class EvalPair:
    """One protocol test pair: the network input and the Y ground truth."""

    name: str
    lq: np.ndarray  # (h, w) uint8 Y, or (h, w, 3) uint8 RGB for channels=3 models
    gt_y: np.ndarray  # (h*s, w*s) uint8 Y of the modcropped HR image


def make_eval_pair(name: str, hr: np.ndarray, scale: int, degradation: DegradationSpec, channels: int = 1) -> EvalPair:
    """Modcrop, degrade (Y for channels=1, RGB for channels=3) and keep the Y ground truth."""
    hr = modcrop(hr, scale)
    return EvalPair(name, degrade(network_hr(hr, channels), scale, degradation), hr_luma(hr))
