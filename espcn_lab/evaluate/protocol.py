"""The standard SR test protocol (SRCNN / ESPCN / BasicSR): modcrop the HR image to ``scale``, make the LR
input with the degradation the model was trained on, keep the BT.601 Y ground truth; scores are taken
on Y with ``scale`` pixels shaved. Greyscale images (Set14 ``bridge``) are scored on their grey values.

A benchmark set is a folder of HR images, a video file (its frames, as the paper's video tables), or a
shard folder, whose images ``espcn-lab prep --val-images K`` held out (validation that never touches an
evaluation set).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from espcn_lab.imaging.colour import hr_luma, network_hr
from espcn_lab.imaging.degrade import DegradationSpec, degrade, modcrop
from espcn_lab.imaging.read import list_images, read_hr
from espcn_lab.shards.format import MANIFEST_NAME
from espcn_lab.shards.locate import held_out_images


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


def hr_images(spec: str | Path) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """(name, HR uint8 (H, W) grey or (H, W, 3) RGB) of a benchmark set, and how many there are.

    Files are listed (and a missing or empty set refused with a UserError) before the iterator is returned;
    images are read as it runs.
    """
    from espcn_lab.deploy.video import is_video, named_frames

    path = Path(spec)
    if is_video(path):
        return named_frames(path)
    files = held_out_images(path) if (path / MANIFEST_NAME).is_file() else list_images(path)
    return ((f.stem, read_hr(f)) for f in files), len(files)


def protocol_pairs(spec: str | Path, scale: int, degradation: DegradationSpec, channels: int = 1) -> Iterator[EvalPair]:
    """The protocol pair of every image of a benchmark set (see ``hr_images``)."""
    images, _ = hr_images(spec)
    return (make_eval_pair(name, hr, scale, degradation, channels) for name, hr in images)
