"""Tiny shard folders for tests and benchmarks, written with the shard contract (until prep is used).

Pairs come from real HR images (or seeded noise) degraded with ``imaging.degrade``, cut into 17x17
LR patches with stride 14 (the paper's 5-3-3 layout), so a model trained on them really learns SR.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np

from espcn_lab.imaging.colour import hr_luma
from espcn_lab.imaging.degrade import DegradationSpec, degrade, modcrop
from espcn_lab.imaging.read import iter_hr_images
from espcn_lab.shards.format import (
    FORMAT_VERSION,
    add_members,
    encode_sample,
    shard_name,
)


def patch_stack(hr: np.ndarray, scale: int, degradation: DegradationSpec, patch: int = 17, stride: int = 14):
    """HR image -> (n, 17, 17) LR and (n, 17s, 17s) HR uint8 patch stacks (Y, or RGB with a last axis)."""
    hr = modcrop(hr, scale)
    lq = degrade(hr, scale, degradation)
    ys = range(0, lq.shape[0] - patch + 1, stride)
    xs = range(0, lq.shape[1] - patch + 1, stride)
    lq_p = [lq[y:y + patch, x:x + patch] for y in ys for x in xs]
    gt_p = [hr[y * scale:(y + patch) * scale, x * scale:(x + patch) * scale] for y in ys for x in xs]
    return np.stack(lq_p), np.stack(gt_p)


def write_shards(folder: Path, images: list[np.ndarray], scale: int = 3, n_shards: int = 2,
                 degradation: DegradationSpec = DegradationSpec(), channels: str = "y",
                 manifest: bool = True) -> Path:
    """Write ``train-%06d.tar`` shards (one sample per image, round robin) and a manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    shards = [{"name": shard_name("train", i), "samples": 0, "pairs": 0, "sha256": ""} for i in range(n_shards)]
    tars = [tarfile.open(folder / s["name"], "w") for s in shards]
    for i, img in enumerate(images):
        img = hr_luma(img) if channels == "y" else img
        lq, gt = patch_stack(img, scale, degradation)
        add_members(tars[i % n_shards], encode_sample(f"img{i:05d}", lq, gt, {"source": f"img{i}"}))
        shards[i % n_shards]["samples"] += 1
        shards[i % n_shards]["pairs"] += len(lq)
    for tar in tars:
        tar.close()
    if manifest:
        pairs = sum(s["pairs"] for s in shards)
        doc = {"format_version": FORMAT_VERSION, "tool": "espcn-lab", "scale": scale, "channels": channels,
               "lq_patch": 17, "gt_patch": 17 * scale, "stride": 14, "degradation": degradation.to_dict(),
               "splits": {"train": {"images": len(images), "pairs": pairs, "samples": len(images), "shards": shards}}}
        (folder / "manifest.json").write_text(json.dumps(doc, indent=1))
    return folder


def t91_images(shared_data: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` T91 images as RGB uint8."""
    return [img for _, img in list(iter_hr_images(shared_data / "T91"))[:count]]


def noise_images(count: int, size: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Seeded smooth-ish RGB images (no data needed)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(count, size // 8, size // 8, 3), dtype=np.uint8)
    return [np.kron(b, np.ones((8, 8, 1), dtype=np.uint8)) for b in base]
