"""The fused Triton kernel: PyTorch fp32's output under the CPU interpreter, refusals, and (GPU) parity + speed.

``TRITON_INTERPRET`` must be set before triton is imported, so the interpreter checks run in a child
process (``_interpreter_report``) and come back as JSON.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from espcn_lab.errors import UserError
from espcn_lab.model import ESPCN

ROOT = Path(__file__).resolve().parents[1]
BUTTERFLY = Path(os.environ.get("ESPCN_LAB_DATA", ROOT.parent / "shared" / "data")) / "Set5" / "butterfly.png"
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="triton not installed (pip install 'espcn-lab[triton]')")


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1 / mse)


def _real_image_case(forward) -> dict:
    """Shipped x3 on a Set5 crop, Y channel: PSNR-Y against the ground truth, PyTorch vs the kernel."""
    from PIL import Image

    from espcn_lab.checkpoint import load_model
    from espcn_lab.evaluate.metrics import psnr_y
    from espcn_lab.imaging.colour import rgb_to_y
    from espcn_lab.imaging.degrade import degrade

    model = load_model("x3").model.eval()
    gt = np.asarray(Image.open(BUTTERFLY).convert("RGB"))[:144, :144]
    lq = torch.from_numpy(rgb_to_y(degrade(gt, 3))).float()[None, None] / 255.0
    with torch.no_grad():
        ref = model(lq)
    got = forward(model, lq)
    y = [torch.floor(t.clamp(0, 1)[0, 0] * 255 + 0.5).numpy() for t in (ref, got)]
    return {"psnr_vs_torch": _psnr(got, ref), "psnr_y_torch": psnr_y(y[0], rgb_to_y(gt), 3),
            "psnr_y_triton": psnr_y(y[1], rgb_to_y(gt), 3)}


def _interpreter_report() -> None:
    """Run in the child: every case through the interpreted kernel, printed as one JSON line."""
    from espcn_lab.deploy.triton_kernel import forward, pack

    def run(model, x, precision="fp32"):
        return forward(pack(model), x, model.scale, isinstance(model.body[1], torch.nn.ReLU), precision)

    cases = {}
    for scale, act, channels in ((2, "relu", 1), (3, "tanh", 1), (4, "tanh", 1), (2, "tanh", 3)):
        torch.manual_seed(scale)
        model = ESPCN(scale, channels, activation=act).eval()
        x = torch.rand(2, channels, 24, 20)
        with torch.no_grad():
            ref = model(x)
        got = run(model, x)
        cases[f"x{scale}_{act}_c{channels}"] = {"shape_ok": got.shape == ref.shape, "psnr": _psnr(got, ref),
                                                "max_abs": float((got - ref).abs().max())}
    with torch.no_grad():
        ref = model(x)  # the last case's model and input, with fp16 operands (fp32 accumulation)
    cases["x2_tanh_c3_fp16"] = {"psnr": _psnr(run(model, x, "fp16"), ref)}
    if BUTTERFLY.is_file():
        cases["butterfly_x3"] = _real_image_case(run)
    print(json.dumps(cases))


@needs_triton
def test_interpreted_kernel_matches_pytorch_fp32():
    env = {**os.environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", "import tests.test_triton_kernel as t; t._interpreter_report()"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    cases = json.loads(done.stdout.strip().splitlines()[-1])
    for name, case in cases.items():
        if name.startswith("butterfly"):
            assert case["psnr_vs_torch"] >= 60
            assert abs(case["psnr_y_torch"] - case["psnr_y_triton"]) < 0.01, case
        elif name.endswith("fp16"):
            assert case["psnr"] >= 60, case
        else:
            assert case["shape_ok"] and case["psnr"] >= 60 and case["max_abs"] < 1e-4, (name, case)
    assert len(cases) == 5 + BUTTERFLY.is_file()


def test_bf16_is_refused_in_one_line(monkeypatch):
    from espcn_lab.deploy import triton_kernel

    monkeypatch.setattr(triton_kernel, "_interpret", lambda: True)  # past the CUDA check, to the precision one
    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton not installed")
    with pytest.raises(UserError, match="fp16"):
        triton_kernel.triton_runner(ESPCN(3), torch.device("cpu"), "bf16")


def test_unsupported_networks_are_named():
    from espcn_lab.deploy.triton_kernel import unsupported

    assert unsupported(ESPCN(3)) is None and unsupported(ESPCN(4, activation="relu")) is None
    assert "activations" in unsupported(ESPCN(3, activation="prelu"))
    assert "3-layer" in unsupported(ESPCN(3, features=(64, 32, 16), kernels=(5, 3, 3, 3)))
    assert "powers of two" in unsupported(ESPCN(3, features=(48, 32)))


def test_triton_without_cuda_is_one_line_and_never_automatic(tmp_path, capsys):
    from espcn_lab.cli import main
    from espcn_lab.deploy.runtime import pick_backend
    from espcn_lab.deploy.triton_kernel import triton_runner

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="CUDA"):
        pick_backend("triton", torch.device("cpu"), "fp32")
    with pytest.raises(UserError, match="CUDA"):
        triton_runner(ESPCN(3), torch.device("cpu"), "fp32")
    assert pick_backend("auto", torch.device("cpu"), "fp32") != "triton"
    for argv in (["bench", "x3", "--device", "cpu", "--backend", "triton"],
                 ["upscale", "x3", str(tmp_path / "missing.png"), "--backend", "triton"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err.strip()
        assert exit_.value.code == 2 and "CUDA" in err and len(err.splitlines()) == 1, err


@pytest.mark.gpu
@needs_triton
def test_cuda_kernel_parity_and_speed_against_stock_fp16_cuda_graph():
    """On a GPU: fp32 parity >= 60 dB, fp16 within 0.01 dB PSNR-Y on a real image, and no slower than stock."""
    from espcn_lab.deploy.bench import measure
    from espcn_lab.deploy.infer import Upscaler
    from espcn_lab.deploy.runtime import cuda_graph
    from espcn_lab.deploy.triton_kernel import forward, pack

    dev = torch.device("cuda")
    model = ESPCN(3).eval()
    x = torch.rand(2, 1, 96, 80, device=dev)
    packed = {k: v.to(dev) if torch.is_tensor(v) else v for k, v in pack(model).items()}
    with torch.no_grad():
        ref = model.to(dev)(x)
    assert _psnr(forward(packed, x, 3, False, "fp32"), ref) >= 60
    case = _real_image_case(lambda m, lq: Upscaler(m, device="cuda", backend="triton", precision="fp16").net(lq.cuda()).cpu())
    assert abs(case["psnr_y_torch"] - case["psnr_y_triton"]) < 0.01, case
    frame = torch.rand(1, 1, 360, 640, device=dev)  # x3 -> 1920x1080
    stock = ESPCN(3).eval().to(dev, torch.float16).to(memory_format=torch.channels_last)
    stock_fn = cuda_graph(lambda t: stock(t.half().contiguous(memory_format=torch.channels_last)), frame)
    fused = cuda_graph(Upscaler(model, device="cuda", backend="triton", precision="fp16").net, frame)
    t_stock = measure(lambda i: stock_fn(frame), dev, warmup=10, runs=50)["ms_per_frame"]
    t_fused = measure(lambda i: fused(frame), dev, warmup=10, runs=50)["ms_per_frame"]
    print(f"x3 1080p: stock fp16 channels-last CUDA graph {t_stock:.4f} ms, triton fused fp16 {t_fused:.4f} ms")
    assert t_fused <= t_stock
