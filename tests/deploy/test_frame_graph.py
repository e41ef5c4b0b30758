"""The whole-frame ONNX graph: the same output as the torch pipeline, every layout, tiling, MATLAB alpha."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espcn_lab.deploy.frame_graph import FrameGraph
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.imaging.colour import rgb_to_y
from espcn_lab.imaging.degrade import degrade, modcrop, upscale_bicubic
from tests._models import make_model


@pytest.mark.parametrize(("channels", "model_channels", "scale"), [(3, 1, 3), (4, 1, 2), (1, 1, 4), (2, 1, 3),
                                                                    (3, 3, 2), (1, 3, 2)])
def test_graph_equals_the_torch_pipeline_for_every_layout(channels, model_channels, scale, rng):
    model, _ = make_model(scale, features=(16, 8), channels=model_channels)
    lq = rng.integers(0, 256, (2, 19, 23, channels), dtype=np.uint8)
    ref = Upscaler(model, backend="torch")(lq)
    with torch.inference_mode():  # the graph's maths in torch: identical but for summation order
        eager = FrameGraph(model, channels).eval()(torch.from_numpy(lq)).numpy()
    ort = Upscaler(model, backend="onnxruntime")
    got = ort(lq)
    assert ort.frame_runner(channels) is not None  # the frame went through a whole-frame runner, not pipeline
    for out in (eager, got):
        assert out.shape == ref.shape and out.dtype == np.uint8
        diff = np.abs(out.astype(int) - ref)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_rgb_frame_matches_torch_on_a_real_image(shared_data):
    """Golden check of task 1: max one grey level, PSNR-Y within 0.01 dB of the torch path."""
    from PIL import Image

    model, _ = make_model(3)
    gt = modcrop(np.asarray(Image.open(shared_data / "Set5" / "butterfly.png").convert("RGB")), 3)
    lq = degrade(gt, 3)
    ref, got = Upscaler(model, backend="torch")(lq), Upscaler(model, backend="onnxruntime")(lq)
    assert np.abs(got.astype(int) - ref).max() <= 1 and (got != ref).mean() < 1e-3
    scores = [psnr_y(rgb_to_y(x), rgb_to_y(gt), 3) for x in (ref, got)]
    assert abs(scores[0] - scores[1]) < 0.01


def test_graph_tiles_exactly_and_handles_one_pixel_edges(rng):
    model, _ = make_model(2, features=(8, 4))
    lq = rng.integers(0, 256, (37, 45, 4), dtype=np.uint8)
    whole = Upscaler(model, backend="onnxruntime", tile=0)
    tiled = Upscaler(model, backend="onnxruntime", tile=16)
    assert np.array_equal(tiled(lq), whole(lq))
    thin = rng.integers(0, 256, (1, 2, 4), dtype=np.uint8)  # symmetric padding clamps on a 1-pixel image
    assert np.abs(whole(thin).astype(int) - Upscaler(model, backend="torch")(thin)).max() <= 1


def test_alpha_through_the_graph_is_matlab_bicubic(rng):
    model, _ = make_model(3, features=(8, 4))
    lq = rng.integers(0, 256, (15, 18, 4), dtype=np.uint8)
    sr = Upscaler(model, backend="onnxruntime")(lq)
    assert np.abs(sr[..., 3].astype(int) - upscale_bicubic(lq[..., 3], 3)).max() <= 1
