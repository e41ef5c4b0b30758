"""Patch-pair extraction: the paper's stride, grid, and LR/HR alignment of pairs."""

import numpy as np
import pytest

from data_prep.patches import (
    PatchSpec,
    cut,
    extract_pairs,
    paper_stride,
    patch_grid,
    prepare_hr,
)
from espcn_lab.imaging.colour import rgb_to_y
from espcn_lab.imaging.degrade import DegradationSpec, degrade


def _smooth_rgb(rng, h, w):
    """A smooth random colour image (uint8), so degradation is not dominated by noise."""
    small = rng.uniform(0, 255, (h // 8 + 2, w // 8 + 2, 3))
    return np.clip(np.kron(small, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def test_paper_stride_formula():
    assert paper_stride() == 14  # 17 - (5 % 2 + 3 % 2 + 3 % 2)
    assert paper_stride(17, (9, 1, 5)) == 14 and paper_stride(17, (4, 2)) == 17 and paper_stride(21) == 18


def test_grid_covers_the_lr_image_on_the_stride():
    grid = patch_grid(45, 31, PatchSpec(scale=3))
    assert grid.tolist() == [[0, 0], [0, 14], [14, 0], [14, 14], [28, 0], [28, 14]]
    assert len(patch_grid(16, 100, PatchSpec())) == 0  # one row short of a patch


def test_cut_gathers_patches_with_channels(rng):
    img = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = cut(img, np.array([[2, 5], [10, 0]]), 7)
    assert out.shape == (2, 7, 7, 3)
    assert np.array_equal(out[1], img[10:17, 0:7])


@pytest.mark.parametrize("scale,channels,kind", [(3, "y", "bicubic"), (2, "rgb", "bicubic"), (4, "y", "gaussian")])
def test_pairs_are_aligned_on_the_lr_grid(rng, scale, channels, kind):
    rgb = _smooth_rgb(rng, 17 * scale * 2 + 10, 17 * scale * 3 + 7)
    spec = PatchSpec(scale, channels, 17, 14, DegradationSpec(kind))
    lq, gt, positions = extract_pairs(rgb, spec)
    hr = prepare_hr(rgb, spec)
    lr = degrade(hr, scale, spec.degradation)
    assert lq.dtype == gt.dtype == np.uint8 and len(lq) == len(gt) == len(positions) >= 4
    assert gt.shape[1:3] == (17 * scale, 17 * scale) and lq.shape[1:3] == (17, 17)
    assert (lq.ndim, gt.ndim) == ((4, 4) if channels == "rgb" else (3, 3))
    for (y, x), lq_patch, gt_patch in zip(positions, lq, gt):
        assert np.array_equal(gt_patch, hr[y * scale:(y + 17) * scale, x * scale:(x + 17) * scale])
        assert np.array_equal(lq_patch, lr[y:y + 17, x:x + 17])
        # Patches come from the degraded full image, so degrading the HR patch alone differs only
        # where the kernel reaches past the patch: bicubic x s spans +-2 LR pixels. Inside, equal.
        alone = degrade(gt_patch, scale, spec.degradation)
        margin = 2 if kind == "bicubic" else 3
        inner = (slice(margin, -margin), slice(margin, -margin))
        assert np.abs(alone[inner].astype(int) - lq_patch[inner].astype(int)).max() <= (0 if kind == "bicubic" else 1)


def test_y_channel_is_bt601_of_the_modcropped_image(rng):
    rgb = _smooth_rgb(rng, 55, 56)
    hr = prepare_hr(rgb, PatchSpec(scale=3))
    assert hr.shape == (54, 54) and np.array_equal(hr, rgb_to_y(rgb[:54, :54]))


def test_too_small_image_gives_no_pairs(rng):
    lq, gt, positions = extract_pairs(_smooth_rgb(rng, 50, 200), PatchSpec(scale=3))
    assert len(positions) == 0 and lq.size == 0


def test_grid_cut_equals_gather(rng):
    from data_prep.patches import cut_grid

    for img in (rng.integers(0, 256, (50, 40), dtype=np.uint8), rng.integers(0, 256, (50, 40, 3), dtype=np.uint8)):
        spec = PatchSpec(scale=2, lq_patch=9, stride=7)
        grid = patch_grid(50, 40, spec)
        assert np.array_equal(cut_grid(img, len(grid), 9, 7), cut(img, grid, 9))


def test_hr_scales_cut_every_resized_copy(rng):
    from espcn_lab.imaging.colour import to_uint8
    from espcn_lab.imaging.degrade import imresize

    rgb = _smooth_rgb(rng, 120, 150)
    spec = PatchSpec(scale=3, hr_scales=(1.0, 0.6))
    lq, gt, positions = extract_pairs(rgb, spec)
    full = extract_pairs(rgb, PatchSpec(scale=3))
    small = extract_pairs(to_uint8(imresize(rgb, 0.6)), PatchSpec(scale=3))
    assert positions.shape == (len(full[2]) + len(small[2]), 3) and set(positions[:, 0]) == {0, 1}
    assert np.array_equal(lq, np.concatenate([full[0], small[0]])) and np.array_equal(gt, np.concatenate([full[1], small[1]]))
    assert np.array_equal(positions[positions[:, 0] == 1, 1:], small[2])


def test_hr_scales_too_small_everywhere_gives_no_pairs(rng):
    lq, _, positions = extract_pairs(_smooth_rgb(rng, 60, 60), PatchSpec(scale=3, hr_scales=(0.5,)))
    assert len(positions) == 0 and positions.shape == (0, 3) and lq.size == 0


def test_grey_images_become_y_by_the_grey_policy():
    """"values": a grey image's own values are its Y (how eval scores it); "bt601": Y of R = G = B (16-235);
    RGB channels repeat the grey either way."""
    grey = np.tile(np.arange(0, 256, dtype=np.uint8), (7, 1))  # every level, 7 x 256 -> modcrop 6 x 256
    assert np.array_equal(prepare_hr(grey, PatchSpec(scale=2)), grey[:6])
    studio = prepare_hr(grey, PatchSpec(scale=2, grey="bt601"))
    assert studio.min() == 16 and studio.max() == 235 and np.array_equal(studio, rgb_to_y(np.repeat(grey[:6, :, None], 3, 2)))
    for policy in ("values", "bt601"):
        assert np.array_equal(prepare_hr(grey, PatchSpec(scale=2, channels="rgb", grey=policy)),
                              np.repeat(grey[:6, :, None], 3, 2))
