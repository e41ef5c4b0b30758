"""Upscaler: MATLAB-exact bicubic chroma, agreement with the evaluation path, exact tiling, backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espcn_lab.deploy.infer import Upscaler
from espcn_lab.deploy.ops import bicubic_upsample, rgb_to_ycbcr_t
from espcn_lab.deploy.runtime import pick_backend, pick_device, pick_precision
from espcn_lab.errors import UserError
from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.evaluate.score import network_pass
from espcn_lab.imaging.colour import rgb_to_y, rgb_to_ycbcr
from espcn_lab.imaging.degrade import degrade, imresize, modcrop, upscale_bicubic
from tests._models import make_model


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_upsample_matches_matlab_imresize(scale, rng):
    for shape in [(13, 17), (1, 5), (2, 2)]:
        x = rng.random(shape) * 255
        got = bicubic_upsample(torch.tensor(x, dtype=torch.float32)[None, None], scale)[0, 0].numpy()
        assert got.shape == (shape[0] * scale, shape[1] * scale)
        assert np.abs(got - imresize(x, scale)).max() < 1e-3


def test_colour_conversion_matches_imaging(rng):
    rgb = rng.integers(0, 256, (9, 11, 3), dtype=np.uint8)
    got = rgb_to_ycbcr_t(torch.tensor(rgb).permute(2, 0, 1)[None].float())[0].permute(1, 2, 0).numpy()
    assert np.abs(got - rgb_to_ycbcr(rgb)).max() < 1e-3


def test_grey_image_is_exactly_the_evaluation_path(rng):
    model, _ = make_model(3)
    lq = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    assert np.array_equal(Upscaler(model, backend="torch")(lq), network_pass(model, lq))


def test_rgb_with_a_bicubic_network_is_matlab_bicubic_rgb(shared_data):
    """Y goes through ``net`` and CbCr through bicubic: a bicubic 'network' must give imresize of RGB."""
    from PIL import Image

    model, _ = make_model(3)
    lq = np.asarray(Image.open(shared_data / "Set5" / "bird.png").convert("RGB"))[:60, :80]
    up = Upscaler(model, backend="torch")
    up.net = lambda x: bicubic_upsample(x, 3)
    sr = up(lq)
    assert sr.shape == (180, 240, 3) and sr.dtype == np.uint8
    assert np.abs(sr.astype(int) - upscale_bicubic(lq, 3)).max() <= 2  # luma rounded to uint8 before the net


def test_alpha_is_upscaled_by_bicubic(rng):
    model, _ = make_model(2)
    lq = rng.integers(0, 256, (20, 24, 4), dtype=np.uint8)
    sr = Upscaler(model, backend="torch")(lq)
    assert np.abs(sr[..., 3].astype(int) - upscale_bicubic(lq[..., 3], 2)).max() <= 1


def test_tiled_output_is_identical_and_needs_the_overlap(rng):
    model, _ = make_model(3)
    assert model.receptive_radius() == 4  # 5-3-3: 2 + 1 + 1 LR pixels
    lq = rng.integers(0, 256, (70, 90, 4), dtype=np.uint8)
    whole = Upscaler(model, backend="torch", tile=0)(lq)
    tiled = Upscaler(model, backend="torch", tile=32)
    assert len(tiled._spans(70)) * len(tiled._spans(90)) == 9
    assert np.array_equal(tiled(lq), whole)
    tiled.margin = 1  # less than the receptive field: tile seams appear, so the test above can fail
    assert not np.array_equal(tiled(lq), whole)


def test_batch_of_frames_equals_frame_by_frame(rng):
    model, _ = make_model(2, features=(8, 4))
    frames = rng.integers(0, 256, (3, 16, 20, 3), dtype=np.uint8)
    up = Upscaler(model, backend="torch")
    assert np.array_equal(up(frames), np.stack([up(f) for f in frames]))


def test_rgb_model_runs_on_rgb_and_grey(rng):
    model, _ = make_model(2, features=(8, 4), channels=3)
    up = Upscaler(model, backend="torch")
    assert up(rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)).shape == (20, 24, 3)
    assert up(rng.integers(0, 256, (10, 12), dtype=np.uint8)).shape == (20, 24)


def test_onnxruntime_backend_matches_torch_within_001_db(shared_data):
    from PIL import Image

    model, _ = make_model(3)
    gt = modcrop(np.asarray(Image.open(shared_data / "Set5" / "butterfly.png").convert("RGB")), 3)
    lq = degrade(gt, 3)
    scores = {b: psnr_y(rgb_to_y(Upscaler(model, backend=b)(lq)), rgb_to_y(gt), 3) for b in ("torch", "onnxruntime")}
    assert abs(scores["torch"] - scores["onnxruntime"]) < 0.01


def test_runtime_choices_and_refusals():
    cpu = pick_device("cpu")
    assert pick_precision("auto", cpu) == "fp32"
    assert pick_backend("auto", cpu, "fp32") == "onnxruntime"
    assert pick_backend("auto", cpu, "bf16") == "torch"
    with pytest.raises(UserError, match="fp16"):
        pick_precision("fp16", cpu)
    with pytest.raises(UserError, match="backend"):
        pick_backend("tensorrt", cpu, "fp32")
    with pytest.raises(UserError, match="device"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="cuda"):
            pick_device("cuda")


@pytest.mark.gpu
def test_cuda_fp16_and_graphs_match_fp32_within_001_db(shared_data):
    from PIL import Image

    model, _ = make_model(3)
    gt = modcrop(np.asarray(Image.open(shared_data / "Set5" / "butterfly.png").convert("RGB")), 3)
    lq = degrade(gt, 3)
    ref = psnr_y(rgb_to_y(Upscaler(model, device="cpu", backend="torch")(lq)), rgb_to_y(gt), 3)
    up = Upscaler(model, device="cuda", precision="fp16")
    outs = [up(lq) for _ in range(3)]  # the third call replays a CUDA graph
    assert up.uses_cuda_graphs and np.array_equal(outs[1], outs[2])
    assert abs(psnr_y(rgb_to_y(outs[2]), rgb_to_y(gt), 3) - ref) < 0.01
