import numpy as np
import pytest

from espcn_lab.evaluate.metrics import psnr_y, ssim_y


def test_uniform_error_of_one_gives_48_1308_db():
    gt = np.full((20, 20), 100, np.uint8)
    assert psnr_y(gt.astype(float) + 1, gt) == pytest.approx(48.1308, abs=1e-4)


def test_shave_ignores_the_border():
    gt = np.full((20, 20), 100.0)
    sr = gt.copy()
    sr[:3, :] = 0
    assert psnr_y(sr, gt, shave=3) == float("inf") or psnr_y(sr, gt, shave=3) > 100
    assert psnr_y(sr, gt, shave=2) < 30


def test_ssim_is_one_for_identical_and_drops_for_noise(rng):
    gt = np.add.outer(np.arange(40.0), np.arange(40.0)) * 3
    assert ssim_y(gt, gt, shave=2) == pytest.approx(1.0)
    noisy = ssim_y(gt + rng.normal(0, 20, gt.shape), gt, shave=2)
    assert noisy < ssim_y(gt + rng.normal(0, 5, gt.shape), gt, shave=2) < 1.0
    assert noisy < 0.6


@pytest.mark.parametrize("shape, shave", [((40, 40), 2), ((97, 131), 3), ((2, 1, 64, 50), 0)])
def test_ssim_equals_torchmetrics(rng, shape, shave):
    import torch
    from torchmetrics.functional.image import structural_similarity_index_measure

    gt = rng.integers(0, 256, shape).astype(np.float64)
    sr = np.clip(gt + rng.normal(0, 12, shape), 0, 255)
    ours = ssim_y(sr, gt, shave)
    a, b = (torch.tensor(x) for x in (sr, gt))
    while a.ndim < 4:
        a, b = a[None], b[None]
    if shave:
        a, b = a[..., shave:-shave, shave:-shave], b[..., shave:-shave, shave:-shave]
    ref = float(structural_similarity_index_measure(a, b, data_range=255.0, gaussian_kernel=True, sigma=1.5,
                                                    kernel_size=11))
    assert 0.1 < ours < 0.99 and ours == pytest.approx(ref, abs=1e-12)
