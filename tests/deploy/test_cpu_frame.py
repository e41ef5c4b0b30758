"""The CPU whole-frame path (ONNX Runtime network + numba colour kernels): the torch pipeline's output."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from espcn_lab.deploy.infer import Upscaler
from tests._models import make_model

pytest.importorskip("numba", reason="numba not installed: Upscaler keeps the one-graph ONNX path")

from espcn_lab.deploy.cpu_frame import CpuFrameRunner  # noqa: E402
from espcn_lab.deploy.frame_graph import ort_frame_runner  # noqa: E402


def _agree(got: np.ndarray, ref: np.ndarray) -> None:
    assert got.shape == ref.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_rgb_frames_equal_the_torch_pipeline(scale, rng):
    model, _ = make_model(scale)
    lq = rng.integers(0, 256, (3, 19, 23, 3), dtype=np.uint8)
    ref = Upscaler(model, backend="torch")(lq)
    up = Upscaler(model, backend="onnxruntime")
    _agree(up(lq), ref)
    assert isinstance(up.frame_runner(3), CpuFrameRunner)  # the frame took this path, not the graph
    graph = ort_frame_runner(model, 3, torch.device("cpu"))(torch.from_numpy(lq)).numpy()
    _agree(graph, ref)  # the one-graph path it replaced, still the fallback


@pytest.mark.parametrize("shape", [(1, 1), (1, 2), (2, 1), (2, 2), (3, 5), (40, 1)])
def test_symmetric_borders_on_tiny_frames(shape, rng):
    model, _ = make_model(3, features=(8, 4))
    lq = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    _agree(Upscaler(model, backend="onnxruntime")(lq), Upscaler(model, backend="torch")(lq))


def test_shape_changes_rebind_buffers_and_results_are_not_reused(rng):
    model, _ = make_model(2, features=(8, 4))
    run = CpuFrameRunner(model, threads=2)
    a = rng.integers(0, 256, (2, 9, 11, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (1, 12, 7, 3), dtype=np.uint8)
    first = run(torch.from_numpy(a)).numpy()
    second = run(torch.from_numpy(b)).numpy()
    again = run(torch.from_numpy(a)).numpy()
    assert np.array_equal(first, again) and second.shape == (1, 24, 14, 3)
    assert np.array_equal(first[1], run(torch.from_numpy(a[1:])).numpy()[0])  # row bands split by frame too
    single = CpuFrameRunner(model, threads=1)(torch.from_numpy(a)).numpy()
    assert np.array_equal(single, first)  # threads only split rows


def test_tiles_through_the_numba_path_are_exact(rng):
    model, _ = make_model(3, features=(8, 4))
    lq = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    whole = Upscaler(model, backend="onnxruntime", tile=0)(lq)
    assert np.array_equal(Upscaler(model, backend="onnxruntime", tile=16)(lq), whole)


def test_rgb_model_and_bad_frames_refused_with_one_line():
    from espcn_lab.errors import UserError

    with pytest.raises(UserError, match="Y"):
        CpuFrameRunner(make_model(2, features=(8, 4), channels=3)[0])
    run = CpuFrameRunner(make_model(2, features=(8, 4))[0])
    with pytest.raises(UserError, match="uint8"):
        run(torch.zeros(1, 4, 4, 4, dtype=torch.uint8))
