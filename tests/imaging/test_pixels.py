import numpy as np
import pytest
from PIL import Image

from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.imaging.colour import rgb_to_y, rgb_to_ycbcr, to_uint8, ycbcr_to_rgb
from espcn_lab.imaging.degrade import (
    DegradationSpec,
    degrade,
    imresize,
    modcrop,
    upscale_bicubic,
)


def test_bt601_studio_range_of_white_and_black():
    img = np.array([[[255, 255, 255], [0, 0, 0]]], dtype=np.uint8)
    assert rgb_to_y(img).tolist() == [[235, 16]]
    ycc = rgb_to_ycbcr(img)
    assert np.allclose(ycc[0, 0], [235, 128, 128]) and np.allclose(ycc[0, 1], [16, 128, 128])


def test_ycbcr_round_trip(rng):
    img = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    assert np.abs(ycbcr_to_rgb(rgb_to_ycbcr(img)).astype(int) - img).max() == 0


def test_rounding_is_half_away_from_zero_like_matlab():
    assert to_uint8(np.array([0.5, 1.5, 2.5, -3, 300])).tolist() == [1, 2, 3, 0, 255]


def _matlab_weights(n_in: int, scale: float) -> np.ndarray:
    """MATLAB imresize's contributions(): antialiased cubic (a=-0.5), 1-based centres, symmetric edges."""
    def cubic(t):
        a = np.abs(t)
        return (1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1) + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2))

    kernel_scale = min(scale, 1.0)
    n_out = int(np.ceil(n_in * scale))
    weights = np.zeros((n_out, n_in))
    for i in range(1, n_out + 1):
        u = i / scale + 0.5 * (1 - 1 / scale)
        width = 4 / kernel_scale
        for j in range(int(np.floor(u - width / 2)), int(np.floor(u + width / 2)) + 2):
            k = j - 1
            while k < 0 or k >= n_in:
                k = -k - 1 if k < 0 else 2 * n_in - k - 1
            weights[i - 1, k] += kernel_scale * cubic(kernel_scale * (u - j))
        weights[i - 1] /= weights[i - 1].sum()
    return weights


def test_matlab_bicubic_golden_values():
    x = np.arange(1, 17, dtype=np.float64).reshape(4, 4)
    assert np.allclose(imresize(x, 0.5), [[3.3046875, 5.3828125], [11.6171875, 13.6953125]])
    rng = np.random.default_rng(1)
    for shape, scale in [((24, 18), 1 / 3), ((20, 16), 1 / 4), ((7, 9), 3), ((10, 6), 2), ((12, 12), 0.5)]:
        img = rng.uniform(0, 255, shape)
        expected = _matlab_weights(shape[0], scale) @ img @ _matlab_weights(shape[1], scale).T
        assert np.allclose(imresize(img, scale), expected, atol=1e-9)
    # a constant image stays constant at every scale (symmetric padding, normalised weights)
    assert np.allclose(imresize(np.full((9, 12), 77.0), 1 / 3), 77.0)
    assert np.allclose(imresize(np.full((3, 4), 77.0), 3), 77.0)


@pytest.mark.parametrize("kind", ["bicubic", "gaussian"])
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_size_dtype_and_alignment(kind, scale):
    # a smooth ramp: the LR pixel must sit at its HR block's centre for both degradations
    hr = np.add.outer(np.arange(12 * scale), np.zeros(12 * scale)).astype(np.float64)
    lr = degrade(to_uint8(hr), scale, DegradationSpec(kind))
    assert lr.shape == (12, 12) and lr.dtype == np.uint8
    centres = np.arange(12) * scale + (scale - 1) / 2
    assert np.abs(lr[3:-3, 5].astype(float) - centres[3:-3]).max() <= 0.5


def test_degrade_refuses_unmodcropped():
    with pytest.raises(ValueError, match="modcrop"):
        degrade(np.zeros((10, 10), np.uint8), 3)


def test_gaussian_sigma_changes_blur():
    hr = np.zeros((30, 30), np.uint8)
    hr[:, 15:] = 255
    soft = degrade(hr, 3, DegradationSpec("gaussian", sigma=2.0))
    sharp = degrade(hr, 3, DegradationSpec("gaussian", sigma=0.5))
    assert np.abs(np.diff(sharp[5].astype(int))).max() > np.abs(np.diff(soft[5].astype(int))).max()


@pytest.mark.parametrize("scale,expected", [(2, 33.66), (3, 30.39), (4, 28.42)])
def test_set5_bicubic_baseline_matches_published(shared_data, scale, expected):
    scores = []
    for path in sorted((shared_data / "Set5").glob("*.png")):
        gt = rgb_to_y(modcrop(np.asarray(Image.open(path).convert("RGB")), scale))
        scores.append(psnr_y(upscale_bicubic(degrade(gt, scale), scale), gt, shave=scale))
    assert np.mean(scores) == pytest.approx(expected, abs=0.02)


def test_tapwise_resize_is_bit_identical_to_resize_right(rng):
    from espcn_lab.imaging import resize_fast as fast_resize
    from espcn_lab.imaging.degrade import imresize

    cases = [(rng.uniform(0, 255, (s * int(rng.integers(6, 40)), s * int(rng.integers(6, 40)), *c)), s)
             for s in (2, 3, 4) for c in ((), (3,))]
    try:
        fast_resize.install(False)
        expected = [(imresize(x, 1 / s), imresize(x[:9, :7], s)) for x, s in cases]
        fast_resize.install(True)
        got = [(imresize(x, 1 / s), imresize(x[:9, :7], s)) for x, s in cases]
    finally:
        fast_resize.install(True)
    assert all(np.array_equal(a, b) and np.array_equal(c, d) for (a, c), (b, d) in zip(expected, got))
