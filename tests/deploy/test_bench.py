"""``espcn-lab bench``: the JSON contract, baselines in the same run, pipeline mode, timing maths."""

from __future__ import annotations

import json
import time

import pytest
import torch

from espcn_lab.cli import main
from espcn_lab.deploy import bench
from tests._models import make_model, save_model


@pytest.fixture
def tiny_resolution(monkeypatch):
    monkeypatch.setitem(bench.RESOLUTIONS, "tiny", (48, 64))  # keeps SRCNN affordable on a 2-core CI
    return "tiny"


def test_measure_reports_the_median_and_respects_the_budget():
    delays = iter([0.0] * 2 + [0.01, 0.03, 0.02] + [0.5] * 10)
    result = bench.measure(lambda i: time.sleep(next(delays)), torch.device("cpu"), warmup=2, runs=20, budget_s=0.01)
    assert result["runs"] == 3  # at least 3, then stops once the budget is spent
    assert 19 < result["ms_per_frame"] < 30 and result["fps"] == pytest.approx(1e3 / result["ms_per_frame"], rel=1e-3)


def test_side_by_side_alternates_the_order_and_times_each_function():
    calls = []
    result = bench.measure_side_by_side({"a": lambda i: calls.append("a"), "b": lambda i: calls.append("b")},
                                        torch.device("cpu"), warmup=1, runs=4, budget_s=60)
    assert calls == ["a", "b"] + ["a", "b", "b", "a"] * 2  # warm-up, then the order reversed every round
    assert result["a"]["runs"] == result["b"]["runs"] == 4


def test_deconvolution_twin_and_srcnn_shapes():
    model, _ = make_model(3)
    x = torch.rand(1, 1, 10, 12)
    assert bench.deconv_twin(model)(x).shape == model(x).shape == (1, 1, 30, 36)
    assert bench.srcnn()(torch.rand(1, 1, 30, 36)).shape == (1, 1, 30, 36)


def test_cli_json_has_model_figures_baselines_and_pipeline(tmp_path, tiny_resolution, capsys):
    model_path = save_model(tmp_path / "x2.safetensors", scale=2, features=(16, 8))
    out = tmp_path / "bench.json"
    with pytest.raises(SystemExit) as exit_:
        main(["bench", str(model_path), "--device", "cpu", "--resolution", tiny_resolution, "--runs", "3",
              "--warmup", "1", "--budget", "0.5", "--pipeline", "--frames", "8", "--json", str(out)])
    assert exit_.value.code == 0
    report = json.loads(out.read_text())
    assert report["ms_per_frame"] > 0 and report["fps"] == pytest.approx(1e3 / report["ms_per_frame"], rel=1e-2)
    assert report["backend"] == "onnxruntime" and report["output"] == "64x48" and report["input"] == "32x24"
    assert {"bicubic", "srcnn_9_5_5", "espcn_deconv", "espcn_torch_fp32_nchw_eager", "opencv_espcn"} <= set(report["baselines"])
    assert report["ratios"]["stock_over_model"] > 0 and report["ratios"]["paper_deconv_claim"] == 2.0
    assert report["frame_ms"] > 0 and report["frame_ms_split"] > 0 and report["split_over_frame"] > 0
    assert report["frame_over_network"] == pytest.approx(report["frame_ms"] / report["ms_per_frame"], rel=1e-2)
    assert report["network_phases_ms"] > 0 and "colour_over_phases" in report  # the numba frame path's network
    assert len(report["machine"]["load_avg_1_5_15"]) == 3
    pipe = report["pipeline"]
    assert pipe["frames"] == 8 and pipe["pipeline_fps"] > 0 and pipe["decode_bicubic_encode_fps"] > 0
    assert pipe["decode_encode_fps"] > 0 and pipe["network_fps"] == pytest.approx(report["fps"], rel=1e-2)
    bound = pipe["cores"] * 1e3 / (pipe["cores"] * report["ms_per_frame"] + pipe["decode_encode_run"]["cpu_ms_per_frame"])
    assert pipe["codec_bound_fps"] == pytest.approx(bound, rel=1e-2) and 0 < pipe["pipeline_run"]["core_use"] <= 1.05
    # the RGB and the YUV path side by side (RGB, YUV, YUV, RGB), each against its own codec-only run
    assert (pipe["pipeline_run"]["frame_path"], pipe["pipeline_yuv_run"]["frame_path"]) == ("rgb24", "yuv420p")
    assert pipe["pipeline_run"]["runs"] == pipe["pipeline_yuv_run"]["runs"] == 2
    assert pipe["decode_encode_yuv_run"]["frame_path"] == "yuv420p" and pipe["codec_bound_fps_yuv"] > 0
    assert pipe["pipeline_yuv_over_network"] == pytest.approx(pipe["pipeline_yuv_fps"] / pipe["network_fps"], rel=2e-2)
    assert pipe["yuv_over_rgb"] == pytest.approx(pipe["pipeline_yuv_fps"] / pipe["pipeline_fps"], rel=1e-2)
    assert pipe["network_interleaved_run"]["runs"] == 3 and pipe["network_interleaved_run"]["frames"] == 8
    assert pipe["pipeline_yuv_over_network_interleaved"] == pytest.approx(
        pipe["pipeline_yuv_fps"] / pipe["network_interleaved_run"]["fps"], rel=2e-2)
    assert "ms/frame" in capsys.readouterr().out


def test_opencv_peer_is_timed_when_installed(shared_data):
    pytest.importorskip("cv2")
    lq = torch.rand(1, 1, 24, 32)
    fn = bench._opencv(lq, 3, shared_data / "peers" / "opencv_dnn_superres")
    assert callable(fn) and fn(0).shape == (72, 96, 3)
    assert isinstance(bench._opencv(lq, 3, shared_data), str)  # no model files there: a reason, not a crash


def test_an_opencv_that_cannot_read_the_peer_model_is_a_reason_not_a_crash(tmp_path, monkeypatch):
    # OpenCV 5.1's dnn parses dnn_superres's TensorFlow .pb files as ONNX and raises cv2.error (seen here)
    import sys
    import types

    class Error(Exception):
        pass

    class Impl:
        def readModel(self, path):
            raise Error("model_proto.has_graph()")

    fake = types.SimpleNamespace(__version__="5.1.0", error=Error,
                                 dnn_superres=types.SimpleNamespace(DnnSuperResImpl_create=Impl))
    monkeypatch.setitem(sys.modules, "cv2", fake)
    (tmp_path / "ESPCN_x3.pb").write_bytes(b"not a graph")
    reason = bench._opencv(torch.rand(1, 1, 8, 8), 3, tmp_path)
    assert isinstance(reason, str) and "5.1.0" in reason and "ESPCN_x3.pb" in reason


def test_unknown_resolution_is_one_line(tmp_path, capsys):
    model_path = save_model(tmp_path / "m.safetensors", scale=2, features=(8, 4))
    with pytest.raises(SystemExit) as exit_:
        main(["bench", str(model_path), "--resolution", "8k"])
    assert exit_.value.code == 2 and "8k" in capsys.readouterr().err
