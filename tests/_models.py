"""Seeded models saved the way shipped/trained ones are, for the inference, video, bench and export tests."""

from __future__ import annotations

from pathlib import Path

import torch

from espcn_lab.checkpoint import save_safetensors
from espcn_lab.config import Config, from_dict, to_dict
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import ESPCN


def make_model(scale: int = 3, features=(64, 32), kernels=(5, 3, 3), channels: int = 1, seed: int = 0) -> tuple[ESPCN, Config]:
    """A seeded ESPCN and the config that describes it."""
    raw = to_dict(Config())
    raw["model"] = {**raw["model"], "scale": scale, "features": list(features), "kernels": list(kernels),
                    "channels": channels}
    cfg = from_dict(raw)
    torch.manual_seed(seed)
    return ESPCN(scale, channels, features, kernels, "tanh").eval(), cfg


def save_model(path: Path, **kwargs) -> Path:
    """Write a seeded model to ``path`` (.safetensors) and return it."""
    model, cfg = make_model(**kwargs)
    return save_safetensors(model, cfg, DegradationSpec(), path)
