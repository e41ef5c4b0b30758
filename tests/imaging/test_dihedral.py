"""The 8 flips/rotations: one definition for augmentation, self-ensemble and refit."""

import torch

from espcn_lab.imaging.dihedral import COUNT, dihedral, dihedral_inverse
from espcn_lab.train.augment import dihedral_index


def test_the_eight_transforms_are_distinct_invertible_and_closed_on_non_square_tensors():
    x = torch.arange(2 * 3 * 5, dtype=torch.float32).view(1, 2, 3, 5)  # B, C, H, W with H != W
    views = [dihedral(x, t) for t in range(COUNT)]
    assert len({tuple(v.flatten().tolist()) for v in views}) == 8
    assert [tuple(v.shape[-2:]) for v in views] == [(3, 5), (3, 5), (5, 3), (5, 3)] * 2
    assert all(torch.equal(dihedral_inverse(v, t), x) for t, v in enumerate(views))
    # composing two transforms gives one of the eight (a group), and t=0 is the identity
    for a in range(COUNT):
        for b in range(COUNT):
            twice = dihedral(dihedral(x, a), b)
            assert any(torch.equal(twice, v) for v in views)
    assert torch.equal(views[0], x)
    # transform 7: three quarter turns anticlockwise, then a left-right mirror = the transpose
    assert torch.equal(views[7], x.transpose(-1, -2))


def test_training_gather_indices_are_the_same_transforms():
    grid = torch.arange(16).view(4, 4)
    index = dihedral_index(4, 4)
    for t in range(COUNT):
        assert torch.equal(grid.reshape(-1)[index[t]].view(4, 4), dihedral(grid, t))
