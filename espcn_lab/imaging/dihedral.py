"""The 8 flips/90-degree rotations (the dihedral group of the square) of the last two dims of a tensor.

Transform ``t`` in 0..7 rotates by ``90 * (t // 2)`` degrees, then mirrors left-right when ``t`` is odd.
One definition serves training augmentation (``data.DihedralAugment``), the geometric self-ensemble
(``ensemble.SelfEnsemble``) and the augmented views of ``refit``.
"""

from __future__ import annotations

import torch

COUNT = 8


def dihedral(x: torch.Tensor, t: int) -> torch.Tensor:
    """Transform ``t`` of ``x`` over its last two dims (any height and width: odd rotations swap them)."""
    y = torch.rot90(x, t // 2, (-2, -1))
    return y.flip(-1) if t % 2 else y


def dihedral_inverse(y: torch.Tensor, t: int) -> torch.Tensor:
    """Undo ``dihedral(., t)``."""
    y = y.flip(-1) if t % 2 else y
    return torch.rot90(y, -(t // 2), (-2, -1))
