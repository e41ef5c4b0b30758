"""Tiny shard folders for tests and benchmarks, made by the real prep path (``data_prep.run_prep``) from
images saved as PNG files, and the pairs prep cuts from one image (``data_prep.patches.extract_pairs``).

Pairs come from real HR images (or seeded noise) degraded with ``imaging.degrade.degrade``, cut into 17x17
LR patches with stride 14 (the paper's 5-3-3 layout), so a model trained on them really learns SR.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from data_prep import PrepOptions, run_prep
from data_prep.patches import PatchSpec, extract_pairs
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.imaging.read import iter_hr_images


def patch_stack(rgb: np.ndarray, scale: int, degradation: DegradationSpec = DegradationSpec()):
    """(H, W, 3) RGB image -> its (n, 17, 17) LR and (n, 17s, 17s) HR uint8 Y patch stacks, as prep cuts them."""
    lq, gt, _ = extract_pairs(rgb, PatchSpec(scale=scale, degradation=degradation))
    return lq, gt


def write_shards(folder: Path, images: list[np.ndarray], scale: int = 3, n_shards: int = 2,
                 degradation: DegradationSpec = DegradationSpec(), channels: str = "y",
                 manifest: bool = True) -> Path:
    """``espcn-lab prep`` of ``images`` (saved as PNGs beside ``folder``) into ``n_shards`` shards."""
    source = folder.parent / f"{folder.name}-images"
    source.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(source / f"img{i:05d}.png")
    run_prep(PrepOptions(out=folder, scale=scale, image_dir=source, channels=channels, degradation=degradation.kind,
                         sigma=degradation.sigma, images_per_shard=math.ceil(len(images) / n_shards), workers=1,
                         progress=False))
    if not manifest:
        (folder / "manifest.json").unlink()
    return folder


def t91_images(shared_data: Path, count: int) -> list[np.ndarray]:
    """The first ``count`` T91 images as RGB uint8."""
    return [img for _, img in list(iter_hr_images(shared_data / "T91"))[:count]]


def noise_images(count: int, size: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Seeded smooth-ish RGB images (no data needed)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, size=(count, size // 8, size // 8, 3), dtype=np.uint8)
    return [np.kron(b, np.ones((8, 8, 1), dtype=np.uint8)) for b in base]
