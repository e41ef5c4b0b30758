"""Random flips and 90-degree rotations of training batches on their device: one gather per tensor.
"""

from __future__ import annotations

from typing import Optional

import torch

from espcn_lab.imaging.dihedral import COUNT, dihedral


def dihedral_index(height: int, width: int, device=None) -> torch.Tensor:
    """(8, H*W) gather indices of the 8 flips/90-degree rotations of an H x W square (H == W)."""
    if height != width:
        raise ValueError("flips and rotations of non-square patches are not supported")
    grid = torch.arange(height * width, device=device).view(height, width)
    return torch.stack([dihedral(grid, t).reshape(-1) for t in range(COUNT)])


class DihedralAugment:
    """Random flips/90-degree rotations of (lq, gt) batches on their device: one gather per tensor.

    Each pair gets its own of the 8 transforms; LR, HR (and a teacher's output) get the same one, so
    they stay aligned.
    """

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.generator: Optional[torch.Generator] = None
        self.index: dict[tuple, torch.Tensor] = {}

    def _indices(self, shape: tuple[int, int], device) -> torch.Tensor:
        key = (*shape, str(device))
        if key not in self.index:
            self.index[key] = dihedral_index(*shape, device=device)
        return self.index[key]

    def __call__(self, lq: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``lq`` and each of ``others`` (HR, a teacher's output: any square size and dtype) under one transform a pair."""
        if self.generator is None or self.generator.device != lq.device:
            self.generator = torch.Generator(device=lq.device).manual_seed(self.seed)
        which = torch.randint(0, COUNT, (len(lq),), device=lq.device, generator=self.generator)

        def apply(x):
            b, c, h, w = x.shape
            idx = self._indices((h, w), x.device)[which]  # (B, H*W)
            flat = x.reshape(b, c, h * w)
            return torch.gather(flat, 2, idx[:, None, :].expand(b, c, h * w)).view(b, c, h, w)

        return (apply(lq), *(apply(x) for x in others))
